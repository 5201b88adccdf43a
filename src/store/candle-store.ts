import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Option } from "effect"
import { AppConfig, configuredStreams, type DayBoundary } from "../config.ts"
import type { CandlePage, StoredBar } from "../domain/candle.ts"
import { floorTo, type Timeframe } from "../domain/timeframe.ts"
import { DatabaseInfo } from "./database.ts"
import { copyColumns, copyIn, copyOut, encodeBars, inlineParameters } from "./pg-copy.ts"
import { rollupLevels } from "./rollups.ts"

export interface UpsertReport {
  readonly inserted: number
  readonly updated: number
  /** Bars sent that were already stored with exactly these values. */
  readonly unchanged: number
}

export interface RangeQuery {
  readonly symbol: string
  readonly timeframe: Timeframe
  /** Inclusive open time, Unix ms. */
  readonly from: number
  /** Exclusive open time, Unix ms. */
  readonly to: number
  readonly limit: number
  readonly dayBoundary?: DayBoundary
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** A page of export CSV lines, how many, and where the next page starts (null at the end). */
interface CsvPage {
  readonly count: number
  readonly next: number | null
  readonly lines: Uint8Array
}

const rollupTable: Partial<Record<Timeframe, string>> = Object.fromEntries(rollupLevels.map((r) => [r.timeframe, r.table]))

/**
 * Bucket expressions for H4 and D1 over H1 open times. The New York boundary is 17:00 America/New_York
 * (MT4 servers' midnight): shift local time by 7 h so the trading day starts at local midnight.
 * A bucket's label is the first instant the New York clock reads its start. At the November fall-back the H4
 * bucket from 01:00 holds five hours and 01:00 happens twice; `AT TIME ZONE` reads an ambiguous wall time as
 * the second one, so the label is read one hour earlier (never ambiguous for a bucket start) and moved on one hour.
 */
const bucketExpression = (timeframe: "H4" | "D1", boundary: DayBoundary): string => {
  const width = timeframe === "H4" ? "4 hours" : "1 day"
  return boundary === "utc"
    ? `date_bin(INTERVAL '${width}', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00')`
    : `(((date_bin(INTERVAL '${width}', (ts AT TIME ZONE 'America/New_York') + INTERVAL '7 hours', TIMESTAMP '2000-01-01') - INTERVAL '8 hours') AT TIME ZONE 'America/New_York') + INTERVAL '1 hour')`
}

interface BarRow {
  readonly ts: Date
  readonly open: number
  readonly high: number
  readonly low: number
  readonly close: number
  readonly volume: number
  readonly bars: number
  readonly vwap: number | null
  readonly trades: string | number | null
}

const toBar = (row: BarRow): StoredBar => ({
  ts: row.ts.getTime(),
  open: row.open,
  high: row.high,
  low: row.low,
  close: row.close,
  volume: row.volume,
  bars: row.bars,
  vwap: row.vwap,
  trades: row.trades === null ? null : Number(row.trades)
})

/** Last one wins when a page repeats a bar: one statement cannot touch a row twice. */
const distinctByTs = <A extends { readonly ts: number }>(bars: ReadonlyArray<A>): ReadonlyArray<A> => {
  const seen = new Map<number, A>()
  for (const bar of bars) seen.set(bar.ts, bar)
  return seen.size === bars.length ? bars : [...seen.values()]
}

export class CandleStore extends Effect.Service<CandleStore>()("Store/CandleStore", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const info = yield* DatabaseInfo
    const config = yield* AppConfig

    const rangeIsEmpty = (page: CandlePage, bars: ReadonlyArray<{ readonly ts: number }>) => {
      let first = Infinity
      let last = -Infinity
      for (const bar of bars) (first = Math.min(first, bar.ts)), (last = Math.max(last, bar.ts))
      return Effect.map(
        sql<{ empty: boolean }>`SELECT NOT EXISTS (
          SELECT 1 FROM candles WHERE symbol = ${page.symbol} AND timeframe = ${page.timeframe}
            AND ts >= ${new Date(first)} AND ts <= ${new Date(last)}) AS empty`,
        ([row]) => row?.empty === true
      )
    }

    /** Records the page's hours as owed rollups, in the caller's transaction; sorted, so two writers lock rows in one order. */
    const oweHours = (symbol: string, bars: ReadonlyArray<{ readonly ts: number }>) =>
      sql.unsafe(
        `INSERT INTO rollups_owed AS o (symbol, hour, seq)
         SELECT $1, TIMESTAMPTZ 'epoch' + h * INTERVAL '1 millisecond', (SELECT nextval('rollups_owed_seq'))
         FROM unnest($2::float8[]) AS h ORDER BY h
         ON CONFLICT (symbol, hour) DO UPDATE SET seq = excluded.seq, owed_at = now()`,
        [symbol, [...new Set(bars.map((bar) => floorTo(bar.ts, "H1")))].sort((a, b) => a - b)]
      )

    /**
     * Writes one page in one transaction: typed arrays through unnest (or a binary COPY into an empty range),
     * with the hours whose rollups it makes owed. A bar already stored with the same values is left alone, so
     * re-sending a page changes nothing and owes nothing.
     */
    const upsertPage = (page: CandlePage) =>
      Effect.gen(function* () {
        const bars = distinctByTs(page.candles)
        if (bars.length === 0) return { inserted: 0, updated: 0, unchanged: 0 } satisfies UpsertReport
        const owes = page.timeframe === "M1"
        // A page into a range the stream has no bar in yet (a backfill) is COPYed: same rows, a third of the time.
        // A bar written meanwhile by someone else fails the COPY (in its savepoint) with a unique violation: the upsert takes over.
        if (info.kind === "server" && (yield* rangeIsEmpty(page, bars))) {
          const copied = yield* sql.withTransaction(copyIn(`COPY candles (${copyColumns}) FROM STDIN (FORMAT binary)`, encodeBars(page, bars))).pipe(
            Effect.catchIf((error) => (error.cause as { code?: string } | undefined)?.code === "23505", () => Effect.succeed(Option.none<number>()))
          )
          if (Option.isSome(copied)) {
            if (owes) yield* oweHours(page.symbol, bars)
            return { inserted: copied.value, updated: 0, unchanged: bars.length - copied.value } satisfies UpsertReport
          }
        }
        const column = (pick: (bar: (typeof bars)[number]) => number | null) => bars.map(pick)
        const [row] = yield* sql.unsafe<{ inserted: number; updated: number }>(
          `WITH page AS (
             SELECT * FROM unnest($3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::float8[],
                                  $8::float8[], $9::float8[], $10::float8[])
               AS p(t, open, high, low, close, volume, vwap, trades)
           ), written AS (
             INSERT INTO candles AS c (symbol, timeframe, ts, open, high, low, close, volume, vwap, trades, source)
             SELECT $1, $2, TIMESTAMPTZ 'epoch' + p.t * INTERVAL '1 millisecond',
                    p.open, p.high, p.low, p.close, p.volume, p.vwap, p.trades::bigint, $11
             FROM page p
             ON CONFLICT (symbol, timeframe, ts) DO UPDATE
               SET open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
                   volume = excluded.volume, vwap = excluded.vwap, trades = excluded.trades,
                   source = excluded.source, ingested_at = now()
               WHERE (c.open, c.high, c.low, c.close, c.volume, c.vwap, c.trades)
                     IS DISTINCT FROM (excluded.open, excluded.high, excluded.low, excluded.close,
                                       excluded.volume, excluded.vwap, excluded.trades)
             RETURNING c.ts, (xmax = 0) AS inserted
           ), owed AS (
             -- Only hours whose bars really changed are owed; sorted, so two writers lock rows in one order.
             INSERT INTO rollups_owed AS o (symbol, hour, seq)
             SELECT DISTINCT $1, date_bin(INTERVAL '1 hour', w.ts, TIMESTAMPTZ 'epoch'), (SELECT nextval('rollups_owed_seq'))
             FROM written w WHERE $12::boolean ORDER BY 2
             ON CONFLICT (symbol, hour) DO UPDATE SET seq = excluded.seq, owed_at = now()
           )
           SELECT (count(*) FILTER (WHERE inserted))::int AS inserted,
                  (count(*) FILTER (WHERE NOT inserted))::int AS updated
           FROM written`,
          [
            page.symbol,
            page.timeframe,
            column((b) => b.ts),
            column((b) => b.open),
            column((b) => b.high),
            column((b) => b.low),
            column((b) => b.close),
            column((b) => b.volume),
            column((b) => b.vwap),
            column((b) => b.trades),
            page.source,
            owes
          ]
        )
        const inserted = row?.inserted ?? 0
        const updated = row?.updated ?? 0
        return { inserted, updated, unchanged: bars.length - inserted - updated } satisfies UpsertReport
      }).pipe(
        sql.withTransaction,
        Effect.withSpan("CandleStore.upsertPage", { attributes: { symbol: page.symbol, bars: page.candles.length } })
      )

    /** The statement that answers a range: stored bars, a rollup, or H4/D1 built from H1 on the day boundary. */
    const statement = (query: RangeQuery, order: "ASC" | "DESC"): { readonly text: string; readonly params: ReadonlyArray<unknown> } => {
      const { symbol, timeframe, limit } = query
      const from = new Date(query.from)
      const to = new Date(query.to)
      // A timeframe with a stream of its own answers from the vendor's bars, not from the rollups of M1.
      const ownStream = timeframe !== "M1" && configuredStreams(config).some((s) => s.symbol === symbol && s.timeframe === timeframe)
      if (!ownStream && (timeframe === "H4" || timeframe === "D1")) {
        const bucket = bucketExpression(timeframe, query.dayBoundary ?? config.dayBoundary)
        return {
          text: `SELECT b AS ts, (array_agg(open ORDER BY ts))[1] AS open, max(high) AS high, min(low) AS low,
                  (array_agg(close ORDER BY ts DESC))[1] AS close, sum(volume) AS volume, sum(bars)::int AS bars,
                  NULL::float8 AS vwap, NULL::bigint AS trades
           FROM (SELECT ${bucket} AS b, ts, open, high, low, close, volume, bars
                 FROM candles_h1
                 WHERE symbol = $1 AND ts >= $2::timestamptz - INTERVAL '1 day' AND ts < $3::timestamptz + INTERVAL '1 day') h
           WHERE b >= $2 AND b < $3
           GROUP BY b ORDER BY b ${order} LIMIT $4`,
          params: [symbol, from, to, limit]
        }
      }
      const table = ownStream ? undefined : rollupTable[timeframe]
      return table
        ? {
            text: `SELECT ts, open, high, low, close, volume, bars::int AS bars, NULL::float8 AS vwap, NULL::bigint AS trades FROM ${table}
             WHERE symbol = $1 AND ts >= $2 AND ts < $3 ORDER BY ts ${order} LIMIT $4`,
            params: [symbol, from, to, limit]
          }
        : {
            text: `SELECT ts, open, high, low, close, volume, 1 AS bars, vwap, trades FROM candles
             WHERE symbol = $1 AND timeframe = $2 AND ts >= $3 AND ts < $4 ORDER BY ts ${order} LIMIT $5`,
            params: [symbol, timeframe, from, to, limit]
          }
    }

    const select = (query: RangeQuery, order: "ASC" | "DESC") => {
      const { text, params } = statement(query, order)
      return sql.unsafe<BarRow>(text, params as Array<unknown>)
    }

    /**
     * The same bars as `range`, as a JSON array rendered by the database (`[{"ts":"…Z","open":…},…]`) with how
     * many there are and the open time of the bar after the `limit`-th: one text field to read instead of
     * seven per bar, which is most of an API page's cost in the driver.
     */
    const rangeJson = (query: RangeQuery) => {
      const { text, params } = statement({ ...query, limit: query.limit + 1 }, "ASC")
      const limitParam = `$${params.length + 1}`
      return sql
        .unsafe<{ count: number; next: Date | null; bars: string }>(
          // string_agg of text, not json_build_object: a float8 prints the same shortest form either way, at half the cost.
          `SELECT count(*) FILTER (WHERE n <= ${limitParam})::int AS count,
                  max(ts) FILTER (WHERE n > ${limitParam}) AS next,
                  '[' || coalesce(string_agg('{"ts":"' || to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '","open":' || open ||
                    ',"high":' || high || ',"low":' || low || ',"close":' || close || ',"volume":' || volume || '}', ',' ORDER BY ts)
                    FILTER (WHERE n <= ${limitParam}), '') || ']' AS bars
           FROM (SELECT page.*, row_number() OVER (ORDER BY ts) AS n FROM (${text}) page) numbered`,
          [...params, query.limit]
        )
        .pipe(
          Effect.map((rows) => ({ count: rows[0]?.count ?? 0, next: rows[0]?.next?.getTime() ?? null, bars: rows[0]?.bars ?? "[]" })),
          Effect.withSpan("CandleStore.rangeJson", { attributes: { symbol: query.symbol, timeframe: query.timeframe } })
        )
    }

    /**
     * The same bars as `range` as export CSV lines (`symbol,ts,open,high,low,close,volume,trades,vwap`) rendered by
     * the database, with how many there are and where the next page starts: one text field per page instead of
     * nine per bar, which is most of a CSV export's cost. A float8 prints in its shortest exact form, as in JS
     * except that PostgreSQL writes an exponent from 1e-4 down (`1e-05` for JS's `0.00001`): the same number.
     */
    const rangeCsv = (query: RangeQuery) => {
      const { text, params } = statement({ ...query, limit: query.limit + 1 }, "ASC")
      const line = (symbol: string) =>
        `${symbol} || ',' || to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || ',' || open || ',' || high || ',' || low || ',' || close || ',' || volume || ',' || coalesce(trades::text, '') || ',' || coalesce(vwap::text, '')`
      // On a server, COPY streams the page's lines as it reads them (about 4× string_agg's speed: no one huge text built row by row).
      const copied = info.kind === "server"
        ? sql.withTransaction(copyOut(`COPY (SELECT ${line(inlineParameters("$1::text", [query.symbol]))} FROM (${inlineParameters(text, params)}) page ORDER BY ts) TO STDOUT`))
        : Effect.succeed(Option.none<{ readonly rows: number; readonly bytes: Uint8Array }>())
      const limitParam = `$${params.length + 1}`
      const symbolParam = `$${params.length + 2}`
      const aggregated = sql
        .unsafe<{ count: number; next: Date | null; lines: string }>(
          `SELECT count(*) FILTER (WHERE n <= ${limitParam})::int AS count,
                  max(ts) FILTER (WHERE n > ${limitParam}) AS next,
                  coalesce(string_agg(${line(`${symbolParam}::text`)} || E'\n', '' ORDER BY ts) FILTER (WHERE n <= ${limitParam}), '') AS lines
           FROM (SELECT page.*, row_number() OVER (ORDER BY ts) AS n FROM (${text}) page) numbered`,
          [...params, query.limit, query.symbol]
        )
        .pipe(Effect.map((rows): CsvPage => ({ count: rows[0]?.count ?? 0, next: rows[0]?.next?.getTime() ?? null, lines: encoder.encode(rows[0]?.lines ?? "") })))
      return copied.pipe(
        Effect.flatMap(Option.match({
          onNone: () => aggregated,
          onSome: ({ rows, bytes }): Effect.Effect<CsvPage, SqlError> => {
            if (rows <= query.limit) return Effect.succeed({ count: rows, next: null, lines: bytes })
            // The extra line says where the next page starts; it is not part of this one.
            const cut = bytes.lastIndexOf(10, bytes.length - 2) + 1
            const next = Date.parse(decoder.decode(bytes.subarray(cut)).split(",")[1]!)
            return Effect.succeed({ count: query.limit, next, lines: bytes.subarray(0, cut) })
          }
        })),
        Effect.withSpan("CandleStore.rangeCsv", { attributes: { symbol: query.symbol, timeframe: query.timeframe } })
      )
    }

    /** Bars with open time in [from, to), oldest first: M1 and timeframes with their own stream from the stored bars, the rest from the rollups. */
    const range = (query: RangeQuery) =>
      select(query, "ASC").pipe(
        Effect.map((rows) => rows.map(toBar)),
        Effect.withSpan("CandleStore.range", { attributes: { symbol: query.symbol, timeframe: query.timeframe } })
      )

    /** The newest bar of a timeframe, if any. */
    const lastBar = (symbol: string, timeframe: Timeframe) =>
      select({ symbol, timeframe, from: 0, to: Date.UTC(9999, 0, 1), limit: 1 }, "DESC").pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), toBar))
      )

    /** The stored bars just before `before`, oldest first: the history a page's outlier check starts from. */
    const barsBefore = (symbol: string, timeframe: Timeframe, before: number, count: number) =>
      select({ symbol, timeframe, from: 0, to: before, limit: count }, "DESC").pipe(Effect.map((rows) => rows.map(toBar).reverse()))

    return { upsertPage, range, rangeJson, rangeCsv, lastBar, barsBefore } as const
  })
}) {}
