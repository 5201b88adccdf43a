import { describe, expect, test } from "bun:test"
import { expectedBars, isOpen, sessions, type Session } from "../../src/domain/calendar.ts"
import type { InstrumentClass } from "../../src/domain/symbol.ts"
import { timeframeMillis } from "../../src/domain/timeframe.ts"

const hour = 3_600_000

/** The calendar as it used to answer: every hour of the range asked of the zone, one by one (the reference). */
const walkedSessions = (instrumentClass: InstrumentClass, from: number, to: number): ReadonlyArray<Session> => {
  const out: Array<Session> = []
  if (to <= from) return out
  if (instrumentClass === "crypto") return [{ from, to }]
  let start: number | null = null
  for (let h = from - (((from % hour) + hour) % hour); h < to; h += hour) {
    const open = isOpen(instrumentClass, h)
    if (open && start === null) start = Math.max(h, from)
    if (!open && start !== null) {
      out.push({ from: start, to: h })
      start = null
    }
  }
  if (start !== null) out.push({ from: start, to })
  return out
}
const barsIn = (walked: ReadonlyArray<Session>, barMillis: number) =>
  walked.reduce((n, s) => n + Math.max(0, Math.ceil(s.to / barMillis) - Math.ceil(s.from / barMillis)), 0)

/** A seeded generator, so a failure names a range that can be asked again. */
const seeded = (seed: number) => () => {
  seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
  return seed / 2 ** 31
}

describe("the market calendar answers long ranges without walking them (issue 16, item 1)", () => {
  // First in the file, so the years are not cached yet. The walk asked the zone once per hour: 219,000 times.
  test("25 years of metal sessions and expected D1 bars ask the time zone a few dozen times a year, not once an hour", () => {
    const formatToParts = Intl.DateTimeFormat.prototype.formatToParts
    let asked = 0
    Intl.DateTimeFormat.prototype.formatToParts = function (this: Intl.DateTimeFormat, date?: Date | number) {
      asked += 1
      return formatToParts.call(this, date)
    }
    try {
      const metal = sessions("metal", Date.UTC(2000, 0, 1), Date.UTC(2025, 0, 1))
      const d1 = expectedBars("forex", Date.UTC(2000, 0, 1), Date.UTC(2025, 0, 1), timeframeMillis.D1)
      expect(metal.length).toBeGreaterThan(6000)
      expect(d1).toBeGreaterThan(6000)
    } finally {
      Intl.DateTimeFormat.prototype.formatToParts = formatToParts
    }
    expect(asked).toBeGreaterThan(0)
    expect(asked).toBeLessThan(26 * 2 * 50)
  })

  test("every year from 1970 to 2099: a random three weeks of both calendars equal the hour-by-hour walk", () => {
    const random = seeded(1970)
    for (let year = 1970; year < 2100; year++) {
      const from = Date.UTC(year, 0, 1) + Math.floor(random() * 345 * 86_400_000)
      const to = from + 21 * 86_400_000
      for (const instrumentClass of ["forex", "metal"] as const) {
        const label = `${instrumentClass} ${new Date(from).toISOString()}`
        expect({ label, sessions: sessions(instrumentClass, from, to) }).toEqual({ label, sessions: walkedSessions(instrumentClass, from, to) })
      }
    }
  })

  test("random ranges: sessions and expected bars of every timeframe equal the walk's", () => {
    const random = seeded(16)
    const era = { from: Date.UTC(1970, 0, 1), to: Date.UTC(2100, 0, 1) }
    const classes: ReadonlyArray<InstrumentClass> = ["forex", "metal", "crypto"]
    for (let i = 0; i < 400; i++) {
      const instrumentClass = classes[i % 3]!
      // Spans from a minute to ~100 days, starting on any minute (or any millisecond, every fourth case).
      const start = era.from + Math.floor(random() * (era.to - era.from))
      const from = i % 4 === 0 ? start : start - (start % 60_000)
      const to = from + Math.floor(random() ** 3 * 100 * 86_400_000) + 1
      const label = `${instrumentClass} ${new Date(from).toISOString()} → ${new Date(to).toISOString()}`
      const walked = walkedSessions(instrumentClass, from, to)
      expect({ label, sessions: sessions(instrumentClass, from, to) }).toEqual({ label, sessions: walked })
      for (const timeframe of ["M1", "M5", "H1", "H4", "D1"] as const) {
        const barMillis = timeframeMillis[timeframe]
        expect({ label, timeframe, n: expectedBars(instrumentClass, from, to, barMillis) }).toEqual({ label, timeframe, n: barsIn(walked, barMillis) })
      }
    }
  })

  test("ranges that start or end on a session's edge, around clock changes and holidays, equal the walk's", () => {
    const edges = [
      "2021-03-14T21:00:00Z", // US summer time Sunday open
      "2021-11-07T22:00:00Z", // US winter time Sunday open
      "2021-04-01T21:00:00Z", // Good Friday eve, metals close
      "2021-01-18T18:00:00Z", // MLK early close
      "2020-12-24T22:00:00Z", // Christmas eve close
      "2020-12-31T22:00:00Z", // New Year's eve close
      "1974-01-06T07:00:00Z", // the 1974 January clock change
      "2007-03-11T07:00:00Z" // the first second-Sunday-of-March change
    ].map(Date.parse)
    for (const edge of edges) {
      for (const instrumentClass of ["forex", "metal"] as const) {
        for (const [from, to] of [
          [edge - 3 * 86_400_000, edge],
          [edge, edge + 3 * 86_400_000],
          [edge - 1, edge + 1],
          [edge - hour, edge + hour]
        ] as const) {
          expect(sessions(instrumentClass, from, to)).toEqual(walkedSessions(instrumentClass, from, to))
        }
      }
    }
  })
})
