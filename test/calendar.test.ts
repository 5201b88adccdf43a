import { describe, expect, test } from "bun:test"
import { easterSunday, expectedBars, isOpen, sessions, usEarlyCloseHolidays } from "../src/domain/calendar.ts"
import { timeframeMillis } from "../src/domain/timeframe.ts"
import type { InstrumentClass } from "../src/domain/symbol.ts"
import { hasSharedData, loadHistdata, noSharedDataReason } from "./support/shared-data.ts"

const at = (iso: string) => Date.parse(iso)
const minute = 60_000

describe("market calendar", () => {
  // [case, class, instant (UTC), open?]
  const cases: ReadonlyArray<readonly [string, InstrumentClass, string, boolean]> = [
    // The forex week in New York winter (EST = UTC-5) and summer (EDT = UTC-4).
    ["forex opens Sunday 17:00 New York in winter", "forex", "2021-03-07T22:00:00Z", true],
    ["forex still closed a minute before", "forex", "2021-03-07T21:59:00Z", false],
    ["forex closes Friday 17:00 New York in winter", "forex", "2021-03-12T22:00:00Z", false],
    ["forex open Friday 16:59 New York in winter", "forex", "2021-03-12T21:59:00Z", true],
    // The US switched on 2021-03-14: the same Sunday opens an hour earlier in UTC.
    ["US DST Sunday: forex opens 21:00 UTC", "forex", "2021-03-14T21:00:00Z", true],
    ["US DST Sunday: closed at 20:59 UTC", "forex", "2021-03-14T20:59:00Z", false],
    ["US DST week: Friday closes 21:00 UTC", "forex", "2021-03-19T21:00:00Z", false],
    // Europe switched on 2021-03-28: New York times do not move.
    ["EU DST Sunday: forex still opens 21:00 UTC", "forex", "2021-03-28T21:00:00Z", true],
    ["EU DST Sunday: closed at 20:00 UTC", "forex", "2021-03-28T20:00:00Z", false],
    ["US back to winter 2021-11-07: opens 22:00 UTC", "forex", "2021-11-07T22:00:00Z", true],
    ["US back to winter 2021-11-07: closed 21:00 UTC", "forex", "2021-11-07T21:00:00Z", false],
    ["forex Saturday", "forex", "2021-03-13T12:00:00Z", false],
    ["forex rollover hour is open (thin, not closed)", "forex", "2021-03-09T22:30:00Z", true],
    // Metals: Sunday 18:00, daily pause 17:00-18:00.
    ["gold opens Sunday 18:00 New York", "metal", "2021-03-07T23:00:00Z", true],
    ["gold closed Sunday 17:30 New York", "metal", "2021-03-07T22:30:00Z", false],
    ["gold daily pause 17:00-18:00 New York", "metal", "2021-03-09T22:30:00Z", false],
    ["gold reopens 18:00 New York", "metal", "2021-03-09T23:00:00Z", true],
    ["gold pause follows New York summer time", "metal", "2021-03-16T21:30:00Z", false],
    // Good Friday 2021-04-02: gold closes Thursday 17:00 New York until Sunday 18:00.
    ["Good Friday: gold closed", "metal", "2021-04-02T14:00:00Z", false],
    ["Good Friday eve: gold closed from 17:00 New York", "metal", "2021-04-01T22:30:00Z", false],
    ["Good Friday eve: gold open at 16:59 New York", "metal", "2021-04-01T20:59:00Z", true],
    ["Good Friday: forex trades", "forex", "2021-04-02T14:00:00Z", true],
    // US holidays: gold stops at 13:00 New York and reopens at 18:00.
    ["MLK day 2021-01-18: gold open 12:59 New York", "metal", "2021-01-18T17:59:00Z", true],
    ["MLK day 2021-01-18: gold closed 13:00 New York", "metal", "2021-01-18T18:00:00Z", false],
    ["MLK day 2021-01-18: gold reopens 18:00 New York", "metal", "2021-01-18T23:00:00Z", true],
    ["Independence Day observed Monday 2021-07-05", "metal", "2021-07-05T18:00:00Z", false],
    ["Thanksgiving 2021-11-25: gold early close", "metal", "2021-11-25T19:00:00Z", false],
    ["MLK day: forex unaffected", "forex", "2021-01-18T19:00:00Z", true],
    // Christmas on a weekday (Friday 2020-12-25): closed from Thursday 17:00 New York.
    ["Christmas Friday: forex closed", "forex", "2020-12-25T15:00:00Z", false],
    ["Christmas eve 16:59 New York: forex open", "forex", "2020-12-24T21:59:00Z", true],
    ["Christmas eve 17:00 New York: forex closed", "forex", "2020-12-24T22:00:00Z", false],
    ["Christmas Friday: gold closed", "metal", "2020-12-25T15:00:00Z", false],
    // Christmas on a weekend: Saturday 2021-12-25 changes nothing; Sunday 2022-12-25 opens at 17:00 for Monday.
    ["Christmas Saturday: Friday Dec 24 trades", "forex", "2021-12-24T15:00:00Z", true],
    ["Christmas Sunday: the 17:00 open is Monday's session", "forex", "2022-12-25T22:00:00Z", true],
    // New Year's Day, Friday 2021-01-01: closed from Thursday 17:00 until Sunday 17:00.
    ["New Year Friday: forex closed", "forex", "2021-01-01T12:00:00Z", false],
    ["New Year's eve 17:00 New York: closed", "forex", "2020-12-31T22:00:00Z", false],
    ["first open of 2021", "forex", "2021-01-03T22:00:00Z", true],
    ["crypto at Christmas", "crypto", "2020-12-25T15:00:00Z", true],
    ["crypto on Saturday", "crypto", "2021-03-13T03:00:00Z", true]
  ]
  test.each(cases)("%s", (_, instrumentClass, instant, open) => {
    expect(isOpen(instrumentClass, at(instant))).toBe(open)
  })

  test.each([
    [2021, "2021-04-04"],
    [2022, "2022-04-17"],
    [2024, "2024-03-31"],
    [2025, "2025-04-20"],
    [2038, "2038-04-25"]
  ] as const)("Easter %d is %s (computed, not listed)", (year, date) => {
    const easter = easterSunday(year)
    expect(`${easter.year}-${String(easter.month).padStart(2, "0")}-${String(easter.day).padStart(2, "0")}`).toBe(date)
  })

  test("US holidays for metals' early close are computed for any year", () => {
    expect([...usEarlyCloseHolidays(2021)].sort()).toEqual([20210118, 20210215, 20210531, 20210705, 20210906, 20211125])
    expect([...usEarlyCloseHolidays(2032)].sort()).toEqual([20320119, 20320216, 20320531, 20320705, 20320906, 20321125])
  })

  test.each([
    ["forex", 7_200],
    ["metal", 6_900],
    ["crypto", 10_080]
  ] as const)("a full week of %s expects %d M1 bars", (instrumentClass, bars) => {
    expect(expectedBars(instrumentClass, at("2021-01-10T00:00:00Z"), at("2021-01-17T00:00:00Z"))).toBe(bars)
  })

  // A bar counts when it opens inside a session; the forex week opens at 22:00 (21:00) UTC, off every H4 and D1
  // boundary, and gold's days open at 23:00 UTC, yet each trading day still holds six H4 bars and one D1 bar.
  test.each([
    ["forex", "winter", "2021-01-10", "H1", 120],
    ["forex", "winter", "2021-01-10", "H4", 30],
    ["forex", "winter", "2021-01-10", "D1", 5],
    ["forex", "summer", "2021-06-06", "H4", 30],
    ["forex", "summer", "2021-06-06", "D1", 5],
    ["metal", "winter", "2021-01-10", "H1", 115],
    ["metal", "winter", "2021-01-10", "H4", 30],
    ["metal", "winter", "2021-01-10", "D1", 5],
    ["crypto", "winter", "2021-01-10", "H4", 42],
    ["crypto", "winter", "2021-01-10", "D1", 7]
  ] as const)("a %s week (%s, from %s) expects bars that open inside it: %s %d", (instrumentClass, _, sunday, timeframe, bars) => {
    const from = at(`${sunday}T00:00:00Z`)
    expect(expectedBars(instrumentClass, from, from + 7 * 86_400_000, timeframeMillis[timeframe])).toBe(bars)
  })

  test("sessions are clipped to the range and split by the gold pause and early close", () => {
    const found = sessions("metal", at("2021-01-18T12:00:00Z"), at("2021-01-19T12:00:00Z")).map((s) => [new Date(s.from).toISOString(), new Date(s.to).toISOString()])
    expect(found).toEqual([
      ["2021-01-18T12:00:00.000Z", "2021-01-18T18:00:00.000Z"],
      ["2021-01-18T23:00:00.000Z", "2021-01-19T12:00:00.000Z"]
    ])
    expect(expectedBars("metal", at("2021-01-18T17:58:30Z"), at("2021-01-18T18:00:00Z"))).toBe(1)
  })
})

describe("the calendar against real files", () => {
  if (!hasSharedData) console.log(`calendar real-data tests ${noSharedDataReason}`)

  /** In-session holes: runs of minutes the calendar calls open with no bar. */
  const holes = (symbol: "EURUSD" | "XAUUSD", instrumentClass: InstrumentClass) => {
    const bars = loadHistdata(symbol)
    const found: Array<{ start: number; bars: number }> = []
    for (let i = 1; i < bars.length; i++) {
      let missing = 0
      for (let t = bars[i - 1]!.ts + minute; t < bars[i]!.ts; t += minute) if (isOpen(instrumentClass, t)) missing++
      if (missing > 0) found.push({ start: bars[i - 1]!.ts + minute, bars: missing })
    }
    return { bars, found }
  }

  test.skipIf(!hasSharedData)("no real EURUSD or XAUUSD bar falls in a closed period", () => {
    expect(loadHistdata("EURUSD").filter((b) => !isOpen("forex", b.ts)).length).toBe(0)
    expect(loadHistdata("XAUUSD").filter((b) => !isOpen("metal", b.ts)).length).toBe(0)
  })

  // The data README dates it by the last bar before it (17:13 file time); the first missing bar opens at 17:14 = 21:14 UTC.
  test.skipIf(!hasSharedData)("EURUSD's largest real hole is 16 bars from 2021-04-20 21:14 UTC, besides the export's own clock-change hour", () => {
    const { found } = holes("EURUSD", "forex")
    // HistData's files lose the hour of the European clock change (see shared/data/README.md).
    const exportArtefact = at("2021-03-28T23:00:00Z")
    const largest = found.filter((h) => h.start !== exportArtefact).sort((a, b) => b.bars - a.bars)[0]!
    expect([new Date(largest.start).toISOString(), largest.bars]).toEqual(["2021-04-20T21:14:00.000Z", 16])
    expect(found.find((h) => h.start === exportArtefact)?.bars).toBe(60)
  })

  test.skipIf(!hasSharedData)("gold's daily pause and holiday early closes are never counted as missing", () => {
    const { found } = holes("XAUUSD", "metal")
    // Only short holes remain (and the export's clock-change hour): no 60-bar pause, no 300-bar early close.
    expect(found.filter((h) => h.bars >= 60).map((h) => new Date(h.start).toISOString())).toEqual(["2021-03-28T23:00:00.000Z"])
  })
})
