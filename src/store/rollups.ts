import { SqlClient } from "@effect/sql"
import { Effect, Option } from "effect"
import { advisoryLocks, withAdvisoryLock } from "./advisory-lock.ts"
import { DatabaseInfo } from "./database.ts"

/** The stacked rollups, bottom-up: each is built from the one before it (M5 from raw M1 bars). */
export const rollupLevels = [
  { timeframe: "M5", table: "candles_m5", width: "5 minutes", from: "candles" },
  { timeframe: "M15", table: "candles_m15", width: "15 minutes", from: "candles_m5" },
  { timeframe: "M30", table: "candles_m30", width: "30 minutes", from: "candles_m15" },
  { timeframe: "H1", table: "candles_h1", width: "1 hour", from: "candles_m30" }
] as const
export type RollupLevel = (typeof rollupLevels)[number]
export type RollupTimeframe = RollupLevel["timeframe"]

const hour = 3_600_000
/** Owed hours closer than this are paid as one range: one statement over a quiet weekend costs less than two. */
const mergeWithin = 3 * 24 * hour

const bucket = (width: string) => `date_bin(INTERVAL '${width}', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00')`

/** A fresh aggregation of one level over [$2, $3) for symbol $1: from the level below, or (direct) from the M1 bars. */
const aggregation = (level: RollupLevel, source: "stacked" | "direct") => {
  const fromBars = source === "direct" || level.from === "candles"
  return `SELECT symbol, ${bucket(level.width)} AS ts,
                 (array_agg(open ORDER BY ts))[1] AS open, max(high) AS high, min(low) AS low,
                 (array_agg(close ORDER BY ts DESC))[1] AS close, sum(volume) AS volume,
                 ${fromBars ? "count(*)" : "sum(bars)"}::bigint AS bars
          FROM ${fromBars ? "candles" : level.from}
          WHERE symbol = $1 AND ts >= $2 AND ts < $3 ${fromBars ? "AND timeframe = 'M1'" : ""}
          GROUP BY symbol, 2`
}

export interface OwedRange {
  readonly symbol: string
  readonly from: number
  readonly to: number
}

/** Contiguous (or nearly) owed hours as ranges [from, to), per symbol; input sorted by symbol then hour. */
export const owedRanges = (owed: ReadonlyArray<{ readonly symbol: string; readonly hour: number }>): ReadonlyArray<OwedRange> => {
  const ranges: Array<{ symbol: string; from: number; to: number }> = []
  for (const row of owed) {
    const last = ranges.at(-1)
    if (last && last.symbol === row.symbol && row.hour - last.to <= mergeWithin) last.to = Math.max(last.to, row.hour + hour)
    else ranges.push({ symbol: row.symbol, from: row.hour, to: row.hour + hour })
  }
  return ranges
}

export interface PayReport {
  /** Owed hours that were paid. */
  readonly hours: number
  readonly ranges: number
}

export interface LevelCheck {
  readonly timeframe: RollupTimeframe
  readonly buckets: number
  /** Buckets a fresh aggregation has and the rollup lacks, the rollup has and the bars do not, or that differ. */
  readonly missing: number
  readonly extra: number
  readonly differing: number
  readonly rebuilt: number
}

export interface VerifyRequest {
  readonly symbol: string
  readonly timeframe: Option.Option<RollupTimeframe>
  readonly from: number
  readonly to: number
}

/** Exact for prices; volumes summed in another order may differ in the last bits (crypto volumes are fractional). */
const differs = (a: string, b: string) =>
  `(${a}.open IS DISTINCT FROM ${b}.open OR ${a}.high IS DISTINCT FROM ${b}.high OR ${a}.low IS DISTINCT FROM ${b}.low
    OR ${a}.close IS DISTINCT FROM ${b}.close OR ${a}.bars IS DISTINCT FROM ${b}.bars
    OR abs(${a}.volume - ${b}.volume) > 1e-9 * greatest(abs(${a}.volume), abs(${b}.volume), 1))`

/**
 * Rollups owed and paid. A write records the hours it touched (CandleStore.upsertPage, in the page's
 * transaction); `pay` rebuilds them bottom-up, outside any transaction (TimescaleDB refuses to refresh
 * inside one), one payer at a time per database, and clears exactly the debts it read.
 */
export class Rollups extends Effect.Service<Rollups>()("Store/Rollups", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const info = yield* DatabaseInfo
    // One payer per process, and one per database (instances, CLI commands): the advisory lock.
    const payer = yield* Effect.makeSemaphore(1)
    const exclusively = <A, E, R>(body: Effect.Effect<A, E, R>) =>
      payer.withPermits(1)(withAdvisoryLock(advisoryLocks.rollups, info.kind === "embedded", body).pipe(Effect.provideService(SqlClient.SqlClient, sql)))
    const exec = (statement: string, params: ReadonlyArray<unknown>) => sql.unsafe<any>(statement, params as Array<unknown>)

    /** Rebuilds one level of one symbol over [from, to) from the level below: an upsert plus a delete of emptied buckets, one statement. */
    const rebuildPlain = (level: RollupLevel, range: OwedRange) =>
      exec(
        `WITH fresh AS (${aggregation(level, "stacked")}),
         emptied AS (
           DELETE FROM ${level.table} r WHERE r.symbol = $1 AND r.ts >= $2 AND r.ts < $3
             AND NOT EXISTS (SELECT 1 FROM fresh f WHERE f.ts = r.ts))
         INSERT INTO ${level.table} AS r (symbol, ts, open, high, low, close, volume, bars)
         SELECT symbol, ts, open, high, low, close, volume, bars FROM fresh
         ON CONFLICT (symbol, ts) DO UPDATE
           SET open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
               volume = excluded.volume, bars = excluded.bars
           WHERE (r.open, r.high, r.low, r.close, r.volume, r.bars)
                 IS DISTINCT FROM (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume, excluded.bars)`,
        [range.symbol, new Date(range.from), new Date(range.to)]
      )

    /**
     * Rebuilds a continuous aggregate over [from, to), in one pass: a manual refresh otherwise works in batches of
     * 10 buckets (TimescaleDB ≥ 2.2x), which made four months of sparse M5 take 13 s instead of 12 ms. Forced, so
     * every bucket of the window is recomputed whatever TimescaleDB's invalidation log says: the log misses rows a
     * transaction wrote above the invalidation threshold while a concurrent refresh moved it (thirty concurrent
     * writers and payers left an H1 bucket at 50 of 60 bars for good), and verify must rebuild what it found wrong.
     * The debts say which hours to rebuild.
     */
    const refreshTimescale = (level: RollupLevel, from: number, to: number) =>
      exec(
        `CALL refresh_continuous_aggregate('${level.table}', $1::timestamptz, $2::timestamptz, force => true, options => '{"buckets_per_batch": 0}'::jsonb)`,
        [new Date(from), new Date(to)]
      )

    /**
     * Pays every owed hour, oldest first. On TimescaleDB a refresh covers every symbol in its window, so the
     * windows are the union over symbols; on plain PostgreSQL each symbol's ranges are rebuilt level by level.
     */
    const pay = exclusively(
      Effect.gen(function* () {
        const owed = (yield* exec(
          `SELECT symbol, (extract(epoch FROM hour) * 1000)::float8 AS hour, seq::float8 AS seq FROM rollups_owed ORDER BY symbol, hour`,
          []
        )) as ReadonlyArray<{ symbol: string; hour: number; seq: number }>
        if (owed.length === 0) return { hours: 0, ranges: 0 } satisfies PayReport
        const ranges = owedRanges(owed)
        if (info.flavour === "timescale") {
          const windows = owedRanges([...owed].map((row) => ({ symbol: "*", hour: row.hour })).sort((a, b) => a.hour - b.hour))
          for (const level of rollupLevels) {
            for (const window of windows) yield* refreshTimescale(level, window.from, window.to)
          }
        } else {
          for (const range of [...ranges].sort((a, b) => a.from - b.from)) {
            for (const level of rollupLevels) yield* rebuildPlain(level, range)
          }
        }
        // Only the rows read, with the seq read: an hour written again meanwhile has a new seq and stays owed.
        yield* exec(
          `DELETE FROM rollups_owed o
           USING unnest($1::text[], $2::float8[], $3::float8[]) AS paid(symbol, hour, seq)
           WHERE o.symbol = paid.symbol AND o.hour = TIMESTAMPTZ 'epoch' + paid.hour * INTERVAL '1 millisecond' AND o.seq = paid.seq::bigint`,
          [owed.map((row) => row.symbol), owed.map((row) => row.hour), owed.map((row) => row.seq)]
        )
        return { hours: owed.length, ranges: ranges.length } satisfies PayReport
        // The span measures the payment itself, not the wait for the payer's lock.
      }).pipe(Effect.withSpan("Rollups.pay"))
    )

    /** How many hours are owed (for status and tests). */
    const owed = Effect.map(sql<{ n: number }>`SELECT count(*)::int AS n FROM rollups_owed`, ([row]) => row?.n ?? 0)

    /** Compares one level's buckets in [from, to) with a direct aggregation of the M1 bars. */
    const check = (level: RollupLevel, symbol: string, from: number, to: number) =>
      Effect.map(
        sql.unsafe<{ buckets: number; missing: number; extra: number; differing: number; first: Date | null; last: Date | null }>(
          `WITH fresh AS (${aggregation(level, "direct")}),
                stored AS (SELECT * FROM ${level.table} WHERE symbol = $1 AND ts >= $2 AND ts < $3),
                compared AS (
                  SELECT f.ts AS fresh_ts, s.ts AS stored_ts, coalesce(f.ts, s.ts) AS ts,
                         f.ts IS NOT NULL AND s.ts IS NOT NULL AND ${differs("f", "s")} AS differing
                  FROM fresh f FULL JOIN stored s ON s.ts = f.ts)
           SELECT count(fresh_ts)::int AS buckets,
                  count(*) FILTER (WHERE stored_ts IS NULL)::int AS missing,
                  count(*) FILTER (WHERE fresh_ts IS NULL)::int AS extra,
                  count(*) FILTER (WHERE differing)::int AS differing,
                  min(ts) FILTER (WHERE stored_ts IS NULL OR fresh_ts IS NULL OR differing) AS first,
                  max(ts) FILTER (WHERE stored_ts IS NULL OR fresh_ts IS NULL OR differing) AS last
           FROM compared`,
          [symbol, new Date(from), new Date(to)]
        ),
        ([row]) => ({
          buckets: row?.buckets ?? 0,
          missing: row?.missing ?? 0,
          extra: row?.extra ?? 0,
          differing: row?.differing ?? 0,
          first: row?.first?.getTime() ?? null,
          last: row?.last?.getTime() ?? null
        })
      )

    /**
     * Compares every rollup bucket of a symbol in [from, to) with a fresh aggregation of its stored M1 bars and
     * rebuilds, bottom-up, the hours where any level differs. Reports what it found per level; `rebuilt` counts
     * the buckets that were wrong and are right after the rebuild.
     */
    const verify = (request: VerifyRequest) =>
      Effect.gen(function* () {
        // Whole hours, so every level's buckets are complete.
        const from = Math.floor(request.from / hour) * hour
        const to = Math.ceil(request.to / hour) * hour
        const levels = rollupLevels.filter((level) => Option.match(request.timeframe, { onNone: () => true, onSome: (t) => t === level.timeframe }))
        const found = yield* Effect.forEach(levels, (level) => Effect.map(check(level, request.symbol, from, to), (result) => ({ level, ...result })))
        const wrong = found.filter((f) => f.missing + f.extra + f.differing > 0)
        if (wrong.length > 0) {
          const start = Math.floor(Math.min(...wrong.map((f) => f.first!)) / hour) * hour
          const end = Math.max(...wrong.map((f) => Math.floor(f.last! / hour) * hour + hour))
          yield* exclusively(
            Effect.forEach(
              rollupLevels,
              (level) =>
                info.flavour === "timescale"
                  ? refreshTimescale(level, start, end)
                  : rebuildPlain(level, { symbol: request.symbol, from: start, to: end }),
              { discard: true }
            )
          )
        }
        const after = yield* Effect.forEach(wrong, (f) => Effect.map(check(f.level, request.symbol, from, to), (result) => ({ level: f.level, ...result })))
        return found.map((f): LevelCheck => {
          const again = after.find((a) => a.level === f.level)
          const before = f.missing + f.extra + f.differing
          const left = again ? again.missing + again.extra + again.differing : 0
          return { timeframe: f.level.timeframe, buckets: f.buckets, missing: f.missing, extra: f.extra, differing: f.differing, rebuilt: before - left }
        })
      }).pipe(Effect.withSpan("Rollups.verify", { attributes: { symbol: request.symbol } }))

    return { pay, owed, verify } as const
  })
}) {}
