import { describe, expect, test } from "bun:test"
import { alignByMinute, compareWindow, inPips, minuteOf, quoteOffset, stats } from "../src/domain/broker-compare.ts"
import { defaultSymbols, pipSize } from "../src/domain/symbol.ts"

const minute = 60_000
const t0 = Date.parse("2021-03-03T12:00:00Z")
const at = (m: number, seconds = 0) => t0 + m * minute + seconds * 1000
const bar = (m: number, close: number) => ({ ts: at(m), close })
const xauPip = pipSize(defaultSymbols.find((s) => s.symbol === "XAUUSD")!)
const eurPip = pipSize(defaultSymbols.find((s) => s.symbol === "EURUSD")!)

describe("broker comparison maths", () => {
  test("pip sizes: 0.01 for gold (3 digits), 0.0001 for EURUSD (5 digits)", () => {
    expect(xauPip).toBeCloseTo(0.01, 15)
    expect(eurPip).toBeCloseTo(0.0001, 15)
  })

  test.each([
    ["an exact minute stays", at(5), at(5)],
    ["a second into a minute falls to its start", at(5, 1), at(5)],
    ["the last millisecond of a minute falls to its start", at(6) - 1, at(5)],
    ["before 1970 rounds down too", -1, -minute]
  ])("minuteOf: %s", (_, ms, expected) => {
    expect(minuteOf(ms)).toBe(expected)
  })

  test.each([
    ["empty has no statistics", [], null],
    ["one value: std 0", [0.35], { mean: 0.35, maxAbs: 0.35, std: 0 }],
    ["a constant offset: std 0", [2, 2, 2, 2], { mean: 2, maxAbs: 2, std: 0 }],
    ["signs: max is of the absolute values, std is the sample one (n − 1)", [1, -3, 2], { mean: 0, maxAbs: 3, std: Math.sqrt(14 / 2) }],
    ["textbook set", [2, 4, 4, 4, 5, 5, 7, 9], { mean: 5, maxAbs: 9, std: Math.sqrt(32 / 7) }]
  ] as const)("stats: %s", (_, values, expected) => {
    const got = stats(values)
    if (expected === null) return expect(got).toBeNull()
    expect(got!.mean).toBeCloseTo(expected.mean, 12)
    expect(got!.maxAbs).toBeCloseTo(expected.maxAbs, 12)
    expect(got!.std).toBeCloseTo(expected.std, 12)
  })

  test("inPips divides every statistic by the pip", () => {
    expect(inPips({ mean: 0.35, maxAbs: 0.5, std: 0.02 }, xauPip)).toEqual({ mean: 0.35 / xauPip, maxAbs: 0.5 / xauPip, std: 0.02 / xauPip })
  })

  test("alignment pairs minutes present on both sides and lists the one-sided ones, inside [from, to) only", () => {
    const vendor = [bar(-1, 9), bar(0, 10), bar(1, 11), bar(2, 12), bar(4, 14), bar(60, 99)]
    // The broker's candle time may carry seconds: it still belongs to its minute.
    const broker = [{ ts: at(0, 0), close: 10.5 }, { ts: at(2, 30), close: 12.25 }, bar(3, 13), bar(4, 13.5), bar(59, 1)]
    const aligned = alignByMinute(vendor, broker, { from: at(0), to: at(60) })
    expect(aligned.pairs).toEqual([
      { ts: at(0), vendor: 10, broker: 10.5, diff: 0.5 },
      { ts: at(2), vendor: 12, broker: 12.25, diff: 0.25 },
      { ts: at(4), vendor: 14, broker: 13.5, diff: -0.5 }
    ])
    expect(aligned.vendorOnly).toEqual([at(1)])
    expect(aligned.brokerOnly).toEqual([at(3), at(59)])
  })

  test.each([
    {
      name: "a constant offset with a missing broker minute",
      vendor: [bar(0, 1800), bar(1, 1801), bar(2, 1802), bar(3, 1803)],
      broker: [bar(0, 1800.35), bar(1, 1801.35), bar(3, 1803.35)],
      expected: { samples: 3, vendorMinutes: 4, brokerMinutes: 3, vendorOnly: 1, brokerOnly: 0, oneSidedShare: 1 / 4, mean: 0.35, maxAbs: 0.35, std: 0 }
    },
    {
      name: "opposite differences cancel in the mean but not in max or std",
      vendor: [bar(0, 1800), bar(1, 1800)],
      broker: [bar(0, 1800.1), bar(1, 1799.9), bar(2, 1800)],
      expected: { samples: 2, vendorMinutes: 2, brokerMinutes: 3, vendorOnly: 0, brokerOnly: 1, oneSidedShare: 1 / 3, mean: 0, maxAbs: 0.1, std: Math.sqrt(0.02) }
    }
  ])("compareWindow: $name", ({ vendor, broker, expected }) => {
    const c = compareWindow(vendor, broker, { from: at(0), to: at(60) }, xauPip)
    expect([c.samples, c.vendorMinutes, c.brokerMinutes, c.vendorOnly, c.brokerOnly]).toEqual([
      expected.samples,
      expected.vendorMinutes,
      expected.brokerMinutes,
      expected.vendorOnly,
      expected.brokerOnly
    ])
    expect(c.oneSidedShare).toBeCloseTo(expected.oneSidedShare, 12)
    expect(c.diff!.mean).toBeCloseTo(expected.mean, 9)
    expect(c.diff!.maxAbs).toBeCloseTo(expected.maxAbs, 9)
    expect(c.diff!.std).toBeCloseTo(expected.std, 9)
    expect(c.diffPips!.mean).toBeCloseTo(expected.mean / xauPip, 6)
    expect(c.diffPips!.maxAbs).toBeCloseTo(expected.maxAbs / xauPip, 6)
  })

  test("a window the broker answered with nothing has no statistics (never a zero difference), and is all one-sided", () => {
    const c = compareWindow([bar(0, 1800), bar(1, 1801)], [], { from: at(0), to: at(60) }, xauPip)
    expect(c).toEqual({ samples: 0, vendorMinutes: 2, brokerMinutes: 0, vendorOnly: 2, brokerOnly: 0, oneSidedShare: 1, diff: null, diffPips: null })
    expect(compareWindow([], [], { from: at(0), to: at(60) }, xauPip).oneSidedShare).toBeNull()
  })

  test.each([
    {
      name: "a steady 0.4 pip offset stays under a 0.5 pip threshold",
      quotes: [{ ts: at(0, 5), bid: 1.20003, ask: 1.20005 }, { ts: at(1, 10), bid: 1.20013, ask: 1.20015 }],
      vendor: [bar(0, 1.2), bar(1, 1.2001)],
      pip: eurPip,
      threshold: 0.5,
      expected: { quotes: 2, matched: 2, mean: 0.00004, meanPips: 0.4, useOffset: false, offset: 0 }
    },
    {
      name: "35 pips on gold is recommended, and a quote without a vendor bar of its minute is left out",
      quotes: [{ ts: at(0, 5), bid: 1800.3, ask: 1800.4 }, { ts: at(0, 55), bid: 1800.3, ask: 1800.4 }, { ts: at(7, 0), bid: 1, ask: 1 }],
      vendor: [bar(0, 1800)],
      pip: xauPip,
      threshold: 0.5,
      expected: { quotes: 3, matched: 2, mean: 0.35, meanPips: 35, useOffset: true, offset: 0.35 }
    },
    {
      name: "a negative offset beyond the threshold is recommended with its sign",
      quotes: [{ ts: at(3, 30), bid: 1.19990, ask: 1.19994 }],
      vendor: [bar(3, 1.2)],
      pip: eurPip,
      threshold: 0.5,
      expected: { quotes: 1, matched: 1, mean: -0.00008, meanPips: -0.8, useOffset: true, offset: -0.00008 }
    }
  ])("quoteOffset: $name", ({ quotes, vendor, pip, threshold, expected }) => {
    const o = quoteOffset(quotes, vendor, pip, threshold)
    expect([o.quotes, o.matched, o.recommendation.useOffset]).toEqual([expected.quotes, expected.matched, expected.useOffset])
    expect(o.mean!).toBeCloseTo(expected.mean, 10)
    expect(o.meanPips!).toBeCloseTo(expected.meanPips, 6)
    expect(o.recommendation.offset!).toBeCloseTo(expected.offset, 10)
    expect(o.std!).toBeCloseTo(0, 9)
  })

  test("no quotes, or none matching a vendor bar: no offset and no recommendation", () => {
    expect(quoteOffset([], [bar(0, 1)], xauPip, 0.5)).toEqual({
      quotes: 0,
      matched: 0,
      mean: null,
      std: null,
      meanPips: null,
      stdPips: null,
      recommendation: { useOffset: false, offset: null }
    })
    expect(quoteOffset([{ ts: at(5), bid: 1, ask: 1 }], [bar(0, 1)], xauPip, 0.5).matched).toBe(0)
  })
})
