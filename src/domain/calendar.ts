import type { InstrumentClass } from "./symbol.ts"

/**
 * When markets trade, computed in America/New_York (never a fixed offset): the US and Europe change
 * clocks on different Sundays, and every rule here is written in New York wall-clock time.
 *
 * - forex: Sunday 17:00 → Friday 17:00; the MT4 trading days dated Dec 25 and Jan 1 are closed.
 * - metal: Sunday 18:00 → Friday 17:00, paused 17:00–18:00 Monday to Thursday; the trading days dated
 *   Dec 25, Jan 1 and Good Friday are closed; on US holidays trading stops at 13:00 until the 18:00 reopen.
 * - crypto: always open.
 *
 * A trading day is dated by the day it ends: the session from Thursday 17:00 (or 18:00) to Friday 17:00 is
 * Friday's. Every boundary falls on a whole New York hour, so a whole UTC hour is either open or closed.
 */

const hour = 3_600_000

export interface Session {
  /** Open, inclusive, Unix ms UTC. */
  readonly from: number
  /** Close, exclusive. */
  readonly to: number
}

interface WallClock {
  readonly year: number
  readonly month: number
  readonly day: number
  /** 0 = Sunday … 6 = Saturday */
  readonly weekday: number
  readonly hour: number
}

const newYork = new Intl.DateTimeFormat("en-US", {
  timeZone: "America/New_York",
  hourCycle: "h23",
  year: "numeric",
  month: "numeric",
  day: "numeric",
  hour: "numeric",
  weekday: "short"
})
const weekdays: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 }

/** New York wall clock at an instant (minutes are irrelevant: offsets are whole hours). */
export const newYorkClock = (ms: number): WallClock => {
  let year = 0
  let month = 0
  let day = 0
  let weekday = 0
  let hourOfDay = 0
  for (const part of newYork.formatToParts(new Date(ms))) {
    if (part.type === "year") year = Number(part.value)
    else if (part.type === "month") month = Number(part.value)
    else if (part.type === "day") day = Number(part.value)
    else if (part.type === "hour") hourOfDay = Number(part.value)
    else if (part.type === "weekday") weekday = weekdays[part.value] ?? 0
  }
  return { year, month, day, weekday, hour: hourOfDay }
}

/** A calendar date as a comparable key, `2021-04-02` → 20210402. */
const dateKey = (year: number, month: number, day: number) => year * 10_000 + month * 100 + day

/** The date `days` after a calendar date (pure date arithmetic in UTC, no zone involved). */
const addDays = (year: number, month: number, day: number, days: number) => {
  const d = new Date(Date.UTC(year, month - 1, day + days))
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), weekday: d.getUTCDay() }
}

/** Easter Sunday (Gregorian, anonymous algorithm), for any year. */
export const easterSunday = (year: number) => {
  const a = year % 19
  const b = Math.floor(year / 100)
  const c = year % 100
  const d = Math.floor(b / 4)
  const e = b % 4
  const f = Math.floor((b + 8) / 25)
  const g = Math.floor((b - f + 1) / 3)
  const h = (19 * a + b - d - g + 15) % 30
  const i = Math.floor(c / 4)
  const k = c % 4
  const l = (32 + 2 * e + 2 * i - h - k) % 7
  const m = Math.floor((a + 11 * h + 22 * l) / 451)
  const month = Math.floor((h + l - 7 * m + 114) / 31)
  const day = ((h + l - 7 * m + 114) % 31) + 1
  return { year, month, day }
}

/** The n-th given weekday of a month (n = -1: the last one). */
const nthWeekday = (year: number, month: number, weekday: number, n: number) => {
  if (n > 0) {
    const first = new Date(Date.UTC(year, month - 1, 1)).getUTCDay()
    return dateKey(year, month, 1 + ((weekday - first + 7) % 7) + (n - 1) * 7)
  }
  const lastDay = new Date(Date.UTC(year, month, 0))
  return dateKey(year, month, lastDay.getUTCDate() - ((lastDay.getUTCDay() - weekday + 7) % 7))
}

/** US holidays on which metals close early (13:00 New York), for any year; July 4th as observed. */
export const usEarlyCloseHolidays = (year: number): ReadonlySet<number> => {
  const july4 = new Date(Date.UTC(year, 6, 4)).getUTCDay()
  const independence = july4 === 6 ? dateKey(year, 7, 3) : july4 === 0 ? dateKey(year, 7, 5) : dateKey(year, 7, 4)
  return new Set([
    nthWeekday(year, 1, 1, 3), // Martin Luther King Jr. Day
    nthWeekday(year, 2, 1, 3), // Presidents' Day
    nthWeekday(year, 5, 1, -1), // Memorial Day
    independence,
    nthWeekday(year, 9, 1, 1), // Labor Day
    nthWeekday(year, 11, 4, 4) // Thanksgiving
  ])
}

const goodFriday = (year: number) => {
  const easter = easterSunday(year)
  const friday = addDays(easter.year, easter.month, easter.day, -2)
  return dateKey(friday.year, friday.month, friday.day)
}

/** Trading days closed outright: Dec 25 and Jan 1 (and Good Friday for metals). */
const closedTradingDay = (instrumentClass: InstrumentClass, key: number, year: number) => {
  const monthDay = key % 10_000
  if (monthDay === 1225 || monthDay === 101) return true
  return instrumentClass === "metal" && key === goodFriday(year)
}

/** Whether the whole New York hour starting at this wall clock is open. */
const hourIsOpen = (instrumentClass: InstrumentClass, clock: WallClock): boolean => {
  if (instrumentClass === "crypto") return true
  const { weekday, hour: h } = clock
  if (weekday === 6) return false
  if (weekday === 0 && h < (instrumentClass === "metal" ? 18 : 17)) return false
  if (weekday === 5 && h >= 17) return false
  if (instrumentClass === "metal" && h === 17) return false
  // The session from 17:00 (forex) or 18:00 (metal) belongs to the next day's date.
  const trading = h >= 17 ? addDays(clock.year, clock.month, clock.day, 1) : { ...clock }
  if (closedTradingDay(instrumentClass, dateKey(trading.year, trading.month, trading.day), trading.year)) return false
  if (instrumentClass === "metal" && h >= 13 && h < 18 && usEarlyCloseHolidays(clock.year).has(dateKey(clock.year, clock.month, clock.day))) {
    return false
  }
  return true
}

/** Whether the market is open at instant `t` (Unix ms). */
export const isOpen = (instrumentClass: InstrumentClass, t: number): boolean =>
  hourIsOpen(instrumentClass, newYorkClock(t - (((t % hour) + hour) % hour)))

/**
 * New York's UTC offset changes of one year, as [instant, offset after it]: sampled at each month's start and
 * pinned to the hour by bisection, so a year costs a few dozen zone look-ups instead of one per hour.
 */
const offsetAt = (t: number) => {
  const clock = newYorkClock(t)
  return Date.UTC(clock.year, clock.month - 1, clock.day, clock.hour) - (t - (((t % hour) + hour) % hour))
}
const offsetChanges = (year: number): ReadonlyArray<readonly [number, number]> => {
  const changes: Array<readonly [number, number]> = []
  let before = Date.UTC(year - 1, 11, 1)
  let offset = offsetAt(before)
  changes.push([Number.NEGATIVE_INFINITY, offset])
  for (let month = 0; month <= 12; month++) {
    const after = Date.UTC(year, month, 1)
    const next = offsetAt(after)
    if (next !== offset) {
      let lo = before / hour
      let hi = after / hour // offsetAt(lo) = offset, offsetAt(hi) = next: find the first hour with the new one
      while (hi - lo > 1) {
        const mid = Math.floor((lo + hi) / 2)
        if (offsetAt(mid * hour) === offset) lo = mid
        else hi = mid
      }
      changes.push([hi * hour, next])
      offset = next
    }
    before = after
  }
  return changes
}

/**
 * One New York calendar year's open sessions, maximal, in order. Each date is open in at most two runs of whole
 * hours, [0, e) and [s, 24), read off the same rules as `hourIsOpen`; the US changes clocks at 02:00 on a Sunday,
 * when both markets are closed, so every run lies within one offset. The years meet at Jan 1, always closed.
 */
const yearSessions = (instrumentClass: "forex" | "metal", year: number): ReadonlyArray<Session> => {
  const changes = offsetChanges(year)
  const early = usEarlyCloseHolidays(year)
  const friday = goodFriday(year)
  const closed = (key: number) => {
    const monthDay = key % 10_000
    return monthDay === 1225 || monthDay === 101 || (instrumentClass === "metal" && key === friday)
  }
  const toUtc = (wall: number) => {
    let offset = changes[0]![1]
    for (const [at, after] of changes) if (wall - after >= at) offset = after
    return wall - offset
  }
  const out: Array<{ from: number; to: number }> = []
  const add = (wallFrom: number, wallTo: number) => {
    if (wallTo <= wallFrom) return
    const from = toUtc(wallFrom)
    const to = toUtc(wallTo)
    const last = out.at(-1)
    if (last !== undefined && last.to === from) last.to = to
    else out.push({ from, to })
  }
  const sundayOpen = instrumentClass === "metal" ? 18 : 17
  for (let midnight = Date.UTC(year, 0, 1); midnight < Date.UTC(year + 1, 0, 1); midnight += 24 * hour) {
    const date = new Date(midnight)
    const weekday = date.getUTCDay()
    const key = dateKey(date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate())
    const tomorrow = new Date(midnight + 24 * hour)
    const tomorrowClosed = closed(dateKey(tomorrow.getUTCFullYear(), tomorrow.getUTCMonth() + 1, tomorrow.getUTCDate()))
    if (weekday === 6) continue
    // Hours before 17:00 trade for today; from 17:00 (forex) or 18:00 (metal) for tomorrow.
    if (weekday !== 0 && !closed(key)) add(midnight, midnight + (instrumentClass === "metal" && early.has(key) ? 13 : 17) * hour)
    if (weekday !== 5 && !tomorrowClosed) add(midnight + (weekday === 0 ? sundayOpen : instrumentClass === "metal" ? 18 : 17) * hour, midnight + 24 * hour)
  }
  return out
}

const yearCache = new Map<string, ReadonlyArray<Session>>()
const cachedYear = (instrumentClass: "forex" | "metal", year: number) => {
  const key = `${instrumentClass}:${year}`
  let found = yearCache.get(key)
  if (found === undefined) {
    found = yearSessions(instrumentClass, year)
    yearCache.set(key, found)
  }
  return found
}

/** The open sessions overlapping [from, to), clipped to it, in order: from whole years computed once and kept. */
export const sessions = (instrumentClass: InstrumentClass, from: number, to: number): ReadonlyArray<Session> => {
  const out: Array<Session> = []
  if (to <= from) return out
  if (instrumentClass === "crypto") return [{ from, to }]
  // New York's year of an instant is its UTC year or the one before.
  const lastYear = new Date(to).getUTCFullYear()
  for (let year = new Date(from).getUTCFullYear() - 1; year <= lastYear; year++) {
    const inYear = cachedYear(instrumentClass, year)
    // The first session ending after `from`, by bisection.
    let lo = 0
    let hi = inYear.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (inYear[mid]!.to <= from) lo = mid + 1
      else hi = mid
    }
    for (let i = lo; i < inYear.length && inYear[i]!.from < to; i++) {
      const session = inYear[i]!
      out.push({ from: Math.max(session.from, from), to: Math.min(session.to, to) })
    }
  }
  return out
}

/**
 * How many bars of `barMillis` an uninterrupted feed would have in [from, to): the bar opens (multiples of
 * `barMillis` in UTC) that fall inside a session. A session that does not start on a bar boundary (the forex week
 * opens at 22:00 UTC) still holds every bar opening after it: H4 30 and D1 5 in a forex week.
 */
export const expectedBars = (instrumentClass: InstrumentClass, from: number, to: number, barMillis = 60_000): number =>
  sessions(instrumentClass, from, to).reduce((n, s) => n + Math.max(0, Math.ceil(s.to / barMillis) - Math.ceil(s.from / barMillis)), 0)
