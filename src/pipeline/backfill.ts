import { Clock, Data, Effect, Option, Stream } from "effect"
import { AppConfig, type AppConfigShape } from "../config.ts"
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

const tenYears = 10 * 365.25 * 24 * 3_600_000

/** Where a stream's history starts: BACKFILL_FROM, else ten years before now (at a UTC midnight). */
export const historyStart = (config: AppConfigShape, now: number): number =>
  Option.getOrElse(config.backfillFrom, () => floorTo(now - tenYears, "D1"))

/**
 * Backfill and incremental sync are one loop: from the watermark (or the requested start) to the last
 * closed bar, window by window, page by page. Pages are stored in order, the next one fetched while the
 * current one is written, so memory holds two pages and a stop at any point resumes from the watermark.
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
      Effect.gen(function* () {
        const { symbol, timeframe } = request
        const spec = yield* specFor(symbol)
        const now = yield* Clock.currentTimeMillis
        const step = timeframeMillis[timeframe]
        const lastClosedEnd = floorTo(now, timeframe)
        const end = Math.min(request.to ?? lastClosedEnd, lastClosedEnd)
        const defaultStart = historyStart(config, now)
        const state = yield* syncRepo.state(symbol, timeframe)
        const watermark = Option.flatMap(state, (s) => Option.fromNullable(s.watermark))
        const requested = floorTo(request.from ?? defaultStart, timeframe)
        const start = request.refetch ? requested : Option.match(watermark, { onNone: () => requested, onSome: (w) => Math.max(w, requested) })
        const purpose = request.purpose ?? "backfill"

        const totals = { fetched: 0, stored: 0, unchanged: 0, changed: 0, rejected: 0, pages: 0, requests: 0, retries: 0 }
        const report = (upToDate: boolean): RunReport => ({ symbol, timeframe, from: start, to: end, upToDate, ...totals })
        if (start >= end) return report(true)
        const payAsWeGo = yield* ingest.rollupPacer

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

        // Every page of every window, in order, following next_url; one page is fetched ahead while the
        // previous one is written, so memory holds at most two pages.
        const pages = Stream.fromIterable(requestWindows(start, end, timeframe)).pipe(
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

        yield* Stream.runForEach(pages, ({ window, page, retries }) =>
          Effect.gen(function* () {
            totals.requests += retries + 1
            totals.retries += retries
            const last = page.candles.at(-1)
            // Sorted ascending: after a page with a next_url, every bar before its last one has been seen.
            const advanceTo = page.nextUrl !== null && last ? last.ts + step : window.to
            const written = yield* ingest.writePage({
              spec,
              timeframe,
              source: "massive",
              purpose,
              range: window,
              candles: page.candles,
              requestId: page.requestId,
              httpStatus: page.status,
              advanceTo: request.refetch ? null : advanceTo
            })
            totals.pages += 1
            totals.fetched += written.received
            totals.stored += written.inserted + written.updated
            totals.unchanged += written.unchanged
            totals.changed += written.updated
            totals.rejected += written.rejected
            if (request.onProgress) {
              yield* request.onProgress({ symbol, timeframe, from: start, to: end, reached: advanceTo, ...totals })
            }
            yield* payAsWeGo
          })
        )
        return report(false)
      }).pipe(ingest.thenPayRollups, Effect.annotateLogs({ stream: `${request.symbol}:${request.timeframe}` }), Effect.withSpan("Backfill.run"))

    /** One incremental pass: from the watermark to the last closed bar; a no-op (no request) when up to date. */
    const sync = (request: Omit<RunRequest, "purpose" | "to">) => run({ ...request, purpose: "sync" })

    return { run, sync, specFor } as const
  })
}) {}
