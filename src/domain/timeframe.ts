import { Schema } from "effect"

/** The timeframes the store can answer; M1 is stored, the rest are derived (or stored by their own stream). */
export const Timeframe = Schema.Literal("M1", "M5", "M15", "M30", "H1", "H4", "D1")
export type Timeframe = typeof Timeframe.Type

export const timeframes: ReadonlyArray<Timeframe> = Timeframe.literals

const minute = 60_000

/** Nominal length of one bar. D1's real span follows the configured day boundary (DST can make it 23 or 25 h). */
export const timeframeMillis: Record<Timeframe, number> = {
  M1: minute,
  M5: 5 * minute,
  M15: 15 * minute,
  M30: 30 * minute,
  H1: 60 * minute,
  H4: 240 * minute,
  D1: 1440 * minute
}

/** The vendor's `multiplier/timespan` pair for a timeframe. */
export const vendorSpan: Record<Timeframe, { readonly multiplier: number; readonly timespan: "minute" | "hour" | "day" }> = {
  M1: { multiplier: 1, timespan: "minute" },
  M5: { multiplier: 5, timespan: "minute" },
  M15: { multiplier: 15, timespan: "minute" },
  M30: { multiplier: 30, timespan: "minute" },
  H1: { multiplier: 1, timespan: "hour" },
  H4: { multiplier: 4, timespan: "hour" },
  D1: { multiplier: 1, timespan: "day" }
}

/** Start of the fixed-length bucket holding `ms` (UTC-aligned); not meaningful for D1/H4 on a New York boundary. */
export const floorTo = (ms: number, tf: Timeframe): number => ms - (((ms % timeframeMillis[tf]) + timeframeMillis[tf]) % timeframeMillis[tf])

export const ceilTo = (ms: number, tf: Timeframe): number => {
  const floor = floorTo(ms, tf)
  return floor === ms ? ms : floor + timeframeMillis[tf]
}
