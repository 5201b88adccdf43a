import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { Candle, CandleSource } from "../domain/candle.ts"
import type { Timeframe } from "../domain/timeframe.ts"

export interface RejectedBar {
  readonly candle: Candle
  readonly rule: string
  readonly detail: string
}

/** `rejected_candles`: bars that failed a rule, with the rule's name and the raw values. Nothing is dropped silently. */
export class QuarantineRepo extends Effect.Service<QuarantineRepo>()("Store/QuarantineRepo", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    /** One statement per page; the same bad bar fetched again is quarantined once (latest values kept). */
    const quarantine = (symbol: string, timeframe: Timeframe, source: CandleSource, rejected: ReadonlyArray<RejectedBar>) =>
      rejected.length === 0
        ? Effect.succeed(0)
        : sql
            .unsafe<{ n: number }>(
              `WITH written AS (
                 INSERT INTO rejected_candles (symbol, timeframe, ts, rule, detail, raw, source)
                 SELECT $1, $2, TIMESTAMPTZ 'epoch' + r.t * INTERVAL '1 millisecond', r.rule, r.detail, r.raw::jsonb, $3
                 FROM unnest($4::float8[], $5::text[], $6::text[], $7::text[]) AS r(t, rule, detail, raw)
                 ON CONFLICT (symbol, timeframe, ts, rule) DO UPDATE
                   SET detail = excluded.detail, raw = excluded.raw, rejected_at = now()
                 RETURNING 1
               ) SELECT count(*)::int AS n FROM written`,
              [
                symbol,
                timeframe,
                source,
                rejected.map((r) => r.candle.ts),
                rejected.map((r) => r.rule),
                rejected.map((r) => r.detail),
                // Non-finite prices are part of the evidence: JSON has no NaN, so they are kept as strings.
                rejected.map((r) => JSON.stringify(r.candle, (_, v) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v)))
              ]
            )
            .pipe(Effect.map((rows) => rows[0]?.n ?? 0))

    /** Bars once quarantined as `price_spike` that later bars confirmed: out of the quarantine (the caller stores them). */
    const releaseSpikes = (symbol: string, timeframe: Timeframe, ts: ReadonlyArray<number>) =>
      ts.length === 0
        ? Effect.succeed(0)
        : sql
            .unsafe<{ n: number }>(
              `WITH released AS (
                 DELETE FROM rejected_candles
                 WHERE symbol = $1 AND timeframe = $2 AND rule = 'price_spike'
                   AND ts IN (SELECT TIMESTAMPTZ 'epoch' + t * INTERVAL '1 millisecond' FROM unnest($3::float8[]) AS t)
                 RETURNING 1
               ) SELECT count(*)::int AS n FROM released`,
              [symbol, timeframe, ts]
            )
            .pipe(Effect.map((rows) => rows[0]?.n ?? 0))

    const countByRule = (symbol: string, timeframe: Timeframe) =>
      sql<{ rule: string; n: number }>`SELECT rule, count(*)::int AS n FROM rejected_candles
        WHERE symbol = ${symbol} AND timeframe = ${timeframe} GROUP BY rule ORDER BY rule`

    /** Quarantined bars of every stream, by rule (for /metrics). */
    const countsByRule = sql<{ symbol: string; timeframe: Timeframe; rule: string; n: number }>`
      SELECT symbol, timeframe, rule, count(*)::int AS n FROM rejected_candles GROUP BY symbol, timeframe, rule ORDER BY 1, 2, 3`

    return { quarantine, releaseSpikes, countByRule, countsByRule } as const
  })
}) {}
