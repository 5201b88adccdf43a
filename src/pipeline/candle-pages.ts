import { Effect } from "effect"
import type { DayBoundary } from "../config.ts"
import type { StoredBar } from "../domain/candle.ts"
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
/** Bars read, and slots filled, this many at a time with other work let in between (see `readCandlePage`). */
export const pieceBars = 2_000

export const readCandlePage = (request: CandlePageRequest) =>
  Effect.gen(function* () {
    const store = yield* CandleStore
    const { spec, timeframe, from, to, limit, fill, boundary } = request
    const barMillis = timeframeMillis[timeframe]
    /**
     * Up to `count` bars from `from`, read `pieceBars` at a time with other fibers let in between: the driver turns
     * rows into objects as they arrive, and 50,000 at once would hold the thread for tens of ms.
     */
    const ask = (end: number, count: number) =>
      Effect.gen(function* () {
        const bars: Array<StoredBar> = []
        let cursor = from
        for (;;) {
          const want = Math.min(pieceBars, count - bars.length)
          // One bar more than wanted: its open time is where the next piece starts (a bucket's start, for rollups).
          const piece = yield* store.range({ symbol: spec.symbol, timeframe, from: cursor, to: end, limit: want + 1, dayBoundary: boundary })
          for (let i = 0; i < Math.min(want, piece.length); i++) bars.push(piece[i]!)
          if (piece.length <= want || bars.length >= count) return bars
          cursor = piece[want]!.ts
          yield* Effect.yieldNow()
        }
      })
    if (fill === "none") {
      const rows = yield* ask(to, limit + 1)
      return {
        bars: rows.slice(0, limit).map((bar) => ({ ...bar, filled: false as const })),
        next: rows.length > limit ? rows[limit]!.ts : null
      } satisfies CandlePage
    }
    // The page ends after `limit` open slots; stored bars outside sessions can only end it sooner.
    let windowEnd = slotsEnd(spec.instrumentClass, from, to, barMillis, limit + 1)
    const stored = yield* ask(windowEnd, limit + 1)
    if (stored.length > limit) windowEnd = Math.min(windowEnd, stored[limit]!.ts)
    const before = yield* store.barsBefore(spec.symbol, timeframe, from, 1)
    // Filled a few thousand slots at a time: a 50,000-slot page holds the thread a few ms at a time, not for all of it.
    const served: Array<ServedBar> = []
    let previousClose = before[0]?.close ?? null
    let next = 0
    for (let pieceFrom = from; pieceFrom < windowEnd; ) {
      yield* Effect.yieldNow()
      const pieceTo = Math.min(windowEnd, slotsEnd(spec.instrumentClass, pieceFrom, windowEnd, barMillis, pieceBars))
      const first = next
      while (next < stored.length && stored[next]!.ts < pieceTo) next++
      const piece = fillBars(stored.slice(first, next), { mode: fill, instrumentClass: spec.instrumentClass, from: pieceFrom, to: pieceTo, barMillis, previousClose })
      for (const bar of piece) {
        served.push(bar)
        if (bar.close !== null) previousClose = bar.close
      }
      pieceFrom = pieceTo
    }
    return {
      bars: served.slice(0, limit),
      next: served.length > limit ? served[limit]!.ts : windowEnd < to ? windowEnd : null
    } satisfies CandlePage
  }).pipe(Effect.withSpan("readCandlePage", { attributes: { symbol: request.spec.symbol, timeframe: request.timeframe, fill: request.fill } }))
