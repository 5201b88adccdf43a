import { newYorkClock } from "./calendar.ts"

const hour = 3_600_000
const day = 86_400_000

/**
 * The trading day a bar belongs to, as days since 1970-01-01: its D1 bar on the day boundary. `utc`: the UTC
 * date; `new-york`: 17:00 America/New_York starts the next day, so a day is dated by the day it ends (MT4's
 * midnight, and the calendar's: Sunday evening's bars belong to Monday). Offsets are whole hours, so each hour
 * is looked up once.
 */
export const tradingDays = (boundary: "utc" | "new-york"): ((ts: number) => number) => {
  if (boundary === "utc") return (ts) => Math.floor(ts / day)
  let cachedHour = Number.NaN
  let cachedDay = 0
  return (ts) => {
    const start = ts - (((ts % hour) + hour) % hour)
    if (start !== cachedHour) {
      const clock = newYorkClock(start + 7 * hour)
      cachedHour = start
      cachedDay = Date.UTC(clock.year, clock.month - 1, clock.day) / day
    }
    return cachedDay
  }
}

/** Days since 1970-01-01 as `YYYY-MM-DD`. */
export const isoDay = (days: number): string => new Date(days * day).toISOString().slice(0, 10)
