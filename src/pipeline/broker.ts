import { Clock, Data, Effect, Either, Option } from "effect"
import { AppConfig, brokerStreams, type BrokerStream } from "../config.ts"
import { compareWindow, minuteOf, quoteOffset, type Stats, type WindowComparison } from "../domain/broker-compare.ts"
import { pipSize } from "../domain/symbol.ts"
import { MassiveClient } from "../sources/massive/client.ts"
import { MetaApiClient } from "../sources/metaapi/client.ts"
import type { MetaApiError } from "../sources/metaapi/errors.ts"
import { BrokerRepo, type BrokerQuote, type BrokerState, type ComparisonStatus, type StoredComparison } from "../store/broker-repo.ts"
import { CandleStore } from "../store/candle-store.ts"
import { describeError } from "../store/database-error.ts"

const minute = 60_000

/** MetaApi is not configured: every broker feature is off, and this says why. */
export class BrokerOff extends Data.TaggedError("BrokerOff")<{ readonly reason: string }> {
  override get message() {
    return `broker features off: ${this.reason}`
  }
}

/** The account or symbol asked for is not a configured broker stream. */
export class UnknownBrokerStream extends Data.TaggedError("UnknownBrokerStream")<{
  readonly account: string
  readonly symbol: string
  readonly message: string
}> {}

/** MetaApi failed for good (or ran out of retries); the cause says what it answered, without the token. */
export class BrokerFetchFailed extends Data.TaggedError("BrokerFetchFailed")<{
  readonly account: string
  readonly symbol: string
  readonly cause: MetaApiError
}> {
  override get message() {
    return `${this.account}:${this.symbol}: ${this.cause.message}`
  }
}

export type BrokerError = BrokerOff | UnknownBrokerStream | BrokerFetchFailed

/** Which broker stream: a configured account and one of our symbols (`XAUUSD`, not the broker's `XAUUSD.a`). */
export interface BrokerStreamRef {
  readonly account: string
  readonly symbol: string
}

/** Mean, largest |value| and sample standard deviation (n − 1) of broker close − vendor close. */
export interface DiffStats {
  readonly mean: number
  readonly max_abs: number
  readonly std: number
}

/** A window [from, to) in ISO 8601 UTC, whole minutes. */
export interface WindowReport {
  readonly from: string
  readonly to: string
  readonly minutes: number
}

/** The statistics a comparison reports and stores. */
export interface ComparisonStats {
  /** Minutes present on both sides. */
  readonly samples: number
  readonly vendor_minutes: number
  readonly broker_minutes: number
  readonly vendor_only: number
  readonly broker_only: number
  /** (vendor_only + broker_only) / minutes on either side; null when neither side has a minute. */
  readonly one_sided_share: number | null
  /** In price; null without samples (never a zero difference). */
  readonly diff: DiffStats | null
  readonly diff_pips: DiffStats | null
}

/** `broker compare` and the API's comparison: the window's statistics, which minutes one side lacks, and the latest prices. */
export interface BrokerComparisonReport extends ComparisonStats {
  readonly account: string
  readonly symbol: string
  readonly broker_symbol: string
  readonly window: WindowReport
  readonly status: Exclude<ComparisonStatus, "error">
  readonly pip_size: number
  /** The minutes (ISO open times) only the vendor has, and only the broker has. */
  readonly vendor_only_minutes: ReadonlyArray<string>
  readonly broker_only_minutes: ReadonlyArray<string>
  /** The vendor's newest stored M1 close beside the broker's current bid/ask (`broker_time`: the server's wall clock). */
  readonly latest: {
    readonly vendor_close: number | null
    readonly vendor_ts: string | null
    readonly bid: number
    readonly ask: number
    readonly broker_time: string
  }
}

/** One stored run of the comparison (`broker_comparisons`), as history shows it. */
export interface ComparisonEntry extends ComparisonStats {
  readonly id: number
  readonly account: string
  readonly symbol: string
  readonly broker_symbol: string
  readonly window: WindowReport
  readonly compared_at: string
  readonly status: ComparisonStatus
  readonly error: string | null
}

/** The broker's offset from the vendor over the sampled quotes: mid − close of the vendor bar of the same minute. */
export interface OffsetReport {
  readonly account: string
  readonly symbol: string
  readonly broker_symbol: string
  /** Quotes considered (the newest `samples`), and those with a vendor bar of their minute. */
  readonly quotes: number
  readonly matched: number
  /** Span of the quotes considered (ISO), null without quotes. */
  readonly from: string | null
  readonly to: string | null
  readonly mean: number | null
  readonly std: number | null
  readonly mean_pips: number | null
  readonly std_pips: number | null
  readonly pip_size: number
  readonly threshold_pips: number
  /** `offset` is the mean (price, to add to the vendor's price) when |mean| exceeds the threshold, else 0; null without data. */
  readonly recommendation: { readonly use_offset: boolean; readonly offset: number | null }
}

export interface QuoteEntry {
  readonly ts: string
  readonly bid: number
  readonly ask: number
  readonly broker_time: string | null
}

/** Where broker features are: off with the reason, or the state of every broker stream the store knows. */
export interface BrokerStates {
  readonly off: string | null
  readonly streams: ReadonlyArray<BrokerState>
}

const iso = (ms: number) => new Date(ms).toISOString()
const diffStats = (s: Stats | null): DiffStats | null => (s === null ? null : { mean: s.mean, max_abs: s.maxAbs, std: s.std })
const windowReport = (from: number, to: number): WindowReport => ({ from: iso(from), to: iso(to), minutes: Math.round((to - from) / minute) })

const statsOf = (c: WindowComparison): ComparisonStats => ({
  samples: c.samples,
  vendor_minutes: c.vendorMinutes,
  broker_minutes: c.brokerMinutes,
  vendor_only: c.vendorOnly,
  broker_only: c.brokerOnly,
  one_sided_share: c.oneSidedShare,
  diff: diffStats(c.diff),
  diff_pips: diffStats(c.diffPips)
})

const entryOf = (row: StoredComparison): ComparisonEntry => {
  const stats = (mean: number | null, maxAbs: number | null, std: number | null): DiffStats | null =>
    mean === null || maxAbs === null || std === null ? null : { mean, max_abs: maxAbs, std }
  return {
    id: row.id,
    account: row.account,
    symbol: row.symbol,
    broker_symbol: row.brokerSymbol,
    window: windowReport(row.windowFrom, row.windowTo),
    compared_at: iso(row.comparedAt),
    status: row.status,
    samples: row.samples,
    vendor_minutes: row.vendorMinutes,
    broker_minutes: row.brokerMinutes,
    vendor_only: row.vendorOnly,
    broker_only: row.brokerOnly,
    one_sided_share: row.oneSidedShare,
    diff: stats(row.meanDiff, row.maxAbsDiff, row.stdDiff),
    diff_pips: stats(row.meanDiffPips, row.maxAbsDiffPips, row.stdDiffPips),
    error: row.error
  }
}

/**
 * The broker side: samples the broker's quotes, compares its M1 candles with the vendor's stored bars minute
 * by minute (UTC), measures its offset, and keeps the history of comparisons so drift can be followed.
 */
export class Broker extends Effect.Service<Broker>()("Pipeline/Broker", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const client = yield* MetaApiClient
    const vendor = yield* MassiveClient
    const repo = yield* BrokerRepo
    const candles = yield* CandleStore
    const configured = brokerStreams(config)
    const settings = config.broker

    /** The configured broker stream for an account and one of our symbols; a clear failure otherwise. */
    const resolve = (ref: BrokerStreamRef): Effect.Effect<BrokerStream & { readonly pip: number }, BrokerOff | UnknownBrokerStream> => {
      if (configured.off !== null) return Effect.fail(new BrokerOff({ reason: configured.off }))
      const symbol = ref.symbol.trim().toUpperCase()
      const account = ref.account.trim()
      if (!settings.accounts.includes(account)) {
        return Effect.fail(
          new UnknownBrokerStream({ account, symbol, message: `unknown MetaApi account ${account}: configured accounts are ${settings.accounts.join(", ")} (METAAPI_ACCOUNT_ID)` })
        )
      }
      const stream = configured.streams.find((s) => s.account === account && s.symbol === symbol)
      const spec = config.symbols.find((s) => s.symbol === symbol)
      if (stream === undefined || spec === undefined) {
        const known = [...new Set(configured.streams.map((s) => s.symbol))].join(", ")
        return Effect.fail(new UnknownBrokerStream({ account, symbol, message: `no broker symbol for ${ref.symbol}: broker symbols are configured for ${known} (BROKER_SYMBOLS)` }))
      }
      return Effect.succeed({ ...stream, pip: pipSize(spec) })
    }

    const fetchFailed = (stream: BrokerStream) => (cause: MetaApiError) => new BrokerFetchFailed({ account: stream.account, symbol: stream.symbol, cause })

    /** One quote from the broker, stored; the stream's last_quote_at follows it. */
    const sample = (ref: BrokerStreamRef) =>
      Effect.gen(function* () {
        const stream = yield* resolve(ref)
        const price = yield* client.currentPrice(stream.account, stream.brokerSymbol).pipe(Effect.mapError(fetchFailed(stream)))
        const quote: BrokerQuote = {
          account: stream.account,
          symbol: stream.symbol,
          brokerSymbol: stream.brokerSymbol,
          ts: price.time,
          bid: price.bid,
          ask: price.ask,
          brokerTime: price.brokerTime
        }
        yield* repo.insertQuote(quote)
        yield* repo.recordQuoteAt(stream.account, stream.symbol, quote.ts)
        return quote
      }).pipe(Effect.withSpan("Broker.sample", { attributes: { account: ref.account, symbol: ref.symbol } }))

    /** Deletes the stream's quotes older than BROKER_QUOTE_RETENTION_DAYS before `now`; how many went. */
    const pruneQuotes = (ref: BrokerStreamRef, now: number) =>
      Effect.flatMap(resolve(ref), (stream) => repo.pruneQuotes(stream.account, stream.symbol, now - settings.quoteRetentionDays * 86_400_000))

    /**
     * The window ending at the last whole minute before `end` (default now), and never after the vendor's settle
     * line: a minute the vendor may still publish would count as broker-only.
     */
    const windowFor = (symbol: string, windowMinutes: number | undefined, end: number | undefined) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const to = Math.min(minuteOf(end ?? now), yield* vendor.settledBefore(now, "M1", symbol))
        return { from: to - (windowMinutes ?? settings.compareWindowMinutes) * minute, to }
      })

    /** Broker M1 candles against the vendor's stored M1 bars over one window, minute by minute in UTC. */
    const compareWindowOf = (stream: BrokerStream & { readonly pip: number }, window: { readonly from: number; readonly to: number }) =>
      Effect.gen(function* () {
        const brokerBars = yield* client
          .candles({ account: stream.account, symbol: stream.brokerSymbol, timeframe: "1m", from: window.from, to: window.to })
          .pipe(Effect.mapError(fetchFailed(stream)))
        const vendorBars = yield* candles.range({
          symbol: stream.symbol,
          timeframe: "M1",
          from: window.from,
          to: window.to,
          limit: Math.ceil((window.to - window.from) / minute) + 1
        })
        const compared = compareWindow(vendorBars, brokerBars, window, stream.pip)
        const status: BrokerComparisonReport["status"] = compared.brokerMinutes === 0 ? "no_broker_data" : compared.vendorMinutes === 0 ? "no_vendor_data" : "ok"
        return { compared, status, vendorBars, brokerBars }
      })

    /** The comparison report over a window (default COMPARE_WINDOW_MINUTES ending at the vendor's settle line). */
    const compare = (input: BrokerStreamRef & { readonly windowMinutes?: number; readonly end?: number }) =>
      Effect.gen(function* () {
        const stream = yield* resolve(input)
        const window = yield* windowFor(stream.symbol, input.windowMinutes, input.end)
        const { compared, status, vendorBars, brokerBars } = yield* compareWindowOf(stream, window)
        const price = yield* client.currentPrice(stream.account, stream.brokerSymbol).pipe(Effect.mapError(fetchFailed(stream)))
        const lastVendor = yield* candles.lastBar(stream.symbol, "M1")
        const vendorMinutes = new Set(vendorBars.map((b) => minuteOf(b.ts)))
        const brokerMinutes = new Set(brokerBars.map((b) => minuteOf(b.ts)))
        return {
          account: stream.account,
          symbol: stream.symbol,
          broker_symbol: stream.brokerSymbol,
          window: windowReport(window.from, window.to),
          status,
          pip_size: stream.pip,
          ...statsOf(compared),
          vendor_only_minutes: [...vendorMinutes].filter((ts) => !brokerMinutes.has(ts)).sort((a, b) => a - b).map(iso),
          broker_only_minutes: [...brokerMinutes].filter((ts) => !vendorMinutes.has(ts)).sort((a, b) => a - b).map(iso),
          latest: {
            vendor_close: Option.match(lastVendor, { onNone: () => null, onSome: (b) => b.close }),
            vendor_ts: Option.match(lastVendor, { onNone: () => null, onSome: (b) => iso(b.ts) }),
            bid: price.bid,
            ask: price.ask,
            broker_time: price.brokerTime
          }
        } satisfies BrokerComparisonReport
      }).pipe(Effect.withSpan("Broker.compare", { attributes: { account: input.account, symbol: input.symbol } }))

    /**
     * The scheduled comparison: the configured window ending at the vendor's settle line (or `end`), stored as one
     * row whatever happens — `ok`, `no_broker_data` (the broker answered no candle: no statistics, never a zero
     * difference), `no_vendor_data`, or `error` with MetaApi's answer. Fails only when the store does.
     */
    const compareAndRecord = (input: BrokerStreamRef & { readonly end?: number }) =>
      Effect.gen(function* () {
        const stream = yield* resolve(input)
        const window = yield* windowFor(stream.symbol, undefined, input.end)
        // MetaApi's failure is recorded; a failing store fails the run.
        const outcome = yield* compareWindowOf(stream, window).pipe(
          Effect.map((result) => Either.right(result)),
          Effect.catchTag("BrokerFetchFailed", (error) => Effect.succeed(Either.left(error)))
        )
        const compared = Either.isLeft(outcome) ? null : outcome.right.compared
        const stored = yield* repo.recordComparison({
          account: stream.account,
          symbol: stream.symbol,
          brokerSymbol: stream.brokerSymbol,
          windowFrom: window.from,
          windowTo: window.to,
          comparedAt: yield* Clock.currentTimeMillis,
          status: Either.isLeft(outcome) ? "error" : outcome.right.status,
          samples: compared?.samples ?? 0,
          vendorMinutes: compared?.vendorMinutes ?? 0,
          brokerMinutes: compared?.brokerMinutes ?? 0,
          vendorOnly: compared?.vendorOnly ?? 0,
          brokerOnly: compared?.brokerOnly ?? 0,
          oneSidedShare: compared?.oneSidedShare ?? null,
          meanDiff: compared?.diff?.mean ?? null,
          maxAbsDiff: compared?.diff?.maxAbs ?? null,
          stdDiff: compared?.diff?.std ?? null,
          meanDiffPips: compared?.diffPips?.mean ?? null,
          maxAbsDiffPips: compared?.diffPips?.maxAbs ?? null,
          stdDiffPips: compared?.diffPips?.std ?? null,
          error: Either.isLeft(outcome) ? describeError(outcome.left) : null
        })
        return entryOf(stored)
      }).pipe(Effect.withSpan("Broker.compareAndRecord", { attributes: { account: input.account, symbol: input.symbol } }))

    /** Offset over the newest `samples` stored quotes (default: one comparison window of quotes). */
    const offset = (input: BrokerStreamRef & { readonly samples?: number }) =>
      Effect.gen(function* () {
        const stream = yield* resolve(input)
        const count = Math.max(1, Math.round(input.samples ?? (settings.compareWindowMinutes * 60) / settings.quoteIntervalSeconds))
        const quotes = yield* repo.latestQuotes(stream.account, stream.symbol, count)
        const first = quotes[0]
        const last = quotes.at(-1)
        const vendorBars =
          first === undefined || last === undefined
            ? []
            : yield* candles.range({
                symbol: stream.symbol,
                timeframe: "M1",
                from: minuteOf(first.ts),
                to: minuteOf(last.ts) + minute,
                limit: Math.ceil((minuteOf(last.ts) + minute - minuteOf(first.ts)) / minute) + 1
              })
        const measured = quoteOffset(quotes, vendorBars, stream.pip, settings.offsetThresholdPips)
        return {
          account: stream.account,
          symbol: stream.symbol,
          broker_symbol: stream.brokerSymbol,
          quotes: measured.quotes,
          matched: measured.matched,
          from: first === undefined ? null : iso(first.ts),
          to: last === undefined ? null : iso(last.ts),
          mean: measured.mean,
          std: measured.std,
          mean_pips: measured.meanPips,
          std_pips: measured.stdPips,
          pip_size: stream.pip,
          threshold_pips: settings.offsetThresholdPips,
          recommendation: { use_offset: measured.recommendation.useOffset, offset: measured.recommendation.offset }
        } satisfies OffsetReport
      }).pipe(Effect.withSpan("Broker.offset", { attributes: { account: input.account, symbol: input.symbol } }))

    /** Stored quotes with time in [from, to), oldest first. */
    const quotes = (input: BrokerStreamRef & { readonly from: number; readonly to: number; readonly limit?: number }) =>
      Effect.flatMap(resolve(input), (stream) =>
        Effect.map(repo.quotes(stream.account, stream.symbol, input.from, input.to, input.limit), (rows) =>
          rows.map((q): QuoteEntry => ({ ts: iso(q.ts), bid: q.bid, ask: q.ask, broker_time: q.brokerTime }))
        )
      )

    /** Stored comparison runs that ran in [from, to), oldest first. */
    const history = (input: BrokerStreamRef & { readonly from: number; readonly to: number; readonly limit?: number }) =>
      Effect.flatMap(resolve(input), (stream) =>
        Effect.map(repo.comparisons(stream.account, stream.symbol, input.from, input.to, input.limit), (rows) => rows.map(entryOf))
      )

    /** For the status page: off with the reason, or every broker stream's stored state. */
    const states = () => Effect.map(repo.states, (streams): BrokerStates => ({ off: configured.off, streams }))

    return { streams: configured.streams, off: configured.off, resolve, sample, pruneQuotes, compare, compareAndRecord, offset, quotes, history, states } as const
  })
}) {}
