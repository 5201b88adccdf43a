import { sessions } from "./calendar.ts"
import type { InstrumentClass } from "./symbol.ts"
import { floorTo, type Timeframe } from "./timeframe.ts"

/**
 * When a vendor's bar can be trusted as final. A bar is settled once its period closed more than the settle
 * time plus the plan's delay ago: before that the vendor may not have published it yet (late bars, a delayed
 * plan), so a watermark never passes it and the next sync asks for it again.
 */

/** The end (exclusive) of the settled bars at `now`: every bar opening before it has closed long enough ago. */
export const settleLine = (now: number, timeframe: Timeframe, settleMillis: number, delayMillis: number): number =>
  floorTo(now - settleMillis - delayMillis, timeframe)

/**
 * How far a watermark trails what the plan can deliver (`deliverable`: now minus the plan's delay), in seconds
 * of open market: a weekend or a holiday between the two is not lag. Null before the first watermark.
 */
export const lagSeconds = (instrumentClass: InstrumentClass, watermark: number | null, deliverable: number): number | null =>
  watermark === null
    ? null
    : sessions(instrumentClass, watermark, deliverable).reduce((sum, session) => sum + (session.to - session.from), 0) / 1000
