import { afterAll, describe, expect, test } from "bun:test"
import { Either, Schema } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Candle } from "../src/domain/candle.ts"
import { isUsSummerTime, type SourceClock, SourceClockFromString } from "../src/sources/csv/clock.ts"
import { csvFileLines, type FileLine } from "../src/sources/csv/file-lines.ts"
import { type FixedFormat as CsvFormat, parseLine } from "../src/sources/csv/line.ts"
import { csvPages, type CsvReadOptions, type CsvSummary } from "../src/sources/csv/pages.ts"
import { hasSharedData, noSharedDataReason, sharedDataDir } from "./support/shared-data.ts"

const utc = (iso: string) => Date.parse(iso)
const bar = (iso: string, open: number, high: number, low: number, close: number, volume: number): Candle => ({
  ts: utc(iso),
  open,
  high,
  low,
  close,
  volume,
  vwap: null,
  trades: null
})

const readAll = async (lines: AsyncIterable<FileLine> | Iterable<FileLine>, options: CsvReadOptions) => {
  const candles: Array<Candle> = []
  const pageSizes: Array<number> = []
  let summary: CsvSummary | undefined
  for await (const page of csvPages(lines, options)) {
    candles.push(...page.candles)
    pageSizes.push(page.candles.length)
    if (page.final) summary = page.summary
  }
  if (!summary) throw new Error("the read ended without a final page")
  return { candles, pageSizes, summary }
}

describe("a line of each export decodes to a UTC bar", () => {
  const cases: ReadonlyArray<{ format: CsvFormat; clock: SourceClock; text: string; expected: Candle }> = [
    {
      format: "histdata",
      clock: "histdata",
      text: "20210103 170000;1.223960;1.223960;1.223730;1.223950;0",
      expected: bar("2021-01-03T22:00:00Z", 1.22396, 1.22396, 1.22373, 1.22395, 0)
    },
    {
      format: "mt4",
      clock: "histdata",
      text: "2021.01.03,17:00,1.223960,1.223960,1.223730,1.223950,0",
      expected: bar("2021-01-03T22:00:00Z", 1.22396, 1.22396, 1.22373, 1.22395, 0)
    },
    {
      format: "dukascopy",
      clock: "utc",
      text: "01.10.2018 00:00:00.000,1.16052,1.16056,1.16042,1.16055,129.17\r",
      expected: bar("2018-10-01T00:00:00Z", 1.16052, 1.16056, 1.16042, 1.16055, 129.17)
    },
    {
      format: "binance",
      clock: "utc",
      text: "2023-03-01 00:00:00+00:00,23144.78,23152.48,23133.11,23143.72,3.912156",
      expected: bar("2023-03-01T00:00:00Z", 23144.78, 23152.48, 23133.11, 23143.72, 3.912156)
    }
  ]
  for (const { format, clock, text, expected } of cases) {
    test(`${format}: ${text.trim()}`, () => {
      expect(parseLine(format, clock)(text, 7)).toEqual(Either.right(expected))
    })
  }
})

describe("a bad line is reported with its number and reason", () => {
  const cases: ReadonlyArray<{ format: CsvFormat; text: string; reason: string }> = [
    { format: "histdata", text: "20210103 170000;1.22396;1.22396;1.22373;1.22395", reason: `expected 6 fields separated by ";", got 5` },
    { format: "histdata", text: "20210103 170000;1.22396;abc;1.22373;1.22395;0", reason: `high: expected a decimal number, got "abc"` },
    { format: "histdata", text: "20210230 170000;1.22396;1.22396;1.22373;1.22395;0", reason: `time: impossible date or time "20210230 170000"` },
    { format: "histdata", text: "2021-01-03 17:00;1.22396;1.22396;1.22373;1.22395;0", reason: `time: expected YYYYMMDD HHMMSS, got "2021-01-03 17:00"` },
    { format: "mt4", text: "2021.01.03,17:00,1.22396,1.22396,1.22373,1.22395", reason: `expected 7 fields separated by ",", got 6` },
    { format: "mt4", text: "2021.01.03,24:00,1.22396,1.22396,1.22373,1.22395,0", reason: `time: impossible date or time "2021.01.03 24:00"` },
    { format: "mt4", text: "2021.01.03,17:00,1.22396,1.22396,1.22373,0x10,0", reason: `close: expected a decimal number, got "0x10"` },
    { format: "dukascopy", text: "31.09.2018 00:00:00.000,1.1,1.1,1.1,1.1,0", reason: `time: impossible date or time "31.09.2018 00:00:00.000"` },
    { format: "dukascopy", text: "01.10.2018 00:00:00.000,1.1,1.1,,1.1,0", reason: `low: expected a decimal number, got ""` },
    { format: "binance", text: "2023-03-01 00:00:00+00:00,NaN,1,1,1,1", reason: `open: expected a decimal number, got "NaN"` },
    { format: "binance", text: "2023-03-01 00:00:00+01:00,1,1,1,1,1", reason: `time: expected YYYY-MM-DD HH:MM:SS+00:00, got "2023-03-01 00:00:00+01:00"` },
    { format: "binance", text: "2023-03-01 00:00:00+00:00,1,1,1,1,1,1", reason: `expected 6 fields separated by ",", got 7` }
  ]
  for (const { format, text, reason } of cases) {
    test(`${format}: ${reason}`, () => {
      const result = parseLine(format, "utc")(text, 42)
      if (Either.isRight(result)) throw new Error(`decoded ${JSON.stringify(result.right)}`)
      expect({ line: result.left.line, reason: result.left.reason, text: result.left.text }).toEqual({ line: 42, reason, text })
    })
  }

  test("a read counts every bad line, keeps the first few, and goes on", async () => {
    const lines = [
      "open_time,open,high,low,close,volume",
      "2023-03-01 00:00:00+00:00,1,2,0.5,1.5,3",
      "garbage",
      "",
      "2023-03-01 00:02:00+00:00,1,2,0.5,oops,3",
      "2023-03-01 00:03:00+00:00,1,2,0.5,1.5,3"
    ]
    const { candles, summary } = await readAll(lines, { format: "binance", clock: "utc", keepErrors: 1 })
    expect(candles.map((c) => c.ts)).toEqual([utc("2023-03-01T00:00:00Z"), utc("2023-03-01T00:03:00Z")])
    expect(summary).toMatchObject({ lines: 4, bars: 2, badLines: 2, blankLines: 1, droppedFlatBars: 0 })
    expect(summary.firstErrors.map((e) => [e.line, e.reason])).toEqual([[3, `expected 6 fields separated by ",", got 1`]])
  })

  test("an export without its header has its first line reported", async () => {
    const { summary } = await readAll(["01.10.2018 00:00:00.000,1.1,1.2,1.0,1.1,5"], { format: "dukascopy", clock: "utc" })
    expect(summary).toMatchObject({ lines: 1, bars: 0, badLines: 1 })
    expect(summary.firstErrors[0]?.reason).toBe(`expected the header "Gmt time,Open,High,Low,Close,Volume"`)
  })
})

describe("exporters' clocks convert to UTC", () => {
  const histdata = (stamp: string) => Either.getOrThrow(parseLine("histdata", "histdata")(`${stamp};1;1;1;1;0`, 1)).ts
  const mt4 = (clock: SourceClock, stamp: string) => Either.getOrThrow(parseLine("mt4", clock)(`${stamp},1,1,1,1,0`, 1)).ts

  test("HistData is +5 h in January and +4 h in April", () => {
    expect(histdata("20210115 120000")).toBe(utc("2021-01-15T17:00:00Z"))
    expect(histdata("20210415 120000")).toBe(utc("2021-04-15T16:00:00Z"))
  })

  test("HistData changes at the European switch of 2021-03-28, not at the US one", () => {
    // US summer since 03-14, Europe not yet: still +5, so the week closes at 21:59 UTC.
    expect(histdata("20210326 165900")).toBe(utc("2021-03-26T21:59:00Z"))
    // Europe on summer time: +4, so the week opens at 21:00 UTC.
    expect(histdata("20210328 170000")).toBe(utc("2021-03-28T21:00:00Z"))
  })

  test("the broker clock is GMT+2 before the US change of 2021-03-14 and GMT+3 after", () => {
    expect(mt4("new-york+7", "2021.03.12,23:59")).toBe(utc("2021-03-12T21:59:00Z"))
    expect(mt4("new-york+7", "2021.03.15,00:00")).toBe(utc("2021-03-14T21:00:00Z"))
    // The change itself, 02:00 New York = 07:00 UTC: broker time jumps from 08:59 to 10:00.
    expect(mt4("new-york+7", "2021.03.14,08:59")).toBe(utc("2021-03-14T06:59:00Z"))
    expect(mt4("new-york+7", "2021.03.14,10:00")).toBe(utc("2021-03-14T07:00:00Z"))
    // And back on 2021-11-07, 02:00 EDT = 06:00 UTC.
    expect(mt4("new-york+7", "2021.11.05,23:59")).toBe(utc("2021-11-05T20:59:00Z"))
    expect(mt4("new-york+7", "2021.11.08,00:00")).toBe(utc("2021-11-07T22:00:00Z"))
  })

  test("the US summer-time rule agrees with America/New_York for every hour of 2018–2024", () => {
    const newYorkHour = new Intl.DateTimeFormat("en-US", { timeZone: "America/New_York", hourCycle: "h23", hour: "numeric" })
    const hour = 3_600_000
    const disagreements: Array<string> = []
    for (let t = utc("2018-01-01T00:00:00Z"); t < utc("2025-01-01T00:00:00Z"); t += hour) {
      const offset = (Number(newYorkHour.format(t)) - new Date(t).getUTCHours() + 24) % 24
      if ((offset === 20) !== isUsSummerTime(t)) disagreements.push(new Date(t).toISOString())
    }
    expect(disagreements).toEqual([])
  })

  test("a fixed clock is a plain offset, written UTC±H[:MM] in settings", () => {
    const decode = Schema.decodeUnknownSync(SourceClockFromString)
    expect(decode("UTC+2")).toEqual({ fixedOffsetMinutes: 120 })
    expect(decode("UTC-03:30")).toEqual({ fixedOffsetMinutes: -210 })
    expect(decode("new-york+7")).toBe("new-york+7")
    expect(() => decode("EET")).toThrow(`expected utc, histdata, new-york+7 or UTC±H[:MM], got "EET"`)
    expect(mt4(decode("UTC+2"), "2021.03.15,00:00")).toBe(utc("2021-03-14T22:00:00Z"))
  })
})

describe("flat zero-volume bars", () => {
  const dukascopy = [
    "Gmt time,Open,High,Low,Close,Volume\r",
    "05.10.2018 20:59:00.000,1.15,1.152,1.149,1.151,12.5\r",
    "05.10.2018 21:00:00.000,1.151,1.151,1.151,1.151,0\r",
    "05.10.2018 21:01:00.000,1.151,1.151,1.151,1.151,0\r",
    "07.10.2018 21:00:00.000,1.152,1.152,1.152,1.152,3.1\r",
    "07.10.2018 21:01:00.000,1.152,1.153,1.152,1.153,0\r"
  ]

  test("Dukascopy filler is dropped and counted; flat bars with volume and moving bars without stay", async () => {
    const { candles, summary } = await readAll(dukascopy, { format: "dukascopy", clock: "utc" })
    expect(candles.map((c) => new Date(c.ts).toISOString())).toEqual([
      "2018-10-05T20:59:00.000Z",
      "2018-10-07T21:00:00.000Z",
      "2018-10-07T21:01:00.000Z"
    ])
    expect(summary).toMatchObject({ lines: 5, bars: 3, droppedFlatBars: 2, badLines: 0 })
  })

  test("they can be kept, and are kept by default where volume means nothing (HistData)", async () => {
    expect((await readAll(dukascopy, { format: "dukascopy", clock: "utc", dropFlatZeroVolume: false })).summary)
      .toMatchObject({ bars: 5, droppedFlatBars: 0 })
    const histdata = ["20210104 120000;1.2;1.2;1.2;1.2;0"]
    expect((await readAll(histdata, { format: "histdata", clock: "histdata" })).summary).toMatchObject({ bars: 1, droppedFlatBars: 0 })
  })
})

describe("pages and files", () => {
  const dirs: Array<string> = []
  afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })))

  test("bars come in pages of at most pageSize, the last one marked final", async () => {
    const lines = Array.from({ length: 5 }, (_, i) => `20210104 12${String(i).padStart(2, "0")}00;1.2;1.3;1.1;1.25;0`)
    const { pageSizes, summary } = await readAll(lines, { format: "histdata", clock: "histdata", pageSize: 2 })
    expect(pageSizes).toEqual([2, 2, 1])
    expect(summary).toMatchObject({ lines: 5, bars: 5 })
  })

  test("a plain .csv with CRLF lines reads like the gzipped one; a missing file rejects", async () => {
    const dir = mkdtempSync(join(tmpdir(), "candlekeep-csv-"))
    dirs.push(dir)
    const path = join(dir, "bars.csv")
    writeFileSync(path, "open_time,open,high,low,close,volume\r\n2023-03-01 00:00:00+00:00,1,2,0.5,1.5,3\r\n")
    const { candles, summary } = await readAll(csvFileLines(path), { format: "binance", clock: "utc" })
    expect(candles).toEqual([bar("2023-03-01T00:00:00Z", 1, 2, 0.5, 1.5, 3)])
    expect(summary.badLines).toBe(0)
    await expect(readAll(csvFileLines(join(dir, "absent.csv.gz")), { format: "binance", clock: "utc" })).rejects.toThrow("ENOENT")
  })
})

describe.skipIf(!hasSharedData)("the real exports in ../shared/data", () => {
  const read = (file: string, options: CsvReadOptions) => readAll(csvFileLines(join(sharedDataDir, file)), options)
  const minute = 60_000

  test("EURUSD HistData: 142,695 bars from 2021-01-03T22:00Z, rising through the European switch", async () => {
    const { candles, summary } = await read("histdata_EURUSD_M1_2021-01-03_to_2021-05-21.csv.gz", { format: "histdata", clock: "histdata" })
    expect(summary).toMatchObject({ lines: 142_695, bars: 142_695, badLines: 0, droppedFlatBars: 0 })
    expect(new Date(candles[0]!.ts).toISOString()).toBe("2021-01-03T22:00:00.000Z")
    expect(candles.every((c, i) => i === 0 || c.ts > candles[i - 1]!.ts)).toBe(true)
  })

  test("the MT-format January file equals HistData's January bars", async () => {
    const mt4 = await read("histdata_MT-format_EURUSD_M1_2021-01.csv.gz", { format: "mt4", clock: "histdata" })
    const histdata = await read("histdata_EURUSD_M1_2021-01-03_to_2021-05-21.csv.gz", { format: "histdata", clock: "histdata" })
    expect(mt4.summary).toMatchObject({ lines: 29_073, bars: 29_073, badLines: 0 })
    const lastJanuary = mt4.candles.at(-1)!.ts
    expect(mt4.candles).toEqual(histdata.candles.filter((c) => c.ts <= lastJanuary))
  })

  test("Dukascopy: 44,640 lines, weekend filler and 11 stray flat zero-volume bars dropped, every kept bar traded", async () => {
    const { candles, summary } = await read("dukascopy_EURUSD_M1_BID_GMT_2018-10_weekends-filled.csv.gz", { format: "dukascopy", clock: "utc" })
    // Four weekends of 48 h (Friday 21:00 → Sunday 21:00 UTC) = 11,520, plus the 11 stray ones.
    expect(summary).toMatchObject({ lines: 44_640, droppedFlatBars: 11_531, bars: 33_109, badLines: 0 })
    expect(candles.every((c) => c.volume > 0)).toBe(true)
  })

  test("Binance.US: 30,240 bars, one per minute without a hole", async () => {
    const { candles, summary } = await read("binanceus_BTCUSD_1m_UTC_2023-03-01_to_2023-03-21.csv.gz", { format: "binance", clock: "utc" })
    expect(summary).toMatchObject({ lines: 30_240, bars: 30_240, badLines: 0, droppedFlatBars: 0 })
    expect(candles[0]!.ts).toBe(utc("2023-03-01T00:00:00Z"))
    expect(candles.every((c, i) => c.ts === candles[0]!.ts + i * minute)).toBe(true)
  })
})
if (!hasSharedData) console.log(`real-export CSV tests ${noSharedDataReason}`)
