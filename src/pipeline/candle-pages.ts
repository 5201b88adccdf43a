import { Effect } from "effect"
import type { DayBoundary } from "../config.ts"
import { type FillMode, fillBars, slotsEnd, type ServedBar } from "../domain/fill.ts"
import type { SymbolSpec } from "../domain/symbol.ts"
import { type Timeframe, timeframeMillis } from "../domain/timeframe.ts"
import { CandleStore } from "../store/candle-store.ts"

export interface CandlePageRequest {
  readonly spec: SymbolSpec
  readonly timeframe: Timeframe
  /** First bar slot, inclusive, Unix ms. */
  readonly from: number
  /** Exclusive. */
  readonly to: number
  readonly limit: number
  readonly fill: FillMode
  readonly boundary: DayBoundary
}

/** One page as served: stored bars (and stand-ins, with a fill) and where the next page starts, or null. */
export interface CandlePage {
  readonly bars: ReadonlyArray<ServedBar>
  readonly next: number | null
}

/**
 * The read path shared by `GET /api/data/candles` and the exports: at most `limit` bars of [from, to), oldest
 * first, with query-time fill. A filled page ends after `limit` open slots, so its work is bounded by the limit
 * whatever the range; `prev` carries the close from before `from`, so a cursor's next page fills on seamlessly.
 */
export const readCandlePage = (request: CandlePageRequest) =>
  Effect.gen(function* () {
    const store = yield* CandleStore
    const { spec, timeframe, from, to, limit, fill, boundary } = request
    const barMillis = timeframeMillis[timeframe]
    const ask = (end: number, count: number) => store.range({ symbol: spec.symbol, timeframe, from, to: end, limit: count, dayBoundary: boundary })
    if (fill === "none") {
      const rows = yield* ask(to, limit + 1)
      return {
        bars: rows.slice(0, limit).map((bar) => ({ ...bar, filled: false as const })),
        next: rows.length > limit ? rows[limit]!.ts : null
      } satisfies CandlePage
    }
    // Stored bars outside sessions can only end the page sooner.
    let windowEnd = slotsEnd(spec.instrumentClass, from, to, barMillis, limit + 1)
    const stored = yield* ask(windowEnd, limit + 1)
    if (stored.length > limit) windowEnd = Math.min(windowEnd, stored[limit]!.ts)
    const before = yield* store.barsBefore(spec.symbol, timeframe, from, 1)
    const served = fillBars(stored.filter((bar) => bar.ts < windowEnd), {
      mode: fill,
      instrumentClass: spec.instrumentClass,
      from,
      to: windowEnd,
      barMillis,
      previousClose: before[0]?.close ?? null
    })
    return {
      bars: served.slice(0, limit),
      next: served.length > limit ? served[limit]!.ts : windowEnd < to ? windowEnd : null
    } satisfies CandlePage
  }).pipe(Effect.withSpan("readCandlePage", { attributes: { symbol: request.spec.symbol, timeframe: request.timeframe, fill: request.fill } }))
