import { sessions } from "./calendar.ts"
import type { StoredBar } from "./candle.ts"
import type { InstrumentClass } from "./symbol.ts"

export type FillMode = "none" | "null" | "prev"

/** A bar as served: a stored one, or a stand-in for a missing one inside an open session, marked as such. */
export type ServedBar =
  | (StoredBar & { readonly filled: false })
  | {
      readonly ts: number
      readonly open: number | null
      readonly high: number | null
      readonly low: number | null
      readonly close: number | null
      readonly volume: number
      readonly bars: 0
      readonly vwap?: null
      readonly trades?: null
      readonly filled: true
    }

/**
 * Query-time fill, a view and never data: every bar slot of [from, to) that opens inside an open session
 * and has no stored bar gets a stand-in — all prices null (`null`), or the previous close repeated as a flat
 * zero-volume bar (`prev`; none before the first stored bar). Closed periods stay empty.
 */
export const fillBars = (
  stored: ReadonlyArray<StoredBar>,
  options: {
    readonly mode: FillMode
    readonly instrumentClass: InstrumentClass
    readonly from: number
    readonly to: number
    readonly barMillis: number
    /** The close of the last stored bar before `from`, so `prev` fills from the range's first slot (the next page of a cursor). */
    readonly previousClose?: number | null
  }
): ReadonlyArray<ServedBar> => {
  if (options.mode === "none") return stored.map((bar) => ({ ...bar, filled: false as const }))
  // Stored bars come in time order (the store reads them so), one per open time: one pass over slots and bars together.
  const out: Array<ServedBar> = []
  let previousClose: number | null = options.previousClose ?? null
  let next = 0
  const serve = (bar: StoredBar) => {
    out.push({ ...bar, filled: false })
    previousClose = bar.close
  }
  for (const session of sessions(options.instrumentClass, options.from, options.to)) {
    for (let ts = Math.ceil(session.from / options.barMillis) * options.barMillis; ts < session.to; ts += options.barMillis) {
      // Stored bars outside sessions (or before this slot) are served as they are, in order.
      while (next < stored.length && stored[next]!.ts < ts) serve(stored[next++]!)
      if (next < stored.length && stored[next]!.ts === ts) serve(stored[next++]!)
      else if (options.mode === "null") out.push({ ts, open: null, high: null, low: null, close: null, volume: 0, bars: 0, filled: true })
      else if (previousClose !== null) {
        out.push({ ts, open: previousClose, high: previousClose, low: previousClose, close: previousClose, volume: 0, bars: 0, filled: true })
      }
    }
  }
  while (next < stored.length) serve(stored[next++]!)
  return out
}

/**
 * Where a page of `count` bar slots starting at `from` ends: just after the count-th slot inside an open
 * session, or `to` when the range has fewer. Bounds the work of a filled page by its limit, not its range.
 */
export const slotsEnd = (instrumentClass: InstrumentClass, from: number, to: number, barMillis: number, count: number): number => {
  let left = count
  // Sessions are asked for a year at a time, so a page in a long range never lists the range's sessions.
  for (let windowFrom = from; windowFrom < to; windowFrom += 366 * 86_400_000) {
    const windowTo = Math.min(to, windowFrom + 366 * 86_400_000)
    for (const session of sessions(instrumentClass, windowFrom, windowTo)) {
      const first = Math.ceil(session.from / barMillis) * barMillis
      const slots = Math.max(0, Math.ceil((session.to - first) / barMillis))
      if (slots >= left) return first + left * barMillis
      left -= slots
    }
  }
  return to
}
