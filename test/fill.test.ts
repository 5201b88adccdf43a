import { describe, expect, test } from "bun:test"
import type { StoredBar } from "../src/domain/candle.ts"
import { fillBars } from "../src/domain/fill.ts"

const minute = 60_000
// Friday 2021-01-08 21:55 UTC (16:55 New York): the forex week closes at 22:00 UTC.
const friday = Date.parse("2021-01-08T21:55:00Z")
const bar = (ts: number, close: number): StoredBar => ({ ts, open: close, high: close, low: close, close, volume: 5, bars: 1 })
const stored = [bar(friday, 1.1), bar(friday + 2 * minute, 1.2)]
const range = { instrumentClass: "forex" as const, from: friday, to: friday + 10 * minute, barMillis: minute }
const shape = (bars: ReadonlyArray<{ ts: number; close: number | null; filled: boolean }>) => bars.map((b) => [(b.ts - friday) / minute, b.close, b.filled])

describe("query-time fill", () => {
  test("none serves the stored bars only", () => {
    expect(shape(fillBars(stored, { ...range, mode: "none" }))).toEqual([[0, 1.1, false], [2, 1.2, false]])
  })

  test("null fills missing minutes inside the session with empty marked bars, and stops at the close", () => {
    expect(shape(fillBars(stored, { ...range, mode: "null" }))).toEqual([
      [0, 1.1, false], [1, null, true], [2, 1.2, false], [3, null, true], [4, null, true]
    ])
  })

  test("prev repeats the previous close as a flat zero-volume marked bar, never before the first stored bar", () => {
    const filled = fillBars(stored.slice(1), { ...range, mode: "prev" })
    expect(shape(filled)).toEqual([[2, 1.2, false], [3, 1.2, true], [4, 1.2, true]])
    expect(filled.filter((b) => b.filled).every((b) => b.volume === 0 && b.bars === 0 && b.open === b.close)).toBe(true)
  })

  test("a weekend is not filled: Sunday's first bar follows Friday's last directly", () => {
    const sunday = Date.parse("2021-01-10T22:00:00Z")
    const weekend = fillBars([bar(friday + 4 * minute, 1.3), bar(sunday, 1.4)], { instrumentClass: "forex", from: friday, to: sunday + minute, barMillis: minute, mode: "prev" })
    expect(weekend.map((b) => [b.ts, b.filled])).toEqual([[friday + 4 * minute, false], [sunday, false]])
  })
})
