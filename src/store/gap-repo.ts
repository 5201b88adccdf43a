import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { Gap } from "../domain/gaps.ts"
import type { Timeframe } from "../domain/timeframe.ts"

export type GapStatus = "detected" | "filling" | "filled" | "partially_filled" | "unfillable"

export interface StoredGap extends Gap {
  readonly id: number
  readonly symbol: string
  readonly timeframe: Timeframe
  readonly status: GapStatus
  readonly attempts: number
  readonly evidence: unknown
}

/** `data_gaps`, and the search for holes between stored bars. */
export class GapRepo extends Effect.Service<GapRepo>()("Store/GapRepo", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    /**
     * Holes in [from, to): spans with no stored bar, found in the database with a window over `ts` read in index order
     * (only the holes come back, never every timestamp, and nothing is sorted), plus the range's two edges.
     */
    const holes = (symbol: string, timeframe: Timeframe, from: number, to: number, barMillis: number) =>
      Effect.gen(function* () {
        const inside = yield* sql.unsafe<{ hole_from: Date; hole_to: Date }>(
          `SELECT prev + $5 * INTERVAL '1 millisecond' AS hole_from, ts AS hole_to
           FROM (SELECT ts, lag(ts) OVER (ORDER BY ts) AS prev FROM candles WHERE symbol = $1 AND timeframe = $2 AND ts >= $3 AND ts < $4) steps
           WHERE ts - prev > $5 * INTERVAL '1 millisecond'`,
          [symbol, timeframe, new Date(from), new Date(to), barMillis]
        )
        const [bounds] = yield* sql.unsafe<{ first: Date | null; last: Date | null }>(
          `SELECT min(ts) AS first, max(ts) AS last FROM candles WHERE symbol = $1 AND timeframe = $2 AND ts >= $3 AND ts < $4`,
          [symbol, timeframe, new Date(from), new Date(to)]
        )
        const first = bounds?.first?.getTime() ?? null
        const last = bounds?.last?.getTime() ?? null
        if (first === null || last === null) return to > from ? [{ from, to }] : []
        return [
          ...(first > from ? [{ from, to: first }] : []),
          ...inside.map((r) => ({ from: r.hole_from.getTime(), to: r.hole_to.getTime() })).sort((a, b) => a.from - b.from),
          ...(to - last > barMillis ? [{ from: last + barMillis, to }] : [])
        ]
      })

    /** New gaps are recorded; one already known (filled ones included) is left as it is. */
    const record = (symbol: string, timeframe: Timeframe, gaps: ReadonlyArray<Gap>) =>
      gaps.length === 0
        ? Effect.succeed(0)
        : sql
            .unsafe<{ n: number }>(
              `WITH added AS (
                 INSERT INTO data_gaps (symbol, timeframe, gap_start, gap_end, missing_bars)
                 SELECT $1, $2, TIMESTAMPTZ 'epoch' + g.s * INTERVAL '1 millisecond', TIMESTAMPTZ 'epoch' + g.e * INTERVAL '1 millisecond', g.n
                 FROM unnest($3::float8[], $4::float8[], $5::int[]) AS g(s, e, n)
                 ON CONFLICT (symbol, timeframe, gap_start) DO NOTHING
                 RETURNING 1
               ) SELECT count(*)::int AS n FROM added`,
              [symbol, timeframe, gaps.map((g) => g.start), gaps.map((g) => g.end), gaps.map((g) => g.missingBars)]
            )
            .pipe(Effect.map((rows) => rows[0]?.n ?? 0))

    const list = (symbol: string, timeframe: Timeframe | null, statuses: ReadonlyArray<GapStatus> | null, from = 0, to = Date.UTC(9999, 0, 1), limit?: number) =>
      sql<{
        id: number
        symbol: string
        timeframe: Timeframe
        gap_start: Date
        gap_end: Date
        missing_bars: number
        status: GapStatus
        attempts: number
        evidence: unknown
      }>`SELECT id::int AS id, symbol, timeframe, gap_start, gap_end, missing_bars, status, attempts, evidence FROM data_gaps
         WHERE symbol = ${symbol} ${timeframe === null ? sql`` : sql`AND timeframe = ${timeframe}`}
           ${statuses === null ? sql`` : sql`AND status IN ${sql.in(statuses)}`}
           AND gap_start >= ${new Date(from)} AND gap_start < ${new Date(to)}
         ORDER BY gap_start ${limit === undefined ? sql`` : sql`LIMIT ${limit}`}`.pipe(
        Effect.map((rows) =>
          rows.map(
            (r): StoredGap => ({
              id: r.id,
              symbol: r.symbol,
              timeframe: r.timeframe,
              start: r.gap_start.getTime(),
              end: r.gap_end.getTime(),
              missingBars: r.missing_bars,
              status: r.status,
              attempts: r.attempts,
              evidence: r.evidence
            })
          )
        )
      )

    /** How long a gap may stay `filling` before another fill may take it over (its filler died). */
    const abandonedFillMinutes = 15

    /**
     * Takes a gap for one attempt, counting it: true when taken. Refused once its attempts reach `maxAttempts`, or
     * while another fill has it, so two fills at once (other instances, overlapping ranges) never push it past the cap.
     */
    const claim = (id: number, maxAttempts: number) =>
      sql<{ id: number }>`UPDATE data_gaps SET status = 'filling', attempts = attempts + 1, last_attempt_at = now(), updated_at = now()
          WHERE id = ${id} AND attempts < ${maxAttempts} AND status IN ('detected', 'partially_filled', 'filling')
            AND (status <> 'filling' OR last_attempt_at IS NULL OR last_attempt_at < now() - ${abandonedFillMinutes} * INTERVAL '1 minute')
          RETURNING id::int AS id`.pipe(Effect.map((rows) => rows.length > 0))

    /** Open gaps whose attempts are used up get them back (after an outage was fixed); returns how many. */
    const resetAttempts = (symbol: string, timeframe: Timeframe | null, maxAttempts: number) =>
      sql<{ n: number }>`WITH reset AS (
          UPDATE data_gaps SET attempts = 0, status = CASE WHEN status = 'filling' THEN 'detected' ELSE status END, updated_at = now()
          WHERE symbol = ${symbol} ${timeframe === null ? sql`` : sql`AND timeframe = ${timeframe}`}
            AND status IN ('detected', 'partially_filled', 'filling') AND attempts >= ${maxAttempts}
          RETURNING 1
        ) SELECT count(*)::int AS n FROM reset`.pipe(Effect.map((rows) => rows[0]?.n ?? 0))

    /** After an attempt (counted when it was claimed): the new status, what is still missing, and why (the fetch_log rows, the vendor's words). */
    const settle = (id: number, outcome: { readonly status: GapStatus; readonly remaining: Gap | null; readonly evidence: unknown }) =>
      sql`UPDATE data_gaps SET status = ${outcome.status}, updated_at = now(),
            evidence = ${JSON.stringify(outcome.evidence)}::jsonb,
            gap_start = ${outcome.remaining === null ? sql`gap_start` : sql`${new Date(outcome.remaining.start)}`},
            gap_end = ${outcome.remaining === null ? sql`gap_end` : sql`${new Date(outcome.remaining.end)}`},
            missing_bars = ${outcome.remaining === null ? sql`missing_bars` : outcome.remaining.missingBars}
          WHERE id = ${id}`.pipe(Effect.asVoid)

    /** Gaps of every stream, by status (for /metrics). */
    const countsByStatus = sql<{ symbol: string; timeframe: Timeframe; status: GapStatus; n: number; missing: number }>`
      SELECT symbol, timeframe, status, count(*)::int AS n, sum(missing_bars)::float8 AS missing FROM data_gaps GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`

    /** The gaps that hold any bar of [from, to), whatever their status: what an export says about a missing bar. */
    const overlapping = (symbol: string, timeframe: Timeframe, from: number, to: number) =>
      sql<{ gap_start: Date; gap_end: Date; status: GapStatus }>`SELECT gap_start, gap_end, status FROM data_gaps
         WHERE symbol = ${symbol} AND timeframe = ${timeframe} AND gap_end >= ${new Date(from)} AND gap_start < ${new Date(to)}
         ORDER BY gap_start`.pipe(
        Effect.map((rows) => rows.map((r) => ({ start: r.gap_start.getTime(), end: r.gap_end.getTime(), status: r.status })))
      )

    return { holes, record, list, claim, resetAttempts, overlapping, settle, countsByStatus } as const
  })
}) {}
