import { SqlClient } from "@effect/sql"
import type { Statement } from "@effect/sql"
import { Effect, Option } from "effect"
import type { Timeframe } from "../domain/timeframe.ts"

export type FetchPurpose = "backfill" | "sync" | "gap_fill" | "verify" | "import" | "compare"
export type StreamStatus = "starting" | "backfilling" | "live" | "degraded" | "failed" | "stopped"

export interface FetchRecord {
  readonly symbol: string
  readonly timeframe: Timeframe
  readonly purpose: FetchPurpose
  /** The range asked for: [from, to), Unix ms. */
  readonly from: number
  readonly to: number
  readonly barsReceived: number
  readonly requestId: string | null
  readonly status: "ok" | "empty" | "error"
  readonly httpStatus: number | null
  readonly error: string | null
}

export interface StreamState {
  readonly symbol: string
  readonly timeframe: Timeframe
  readonly status: StreamStatus
  readonly watermark: number | null
  readonly lastSuccessAt: number | null
  readonly lastError: string | null
  readonly consecutiveFailures: number
  readonly barsStored: number
  /** The runner running the stream's loop (host:port), as it last said. */
  readonly owner: string | null
  /** The first instant the vendor's plan answers for; null until a refusal of older history was met. */
  readonly historyFrom: number | null
  /** The plan's delay in minutes as the last sync knew it; null before one recorded it. */
  readonly delayMinutes: number | null
}

/** The sync bookkeeping: `sync_state` (where each stream is) and `fetch_log` (every range asked, and what came back). */
export class SyncRepo extends Effect.Service<SyncRepo>()("Store/SyncRepo", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    const selectStates = (where: Statement.Fragment) =>
      sql<{
        symbol: string
        timeframe: Timeframe
        status: StreamStatus
        watermark: Date | null
        last_success_at: Date | null
        last_error: string | null
        consecutive_failures: number
        bars_stored: number
        owner: string | null
        history_from: Date | null
        delay_minutes: number | null
      }>`SELECT symbol, timeframe, status, watermark, last_success_at, last_error, consecutive_failures, bars_stored::float8 AS bars_stored, owner,
                history_from, delay_minutes
         FROM sync_state ${where} ORDER BY symbol, timeframe`.pipe(
        Effect.map((rows) =>
          rows.map((row): StreamState => ({
            symbol: row.symbol,
            timeframe: row.timeframe,
            status: row.status,
            watermark: row.watermark?.getTime() ?? null,
            lastSuccessAt: row.last_success_at?.getTime() ?? null,
            lastError: row.last_error,
            consecutiveFailures: row.consecutive_failures,
            barsStored: row.bars_stored,
            owner: row.owner,
            historyFrom: row.history_from?.getTime() ?? null,
            delayMinutes: row.delay_minutes
          }))
        )
      )

    const state = (symbol: string, timeframe: Timeframe) =>
      Effect.map(selectStates(sql`WHERE symbol = ${symbol} AND timeframe = ${timeframe}`), (rows) => Option.fromNullable(rows[0]))

    /** Every stream the store knows, in name order. */
    const states = selectStates(sql``)

    /** Every bar before the watermark has been asked for and stored. It only moves forward. */
    const advance = (input: { readonly symbol: string; readonly timeframe: Timeframe; readonly watermark: number; readonly barsStored: number }) =>
      sql`INSERT INTO sync_state (symbol, timeframe, watermark, bars_stored, last_success_at, consecutive_failures, last_error, updated_at)
          VALUES (${input.symbol}, ${input.timeframe}, ${new Date(input.watermark)}, ${input.barsStored}, now(), 0, NULL, now())
          ON CONFLICT (symbol, timeframe) DO UPDATE SET
            watermark = GREATEST(sync_state.watermark, excluded.watermark),
            bars_stored = sync_state.bars_stored + excluded.bars_stored,
            last_success_at = now(), consecutive_failures = 0, last_error = NULL, updated_at = now()`.pipe(Effect.asVoid)

    /**
     * Where the plan's history starts, as found by asking; the watermark moves up to it when `moveWatermark`,
     * since nothing before it can be had (the vendor refused it).
     */
    const recordHistoryFrom = (symbol: string, timeframe: Timeframe, historyFrom: number, moveWatermark: boolean) =>
      sql`INSERT INTO sync_state (symbol, timeframe, history_from, watermark)
          VALUES (${symbol}, ${timeframe}, ${new Date(historyFrom)}, ${moveWatermark ? new Date(historyFrom) : null})
          ON CONFLICT (symbol, timeframe) DO UPDATE SET history_from = excluded.history_from,
            watermark = GREATEST(sync_state.watermark, excluded.watermark), updated_at = now()`.pipe(Effect.asVoid)

    /** The plan's delay as the stream's last sync knew it, for the status page. */
    const recordDelay = (symbol: string, timeframe: Timeframe, delayMinutes: number) =>
      sql`INSERT INTO sync_state (symbol, timeframe, delay_minutes) VALUES (${symbol}, ${timeframe}, ${delayMinutes})
          ON CONFLICT (symbol, timeframe) DO UPDATE SET delay_minutes = excluded.delay_minutes, updated_at = now()`.pipe(Effect.asVoid)

    /** The runner that last claimed the stream, its row locked until the transaction ends (null: none, or no row yet). */
    const claimedBy = (symbol: string, timeframe: Timeframe) =>
      Effect.map(
        sql<{ owner: string | null }>`SELECT owner FROM sync_state WHERE symbol = ${symbol} AND timeframe = ${timeframe} FOR UPDATE`,
        (rows) => rows[0]?.owner ?? null
      )

    /** `owner` is the runner running the stream's loop; kept when not given. */
    const setStatus = (symbol: string, timeframe: Timeframe, status: StreamStatus, owner: string | null = null) =>
      sql`INSERT INTO sync_state (symbol, timeframe, status, owner) VALUES (${symbol}, ${timeframe}, ${status}, ${owner})
          ON CONFLICT (symbol, timeframe) DO UPDATE SET status = excluded.status,
            owner = COALESCE(excluded.owner, sync_state.owner), updated_at = now()`.pipe(Effect.asVoid)

    /** `error` must already be redacted: it is shown on the status page. */
    const recordFailure = (symbol: string, timeframe: Timeframe, error: string) =>
      sql`INSERT INTO sync_state (symbol, timeframe, last_error, consecutive_failures) VALUES (${symbol}, ${timeframe}, ${error}, 1)
          ON CONFLICT (symbol, timeframe) DO UPDATE SET last_error = excluded.last_error,
            consecutive_failures = sync_state.consecutive_failures + 1, updated_at = now()`.pipe(Effect.asVoid)

    /** Replaces the last error with a clearer account of the same failure (already counted by `recordFailure`). */
    const explainFailure = (symbol: string, timeframe: Timeframe, error: string) =>
      sql`UPDATE sync_state SET last_error = ${error}, updated_at = now() WHERE symbol = ${symbol} AND timeframe = ${timeframe}`.pipe(Effect.asVoid)

    const logFetch = (record: FetchRecord) =>
      sql`INSERT INTO fetch_log (symbol, timeframe, purpose, range_from, range_to, bars_received, request_id, status, http_status, error)
          VALUES (${record.symbol}, ${record.timeframe}, ${record.purpose}, ${new Date(record.from)}, ${new Date(record.to)},
                  ${record.barsReceived}, ${record.requestId}, ${record.status}, ${record.httpStatus}, ${record.error})`.pipe(
        Effect.asVoid
      )

    return { state, states, advance, setStatus, claimedBy, recordFailure, logFetch, recordHistoryFrom, recordDelay, explainFailure } as const
  })
}) {}
