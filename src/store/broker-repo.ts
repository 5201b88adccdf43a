import { SqlClient, type Statement } from "@effect/sql"
import { Effect, Option } from "effect"
import { DatabaseInfo } from "./database.ts"

export type BrokerStatus = "starting" | "live" | "degraded" | "failed" | "off"
export type ComparisonStatus = "ok" | "no_broker_data" | "no_vendor_data" | "error"

/** A broker quote as sampled; `ts` is MetaApi's UTC time of the quote (Unix ms), `brokerTime` the server's wall clock. */
export interface BrokerQuote {
  readonly account: string
  readonly symbol: string
  readonly brokerSymbol: string
  readonly ts: number
  readonly bid: number
  readonly ask: number
  readonly brokerTime: string | null
}

/** Where a broker stream (account × symbol) is: what /api/data/status shows. */
export interface BrokerState {
  readonly account: string
  readonly symbol: string
  readonly brokerSymbol: string
  readonly status: BrokerStatus
  /** Already redacted: shown on the status page. */
  readonly lastError: string | null
  readonly consecutiveFailures: number
  /** UTC time of the newest stored quote (Unix ms). */
  readonly lastQuoteAt: number | null
  readonly lastCompareAt: number | null
  readonly lastCompareStatus: ComparisonStatus | null
  /** The runner running the stream's quote loop (host:port, or "embedded"). */
  readonly owner: string | null
  readonly updatedAt: number
}

/** One comparison run, as stored in `broker_comparisons`. Differences are broker − vendor close. */
export interface ComparisonRecord {
  readonly account: string
  readonly symbol: string
  readonly brokerSymbol: string
  /** [windowFrom, windowTo), Unix ms. */
  readonly windowFrom: number
  readonly windowTo: number
  readonly comparedAt: number
  readonly status: ComparisonStatus
  readonly samples: number
  readonly vendorMinutes: number
  readonly brokerMinutes: number
  readonly vendorOnly: number
  readonly brokerOnly: number
  readonly oneSidedShare: number | null
  readonly meanDiff: number | null
  readonly maxAbsDiff: number | null
  readonly stdDiff: number | null
  readonly meanDiffPips: number | null
  readonly maxAbsDiffPips: number | null
  readonly stdDiffPips: number | null
  /** Already redacted. */
  readonly error: string | null
}

export interface StoredComparison extends ComparisonRecord {
  readonly id: number
}

interface ComparisonRow {
  id: number
  account_id: string
  symbol: string
  broker_symbol: string
  window_from: Date
  window_to: Date
  compared_at: Date
  status: ComparisonStatus
  samples: number
  vendor_minutes: number
  broker_minutes: number
  vendor_only: number
  broker_only: number
  one_sided_share: number | null
  mean_diff: number | null
  max_abs_diff: number | null
  std_diff: number | null
  mean_diff_pips: number | null
  max_abs_diff_pips: number | null
  std_diff_pips: number | null
  error: string | null
}

interface StateRow {
  account_id: string
  symbol: string
  broker_symbol: string
  status: BrokerStatus
  last_error: string | null
  consecutive_failures: number
  last_quote_at: Date | null
  last_compare_at: Date | null
  last_compare_status: ComparisonStatus | null
  owner: string | null
  updated_at: Date
}

const toState = (row: StateRow): BrokerState => ({
  account: row.account_id,
  symbol: row.symbol,
  brokerSymbol: row.broker_symbol,
  status: row.status,
  lastError: row.last_error,
  consecutiveFailures: row.consecutive_failures,
  lastQuoteAt: row.last_quote_at?.getTime() ?? null,
  lastCompareAt: row.last_compare_at?.getTime() ?? null,
  lastCompareStatus: row.last_compare_status,
  owner: row.owner,
  updatedAt: row.updated_at.getTime()
})

const toComparison = (row: ComparisonRow): StoredComparison => ({
  id: row.id,
  account: row.account_id,
  symbol: row.symbol,
  brokerSymbol: row.broker_symbol,
  windowFrom: row.window_from.getTime(),
  windowTo: row.window_to.getTime(),
  comparedAt: row.compared_at.getTime(),
  status: row.status,
  samples: row.samples,
  vendorMinutes: row.vendor_minutes,
  brokerMinutes: row.broker_minutes,
  vendorOnly: row.vendor_only,
  brokerOnly: row.broker_only,
  oneSidedShare: row.one_sided_share,
  meanDiff: row.mean_diff,
  maxAbsDiff: row.max_abs_diff,
  stdDiff: row.std_diff,
  meanDiffPips: row.mean_diff_pips,
  maxAbsDiffPips: row.max_abs_diff_pips,
  stdDiffPips: row.std_diff_pips,
  error: row.error
})

/** The broker side's tables: `broker_quotes` (sampled bid/ask), `broker_comparisons` (one row per run), `broker_state`. */
export class BrokerRepo extends Effect.Service<BrokerRepo>()("Store/BrokerRepo", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const info = yield* DatabaseInfo

    /** A quote sampled twice at the same instant is stored once. */
    const insertQuote = (quote: BrokerQuote) =>
      sql`INSERT INTO broker_quotes (account_id, symbol, broker_symbol, ts, bid, ask, broker_time)
          VALUES (${quote.account}, ${quote.symbol}, ${quote.brokerSymbol}, ${new Date(quote.ts)}, ${quote.bid}, ${quote.ask}, ${quote.brokerTime})
          ON CONFLICT (account_id, symbol, ts) DO NOTHING`.pipe(Effect.asVoid)

    /** Quotes with `ts` in [from, to), oldest first. */
    const quotes = (account: string, symbol: string, from: number, to: number, limit = 100_000) =>
      sql<{ broker_symbol: string; ts: Date; bid: number; ask: number; broker_time: string | null }>`
        SELECT broker_symbol, ts, bid, ask, broker_time FROM broker_quotes
        WHERE account_id = ${account} AND symbol = ${symbol} AND ts >= ${new Date(from)} AND ts < ${new Date(to)}
        ORDER BY ts LIMIT ${limit}`.pipe(
        Effect.map((rows) =>
          rows.map((r): BrokerQuote => ({ account, symbol, brokerSymbol: r.broker_symbol, ts: r.ts.getTime(), bid: r.bid, ask: r.ask, brokerTime: r.broker_time }))
        )
      )

    /** The newest `count` quotes, oldest first. */
    const latestQuotes = (account: string, symbol: string, count: number) =>
      sql<{ broker_symbol: string; ts: Date; bid: number; ask: number; broker_time: string | null }>`
        SELECT broker_symbol, ts, bid, ask, broker_time FROM broker_quotes
        WHERE account_id = ${account} AND symbol = ${symbol} ORDER BY ts DESC LIMIT ${count}`.pipe(
        Effect.map((rows) =>
          rows
            .map((r): BrokerQuote => ({ account, symbol, brokerSymbol: r.broker_symbol, ts: r.ts.getTime(), bid: r.bid, ask: r.ask, brokerTime: r.broker_time }))
            .reverse()
        )
      )

    /** Deletes a stream's quotes older than `before`; how many went. Works on every flavour (no background job needed). */
    const pruneQuotes = (account: string, symbol: string, before: number) =>
      sql<{ n: number }>`WITH gone AS (
          DELETE FROM broker_quotes WHERE account_id = ${account} AND symbol = ${symbol} AND ts < ${new Date(before)} RETURNING 1
        ) SELECT count(*)::int AS n FROM gone`.pipe(Effect.map((rows) => rows[0]?.n ?? 0))

    /**
     * On TimescaleDB, a retention policy that drops whole chunks of broker_quotes older than `days` (replacing
     * any earlier one, so a changed setting takes effect); elsewhere nothing: the sampling loop prunes.
     */
    const applyRetention = (days: number) =>
      info.flavour !== "timescale"
        ? Effect.succeed(false)
        : Effect.as(
            sql.withTransaction(
              Effect.zipRight(
                sql`SELECT remove_retention_policy('broker_quotes', if_exists => TRUE)`,
                sql.unsafe(`SELECT add_retention_policy('broker_quotes', drop_after => $1::interval)`, [`${Math.round(days)} days`])
              )
            ),
            true
          )

    const recordComparison = (record: ComparisonRecord) =>
      sql<ComparisonRow>`INSERT INTO broker_comparisons (account_id, symbol, broker_symbol, window_from, window_to, compared_at, status,
            samples, vendor_minutes, broker_minutes, vendor_only, broker_only, one_sided_share,
            mean_diff, max_abs_diff, std_diff, mean_diff_pips, max_abs_diff_pips, std_diff_pips, error)
          VALUES (${record.account}, ${record.symbol}, ${record.brokerSymbol}, ${new Date(record.windowFrom)}, ${new Date(record.windowTo)},
            ${new Date(record.comparedAt)}, ${record.status}, ${record.samples}, ${record.vendorMinutes}, ${record.brokerMinutes},
            ${record.vendorOnly}, ${record.brokerOnly}, ${record.oneSidedShare}, ${record.meanDiff}, ${record.maxAbsDiff}, ${record.stdDiff},
            ${record.meanDiffPips}, ${record.maxAbsDiffPips}, ${record.stdDiffPips}, ${record.error})
          RETURNING id::int AS id, account_id, symbol, broker_symbol, window_from, window_to, compared_at, status, samples, vendor_minutes,
            broker_minutes, vendor_only, broker_only, one_sided_share, mean_diff, max_abs_diff, std_diff, mean_diff_pips,
            max_abs_diff_pips, std_diff_pips, error`.pipe(
        Effect.flatMap((rows) => (rows[0] === undefined ? Effect.dieMessage("INSERT … RETURNING gave no row") : Effect.succeed(toComparison(rows[0])))),
        Effect.tap((stored) =>
          sql`INSERT INTO broker_state (account_id, symbol, broker_symbol, last_compare_at, last_compare_status)
              VALUES (${stored.account}, ${stored.symbol}, ${stored.brokerSymbol}, ${new Date(stored.comparedAt)}, ${stored.status})
              ON CONFLICT (account_id, symbol) DO UPDATE SET last_compare_at = excluded.last_compare_at,
                last_compare_status = excluded.last_compare_status, updated_at = now()`
        )
      )

    /** Runs compared in [from, to) (by when they ran), oldest first. */
    const comparisons = (account: string, symbol: string, from: number, to: number, limit = 10_000) =>
      sql<ComparisonRow>`SELECT id::int AS id, account_id, symbol, broker_symbol, window_from, window_to, compared_at, status, samples,
            vendor_minutes, broker_minutes, vendor_only, broker_only, one_sided_share, mean_diff, max_abs_diff, std_diff,
            mean_diff_pips, max_abs_diff_pips, std_diff_pips, error
          FROM broker_comparisons
          WHERE account_id = ${account} AND symbol = ${symbol} AND compared_at >= ${new Date(from)} AND compared_at < ${new Date(to)}
          ORDER BY compared_at, id LIMIT ${limit}`.pipe(Effect.map((rows) => rows.map(toComparison)))

    const selectStates = (where: Statement.Fragment) =>
      sql<StateRow>`SELECT account_id, symbol, broker_symbol, status, last_error, consecutive_failures, last_quote_at,
            last_compare_at, last_compare_status, owner, updated_at
          FROM broker_state ${where} ORDER BY account_id, symbol`.pipe(Effect.map((rows) => rows.map(toState)))

    const state = (account: string, symbol: string) =>
      Effect.map(selectStates(sql`WHERE account_id = ${account} AND symbol = ${symbol}`), (rows) => Option.fromNullable(rows[0]))

    /** Every broker stream the store knows, by account then symbol. */
    const states = selectStates(sql``)

    /**
     * A stream's status; `error` (already redacted) is recorded with a failure and cleared by `live`. `owner` is
     * kept when not given.
     */
    const setStatus = (
      stream: { readonly account: string; readonly symbol: string; readonly brokerSymbol: string },
      status: BrokerStatus,
      options: { readonly owner?: string; readonly error?: string } = {}
    ) => {
      const failing = status === "degraded" || status === "failed"
      const lastError = failing ? sql`excluded.last_error` : status === "live" ? sql`NULL` : sql`broker_state.last_error`
      const failures = failing ? sql`broker_state.consecutive_failures + 1` : status === "live" ? sql`0` : sql`broker_state.consecutive_failures`
      return sql`INSERT INTO broker_state (account_id, symbol, broker_symbol, status, owner, last_error, consecutive_failures)
          VALUES (${stream.account}, ${stream.symbol}, ${stream.brokerSymbol}, ${status}, ${options.owner ?? null}, ${options.error ?? null},
                  ${failing ? 1 : 0})
          ON CONFLICT (account_id, symbol) DO UPDATE SET status = excluded.status, broker_symbol = excluded.broker_symbol,
            owner = COALESCE(excluded.owner, broker_state.owner), last_error = ${lastError}, consecutive_failures = ${failures},
            updated_at = now()`.pipe(Effect.asVoid)
    }

    /** The newest quote's time, after it is stored. */
    const recordQuoteAt = (account: string, symbol: string, at: number) =>
      sql`UPDATE broker_state SET last_quote_at = GREATEST(last_quote_at, ${new Date(at)}), updated_at = now()
          WHERE account_id = ${account} AND symbol = ${symbol}`.pipe(Effect.asVoid)

    /** Broker features are off: every known stream says so, with the reason, instead of its last state from an earlier run. */
    const markAllOff = (reason: string) =>
      sql`UPDATE broker_state SET status = 'off', last_error = ${reason}, updated_at = now() WHERE status <> 'off' OR last_error IS DISTINCT FROM ${reason}`.pipe(
        Effect.asVoid
      )

    return {
      insertQuote,
      quotes,
      latestQuotes,
      pruneQuotes,
      applyRetention,
      recordComparison,
      comparisons,
      state,
      states,
      setStatus,
      recordQuoteAt,
      markAllOff
    } as const
  })
}) {}
