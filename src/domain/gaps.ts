import { sessions } from "./calendar.ts"
import type { InstrumentClass } from "./symbol.ts"

/** A run of missing bars inside one open session; `start` and `end` are the open times of the first and last missing bar. */
export interface Gap {
  readonly start: number
  readonly end: number
  readonly missingBars: number
}

/**
 * The gaps inside a hole [from, to) between stored bars (or a range's edge): the missing bars that open
 * inside an open session, one run per session, kept when longer than `minBars` (the vendor sends no bar for
 * a minute without quotes, so a few missing bars are normal). Closed periods are never gaps.
 */
export const gapsInHole = (
  instrumentClass: InstrumentClass,
  hole: { readonly from: number; readonly to: number },
  barMillis: number,
  minBars: number
): ReadonlyArray<Gap> =>
  sessions(instrumentClass, hole.from, hole.to).flatMap((session) => {
    const first = Math.ceil(session.from / barMillis) * barMillis
    const last = Math.ceil(session.to / barMillis) * barMillis - barMillis
    const missingBars = last >= first ? (last - first) / barMillis + 1 : 0
    return missingBars > minBars ? [{ start: first, end: last, missingBars }] : []
  })
