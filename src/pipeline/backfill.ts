import { Clock, Data, Effect, Option, Stream } from "effect"
import { AppConfig, massiveHistoryYears, type AppConfigShape } from "../config.ts"
import type { SymbolSpec } from "../domain/symbol.ts"
import { floorTo, timeframeMillis, type Timeframe } from "../domain/timeframe.ts"
import type { MassiveError } from "../sources/massive/errors.ts"
import { MassiveClient, type MassivePageRequest } from "../sources/massive/client.ts"
import { SyncRepo, type FetchPurpose } from "../store/sync-repo.ts"
import { Ingest } from "./ingest.ts"

/** A stream's fetch failed for good (or ran out of retries): which stream, which range, what the vendor said. */
export class StreamFetchFailed extends Data.TaggedError("StreamFetchFailed")<{
  readonly symbol: string
  readonly timeframe: Timeframe
  readonly from: number
  readonly to: number
  readonly cause: MassiveError
}> {
  override get message() {
    return `${this.symbol} ${this.timeframe} [${new Date(this.from).toISOString()}, ${new Date(this.to).toISOString()}): ${this.cause.message}`
  }
}

/** The plan refuses even the newest bars of a symbol: no later start helps, the plan lacks the asset. */
export class PlanLacksAsset extends Data.TaggedError("PlanLacksAsset")<{
  readonly symbol: string
  readonly timeframe: Timeframe
  readonly ticker: string
  readonly cause: MassiveError
}> {
  override get message() {
    return `${this.symbol} ${this.timeframe}: the Massive plan does not cover ${this.ticker} at all — even its newest bars are refused (${this.cause.message}); upgrade the plan or remove ${this.symbol} from SYMBOLS/STREAMS`
  }
}

export class UnknownStreamSymbol extends Data.TaggedError("UnknownStreamSymbol")<{
  readonly symbol: string
  readonly known: ReadonlyArray<string>
}> {
  override get message() {
    return `unknown symbol ${this.symbol}: configured symbols are ${this.known.join(", ")} (setting SYMBOLS)`
  }
}

export interface RunTotals {
  /** Bars the vendor sent. */
  readonly fetched: number
  /** Bars written (new or changed). */
  readonly stored: number
  readonly unchanged: number
  /** Bars that were stored before and came back with other values. */
  readonly changed: number
  readonly rejected: number
  readonly pages: number
  readonly requests: number
  readonly retries: number
}

export interface Progress extends RunTotals {
  readonly symbol: string
  readonly timeframe: Timeframe
  /** Where the run started and will end, and how far it has come (all Unix ms). */
  readonly from: number
  readonly to: number
  readonly reached: number
}

export interface RunRequest {
  readonly symbol: string
  readonly timeframe: Timeframe
  /** Start of history to ask for; the stream's watermark wins when it is later. */
  readonly from?: number
  /** End (exclusive); capped at the last closed bar. */
  readonly to?: number
  readonly purpose?: FetchPurpose
  /** Ask again for [from, to) whatever the watermark says, and leave the watermark alone (re-verification). */
  readonly refetch?: boolean
  readonly onProgress?: (progress: Progress) => Effect.Effect<void>
  /** The runner whose stream loop runs this: each page is refused once another runner has claimed the stream. */
  readonly owner?: string
}

export interface RunReport extends RunTotals {
  readonly symbol: string
  readonly timeframe: Timeframe
  readonly from: number
  readonly to: number
  /** True when the watermark was already at the end: nothing was asked. */
  readonly upToDate: boolean
}

const month = 31 * 24 * 3_600_000
const year = 366 * 24 * 3_600_000
/** The vendor advises at most about a month of minute bars per request window; coarser bars get longer windows. */
export const requestWindowMillis = (timeframe: Timeframe): number => Math.min(year, Math.max(month, 40_000 * timeframeMillis[timeframe]))

/** `[from, to)` cut into request windows, in order. */
export const requestWindows = (from: number, to: number, timeframe: Timeframe): ReadonlyArray<{ from: number; to: number }> => {
  const step = requestWindowMillis(timeframe)
  const windows: Array<{ from: number; to: number }> = []
  for (let start = from; start < to; start += step) windows.push({ from: start, to: Math.min(to, start + step) })
  return windows
}

const yearMillis = 365.25 * 24 * 3_600_000

/** Where a stream's history starts: BACKFILL_FROM, else as far back as the plan covers (at a UTC midnight). */
export const historyStart = (config: AppConfigShape, now: number): number =>
  Option.getOrElse(config.backfillFrom, () => floorTo(now - massiveHistoryYears(config.massive) * yearMillis, "D1"))

/** A refused window: the vendor's 403 NOT_AUTHORIZED. */
const isRefusal = (error: unknown): error is StreamFetchFailed => error instanceof StreamFetchFailed && error.cause._tag === "NotEntitled"

/**
 * Backfill and incremental sync are one loop: from the watermark (or the requested start) to the last
 * closed bar, window by window, page by page. Pages are stored in order, the next one fetched while the
 * current one is written, so memory holds two pages and a stop at any point resumes from the watermark.
 * The watermark moves only over what was asked and answered, joined to where it stood, and never past
 * the settle line: newer bars are stored when they come and asked for again on the next pass.
 */
export class Backfill extends Effect.Service<Backfill>()("Pipeline/Backfill", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const client = yield* MassiveClient
    const ingest = yield* Ingest
    const syncRepo = yield* SyncRepo

    const specFor = (symbol: string): Effect.Effect<SymbolSpec, UnknownStreamSymbol> => {
      const spec = config.symbols.find((s) => s.symbol === symbol)
      return spec ? Effect.succeed(spec) : Effect.fail(new UnknownStreamSymbol({ symbol, known: config.symbols.map((s) => s.symbol) }))
    }

    const run = (request: RunRequest) =>
      ingest.payingRollups((payAsWeGo) => Effect.gen(function* () {
        const { symbol, timeframe } = request
        const spec = yield* specFor(symbol)
        const now = yield* Clock.currentTimeMillis
        const step = timeframeMillis[timeframe]
        const lastClosedEnd = floorTo(now, timeframe)
        const end = Math.min(request.to ?? lastClosedEnd, lastClosedEnd)
        const state = yield* syncRepo.state(symbol, timeframe)
        const watermark = Option.flatMap(state, (s) => Option.fromNullable(s.watermark))
        // Before the plan's first answered day nothing can be had: a default start does not ask for it again.
        const knownHistoryFrom = Option.getOrElse(Option.flatMap(state, (s) => Option.fromNullable(s.historyFrom)), () => Number.NEGATIVE_INFINITY)
        const defaultStart = Math.max(historyStart(config, now), knownHistoryFrom)
        const requested = floorTo(request.from ?? defaultStart, timeframe)
        const start = request.refetch ? requested : Option.match(watermark, { onNone: () => requested, onSome: (w) => Math.max(w, requested) })
        // A run that starts after the watermark leaves it where it is: the range between was never asked.
        const joinsWatermark = !request.refetch && Option.match(watermark, { onNone: () => true, onSome: (w) => start <= w })
        const purpose = request.purpose ?? "backfill"

        const totals = { fetched: 0, stored: 0, unchanged: 0, changed: 0, rejected: 0, pages: 0, requests: 0, retries: 0 }
        const report = (upToDate: boolean): RunReport => ({ symbol, timeframe, from: start, to: end, upToDate, ...totals })
        if (start >= end) return report(true)

        const fetchPage = (window: { from: number; to: number }, pageRequest: MassivePageRequest) =>
          client.fetchPageWithRetry(pageRequest).pipe(
            Effect.tapError((cause) =>
              ingest
                .recordFailedFetch({
                  symbol,
                  timeframe,
                  purpose,
                  range: window,
                  requestId: cause._tag === "UnknownSymbol" ? null : cause.requestId,
                  httpStatus: cause._tag === "UnknownSymbol" ? null : cause.status,
                  error: cause.message
                })
                // The vendor's failure is the one to report; a failure to record it is only logged.
                .pipe(Effect.catchAllCause((recording) => Effect.logWarning("could not record a failed fetch", recording)))
            ),
            Effect.mapError((cause) => new StreamFetchFailed({ symbol, timeframe, from: window.from, to: window.to, cause })),
            Effect.map((fetched) => ({ window, ...fetched }))
          )

        /** Every page of [from, end), stored in order; `joins` says whether the watermark may follow. */
        const fetchRange = (from: number, joins: boolean) => {
          // Every page of every window, in order, following next_url; one page is fetched ahead while the
          // previous one is written, so memory holds at most two pages.
          const pages = Stream.fromIterable(requestWindows(from, end, timeframe)).pipe(
            Stream.flatMap((window) =>
              Stream.paginateEffect({ symbol, timeframe, from: window.from, to: window.to } as MassivePageRequest, (pageRequest) =>
                Effect.map(fetchPage(window, pageRequest), (fetched) => [
                  fetched,
                  fetched.page.nextUrl === null
                    ? Option.none<MassivePageRequest>()
                    : Option.some<MassivePageRequest>({ ...window, symbol, timeframe, nextUrl: fetched.page.nextUrl })
                ] as const)
              )
            ),
            Stream.buffer({ capacity: 1 })
          )
          return Stream.runForEach(pages, ({ window, page, retries }) =>
            Effect.gen(function* () {
              totals.requests += retries + 1
              totals.retries += retries
              const last = page.candles.at(-1)
              // Sorted ascending: after a page with a next_url, every bar before its last one has been answered;
              // an empty page with a next_url answers nothing yet.
              const answeredTo = page.nextUrl === null ? window.to : last ? last.ts + step : null
              // Asked for after the settle line is only stored: the vendor may still publish bars before it.
              const settled = yield* client.settledBefore(now, timeframe, symbol)
              const advanceTo = joins && answeredTo !== null ? Math.min(answeredTo, settled) : null
              const written = yield* ingest.writePage({
                spec,
                timeframe,
                source: "massive",
                purpose,
                range: window,
                candles: page.candles,
                requestId: page.requestId,
                httpStatus: page.status,
                // Not moving, but the stored bars still count: the watermark as it stood is a no-op move.
                advanceTo: advanceTo ?? (request.refetch ? null : Option.getOrNull(watermark)),
                ...(request.owner === undefined ? {} : { owner: request.owner })
              })
              totals.pages += 1
              totals.fetched += written.received
              totals.stored += written.inserted + written.updated
              totals.unchanged += written.unchanged
              totals.changed += written.updated
              totals.rejected += written.rejected
              if (request.onProgress) {
                yield* request.onProgress({ symbol, timeframe, from: start, to: end, reached: advanceTo ?? window.from, ...totals })
              }
              yield* payAsWeGo
            })
          )
        }

        /** Whether the plan answers for the bar at `at` (a one-bar request); fails on anything but an answer or a 403. */
        const answers = (at: number) =>
          fetchPage({ from: at, to: at + step }, { symbol, timeframe, from: at, to: at + step }).pipe(
            Effect.tap(({ retries }) => Effect.sync(() => (totals.requests += retries + 1))),
            Effect.as(true),
            Effect.catchIf(isRefusal, () => Effect.sync(() => ((totals.requests += 1), false)))
          )

        /**
         * A 403 for a window that starts in the past: the plan covers less history. The newest bar is asked
         * first (refused too: the plan lacks the asset, for good); then the first answered UTC day is found by
         * halving [refused, answered] — a few requests, not one per day — recorded, and the run goes on there.
         */
        const findHistoryStart = (refused: StreamFetchFailed) =>
          Effect.gen(function* () {
            const newest = end - step
            const lacksAsset = new PlanLacksAsset({ symbol, timeframe, ticker: spec.ticker, cause: refused.cause })
            if (refused.from >= floorTo(newest, "D1") || !(yield* answers(newest))) {
              // The status page shows why, not only the vendor's generic refusal.
              yield* syncRepo.explainFailure(symbol, timeframe, lacksAsset.message)
              return yield* lacksAsset
            }
            let lo = floorTo(refused.from, "D1")
            let hi = newest
            for (;;) {
              const mid = Math.max(lo + timeframeMillis.D1, floorTo(lo + (hi - lo) / 2, "D1"))
              if (mid >= hi) break
              if (yield* answers(mid)) hi = mid
              else lo = mid
            }
            const historyFrom = floorTo(hi, timeframe)
            yield* syncRepo.recordHistoryFrom(symbol, timeframe, historyFrom, joinsWatermark)
            yield* Effect.logWarning(
              `${symbol} ${timeframe}: the Massive plan answers only from ${new Date(historyFrom).toISOString()} (older history is refused with 403); the stream's history starts there`
            )
            return historyFrom
          })

        yield* fetchRange(start, joinsWatermark).pipe(
          Effect.catchIf(isRefusal, (refused) =>
            Effect.flatMap(findHistoryStart(refused), (historyFrom) => {
              const resumeFrom = Math.max(historyFrom, refused.from)
              return resumeFrom >= end ? Effect.void : fetchRange(resumeFrom, joinsWatermark)
            })
          )
        )
        // The status page shows the plan's delay as the vendor's answers left it.
        const delay = yield* client.planDelayMinutes(symbol)
        if (Option.getOrNull(Option.flatMap(state, (s) => Option.fromNullable(s.delayMinutes))) !== delay) {
          yield* syncRepo.recordDelay(symbol, timeframe, delay)
        }
        return report(false)
      })).pipe(Effect.annotateLogs({ stream: `${request.symbol}:${request.timeframe}` }), Effect.withSpan("Backfill.run"))

    /** One incremental pass: from the watermark to the last closed bar; a no-op (no request) when up to date. */
    const sync = (request: Omit<RunRequest, "purpose" | "to">) => run({ ...request, purpose: "sync" })

    return { run, sync, specFor } as const
  })
}) {}
