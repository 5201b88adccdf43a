import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { Effect, Either, Stream } from "effect"
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from "hyparquet"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { isOpen } from "../src/domain/calendar.ts"
import { exportStream } from "../src/pipeline/export.ts"
import { Importer } from "../src/pipeline/import.ts"
import { headerParser, readTime } from "../src/sources/csv/header.ts"
import { CandleStore } from "../src/store/candle-store.ts"
import { createTestDatabase, databaseKinds } from "./support/databases.ts"
import { post, seedFrom, seedHoles, seedTo, startApi, type ApiHarness } from "./support/http.ts"

const minute = 60_000
const dirs: Array<string> = []
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "candlekeep-export-"))
  dirs.push(dir)
  return dir
}
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })))

interface Row {
  readonly symbol: string
  readonly ts: number
  readonly open: number | null
  readonly high: number | null
  readonly low: number | null
  readonly close: number | null
  readonly volume: number
  readonly trades: number | null
  readonly vwap: number | null
  readonly filled?: boolean
  readonly gap_status?: string | null
  readonly session?: string
}

const csvNumber = (text: string) => (text === "" ? null : Number(text))

/** Each format read back the way a researcher's tool would: CSV by its header, JSONL per line, Parquet with hyparquet. */
const readRows = async (format: string, bytes: Uint8Array): Promise<ReadonlyArray<Row>> => {
  if (format === "csv") {
    const [header, ...lines] = new TextDecoder().decode(bytes).trimEnd().split("\n")
    const names = header!.split(",")
    return lines.map((line) => {
      const cells = Object.fromEntries(line.split(",").map((cell, i) => [names[i]!, cell]))
      return {
        symbol: cells.symbol!, ts: Date.parse(cells.ts!), open: csvNumber(cells.open!), high: csvNumber(cells.high!), low: csvNumber(cells.low!),
        close: csvNumber(cells.close!), volume: Number(cells.volume), trades: csvNumber(cells.trades!), vwap: csvNumber(cells.vwap!),
        ...("filled" in cells ? { filled: cells.filled === "true", gap_status: cells.gap_status === "" ? null : cells.gap_status! } : {}),
        ...("session" in cells ? { session: cells.session! } : {})
      }
    })
  }
  if (format === "jsonl") {
    return new TextDecoder().decode(bytes).trimEnd().split("\n").map((line) => {
      const row = JSON.parse(line)
      return { ...row, ts: Date.parse(row.ts) }
    })
  }
  const dir = tempDir()
  writeFileSync(join(dir, "x.parquet"), bytes)
  const file = await asyncBufferFromFile(join(dir, "x.parquet"))
  const rows = await parquetReadObjects({ file })
  return rows.map((row) => ({
    ...row,
    ts: (row.ts as Date).getTime(),
    trades: row.trades === null ? null : Number(row.trades),
    ...(row.session instanceof Date ? { session: row.session.toISOString().slice(0, 10) } : {})
  })) as unknown as ReadonlyArray<Row>
}

const formats = ["csv", "jsonl", "parquet"] as const

describe.each(databaseKinds)("export on the %s database", (kind) => {
  let api: ApiHarness
  beforeAll(async () => {
    api = await startApi(kind)
  }, 60_000)
  afterAll(async () => {
    await api?.close()
  })

  const stored = () =>
    api.runtime.runPromise(CandleStore.use((store) => store.range({ symbol: "EURUSD", timeframe: "M1", from: seedFrom, to: seedTo, limit: 50_000 })))

  const download = async (query: string) => {
    const response = await api.request(`/api/data/export?${query}`)
    return { response, bytes: new Uint8Array(await response.arrayBuffer()) }
  }

  test("every format equals the API's candles bar for bar, and re-imports into a fresh database bar for bar", async () => {
    const candles = (await (await api.request(`/api/data/candles?symbol=EURUSD&timeframe=M1&start=${seedFrom}&end=${seedTo}&limit=50000`)).json()) as {
      candles: ReadonlyArray<{ ts: string; open: number; high: number; low: number; close: number; volume: number }>
    }
    const bars = await stored()
    expect(candles.candles.length).toBe(bars.length)
    expect(bars.length).toBeGreaterThan(5000)
    const fresh = await createTestDatabase(kind)
    const dir = tempDir()
    try {
      for (const [index, format] of formats.entries()) {
        const { response, bytes } = await download(`symbol=EURUSD&timeframe=M1&start=${new Date(seedFrom).toISOString()}&end=${new Date(seedTo).toISOString()}&format=${format}`)
        expect(response.status).toBe(200)
        expect(response.headers.get("content-disposition")).toBe(`attachment; filename="EURUSD_M1_2021-01-04_2021-01-09.${format}"`)
        const rows = await readRows(format, bytes)
        expect(rows.map((r) => ({ ts: new Date(r.ts).toISOString(), open: r.open, high: r.high, low: r.low, close: r.close, volume: r.volume }))).toEqual([...candles.candles])
        expect(rows.map((r) => [r.symbol, r.trades, r.vwap])).toEqual(bars.map((b) => ["EURUSD", b.trades ?? null, b.vwap ?? null]))

        const file = join(dir, `export.${format}`)
        writeFileSync(file, bytes)
        const report = await fresh.run(Importer.use((importer) => importer.run({ file, format, symbol: "EURUSD", clock: "utc" })))
        expect(report).toMatchObject({ lines: bars.length, bars: bars.length, badLines: 0, rejected: 0 })
        // The first format stores every bar; the others find every bar already stored with exactly their values.
        expect([report.stored, report.unchanged]).toEqual(index === 0 ? [bars.length, 0] : [0, bars.length])
        expect(await fresh.run(CandleStore.use((store) => store.range({ symbol: "EURUSD", timeframe: "M1", from: seedFrom, to: seedTo, limit: 50_000 })))).toEqual(bars)
      }
    } finally {
      await fresh.close()
      await fresh.drop()
    }
  }, 120_000)

  test("fill rows appear exactly at the missing minutes inside sessions, with their gap's status; closed minutes never appear", async () => {
    // The 7-bar hole becomes a recorded gap; the 2-bar one stays under GAP_MIN_BARS.
    expect((await api.request("/api/data/gaps/detect", post({ symbol: "EURUSD", timeframe: "M1", from: iso(seedFrom), to: iso(seedTo) }))).status).toBe(200)
    const holes = new Map(seedHoles.flatMap(([start, count]) => Array.from({ length: count }, (_, i) => [start + i * minute, count > 3 ? "detected" : "unrecorded"] as const)))
    const end = Date.parse("2021-01-10T22:00:00Z") // through the weekend's closure, up to the Sunday 17:00 New York open
    const bars = await stored()
    for (const format of formats) {
      for (const fill of ["null", "prev"] as const) {
        const { response, bytes } = await download(`symbol=EURUSD&timeframe=M1&start=${seedFrom}&end=${end}&format=${format}&fill=${fill}`)
        expect(response.status).toBe(200)
        const rows = await readRows(format, bytes)
        const filled = rows.filter((r) => r.filled)
        expect(new Map(filled.map((r) => [r.ts, r.gap_status]))).toEqual(holes)
        expect(rows.filter((r) => !r.filled).map((r) => r.ts)).toEqual(bars.map((b) => b.ts))
        expect(rows.every((r) => isOpen("forex", r.ts))).toBe(true)
        expect(rows.filter((r) => !r.filled).every((r) => r.gap_status === null)).toBe(true)
        for (const row of filled) {
          const before = bars.filter((b) => b.ts < row.ts).at(-1)!
          expect([row.open, row.close, row.volume]).toEqual(fill === "null" ? [null, null, 0] : [before.close, before.close, 0])
        }
      }
    }
  }, 60_000)

  test("the session column dates each bar by its trading day on the boundary: 17:00 New York starts the next one", async () => {
    for (const format of formats) {
      const { bytes } = await download(`symbol=EURUSD&timeframe=M1&start=2021-01-04T21:58:00Z&end=2021-01-04T22:02:00Z&format=${format}&sessions=true&boundary=new-york`)
      expect((await readRows(format, bytes)).map((r) => [new Date(r.ts).toISOString().slice(11, 16), r.session])).toEqual([
        ["21:58", "2021-01-04"], ["21:59", "2021-01-04"], ["22:00", "2021-01-05"], ["22:01", "2021-01-05"]
      ])
      const utc = await download(`symbol=EURUSD&timeframe=M1&start=2021-01-04T21:58:00Z&end=2021-01-04T22:02:00Z&format=${format}&sessions=true&boundary=utc`)
      expect((await readRows(format, utc.bytes)).map((r) => r.session)).toEqual(["2021-01-04", "2021-01-04", "2021-01-04", "2021-01-04"])
    }
  })

  test("Parquet has typed columns, a dictionary-encoded symbol, one row group per page and the export's key/value metadata", async () => {
    const chunks = await api.runtime.runPromise(
      Stream.runCollect(exportStream({
        specs: [api.config.symbols.find((s) => s.symbol === "EURUSD")!], timeframe: "M1", from: seedFrom, to: seedTo, format: "parquet",
        fill: "none", boundary: "utc", sessions: false, version: "9.9.9", pageBars: 2000
      })).pipe(Effect.map((chunk) => [...chunk]))
    )
    // Streamed: the header, a piece per row group, then the footer.
    expect(chunks.length).toBeGreaterThan(3)
    const dir = tempDir()
    const path = join(dir, "paged.parquet")
    writeFileSync(path, Buffer.concat(chunks.map((c) => c.bytes)))
    const file = await asyncBufferFromFile(path)
    const metadata = await parquetMetadataAsync(file)
    const bars = await stored()
    expect(Number(metadata.num_rows)).toBe(bars.length)
    expect(metadata.row_groups.map((g) => Number(g.num_rows))).toEqual(Array.from({ length: Math.ceil(bars.length / 2000) }, (_, i) => Math.min(2000, bars.length - i * 2000)))
    expect(Object.fromEntries(metadata.schema.slice(1).map((e) => [e.name, [e.type, e.converted_type ?? null]]))).toEqual({
      symbol: ["BYTE_ARRAY", "UTF8"], ts: ["INT64", "TIMESTAMP_MILLIS"], open: ["DOUBLE", null], high: ["DOUBLE", null], low: ["DOUBLE", null],
      close: ["DOUBLE", null], volume: ["DOUBLE", null], trades: ["INT64", null], vwap: ["DOUBLE", null]
    })
    expect(metadata.schema.find((e) => e.name === "ts")?.logical_type).toEqual({ type: "TIMESTAMP", isAdjustedToUTC: true, unit: "MILLIS" })
    expect(metadata.row_groups[0]!.columns[0]!.meta_data?.encodings).toContain("RLE_DICTIONARY")
    expect(Object.fromEntries((metadata.key_value_metadata ?? []).map((kv) => [kv.key, kv.value]))).toEqual({
      source: "candlekeep", symbols: "EURUSD", timeframe: "M1", day_boundary: "utc", from: iso(seedFrom), to: iso(seedTo), fill: "none", version: "9.9.9"
    })
    const rows = await parquetReadObjects({ file, rowStart: 1990, rowEnd: 2010 })
    expect(rows.map((r) => (r.ts as Date).getTime())).toEqual(bars.slice(1990, 2010).map((b) => b.ts))
  })

  test("plain CSV rendered by the database is byte for byte what the app renders, across page boundaries", async () => {
    const render = (csvRenderer: "database" | "app") =>
      api.runtime.runPromise(
        Stream.runCollect(exportStream({
          specs: [api.config.symbols.find((s) => s.symbol === "EURUSD")!], timeframe: "M1", from: seedFrom, to: seedTo, format: "csv",
          fill: "none", boundary: "utc", sessions: false, version: "test", pageBars: 1500, csvRenderer
        })).pipe(Effect.map((chunks) => Buffer.concat([...chunks].map((c) => c.bytes)).toString()))
      )
    const [database, app] = [await render("database"), await render("app")]
    expect(database.split("\n").length).toBe((await stored()).length + 2)
    expect(database).toBe(app)
  })

  test("a bad parameter is a 400 naming it; an unknown symbol a 404", async () => {
    const bad = await download(`symbol=EURUSD&timeframe=M1&start=${seedFrom}&end=${seedTo}&format=xlsx`)
    expect(bad.response.status).toBe(400)
    expect(JSON.parse(new TextDecoder().decode(bad.bytes))).toMatchObject({ error: "bad_request", field: "format" })
    const backwards = await download(`symbol=EURUSD&timeframe=M1&start=${seedTo}&end=${seedFrom}&format=csv`)
    expect(backwards.response.status).toBe(400)
    const unknown = await download(`symbol=EURUSD,NOPE&timeframe=M1&start=${seedFrom}&end=${seedTo}&format=csv`)
    expect(unknown.response.status).toBe(404)
  })
})

const iso = (ms: number) => new Date(ms).toISOString()

describe("reading other people's files", () => {
  const utc = (ms: number) => ms
  test.each([
    ["2025-05-15 07:35:00", Date.UTC(2025, 4, 15, 7, 35)],
    ["2025-05-15T07:35:00.000Z", Date.UTC(2025, 4, 15, 7, 35)],
    ["2025-05-15T09:35:00+02:00", Date.UTC(2025, 4, 15, 7, 35)],
    ["2025.05.15 07:35", Date.UTC(2025, 4, 15, 7, 35)],
    ["2025.05.15 07:35:00", Date.UTC(2025, 4, 15, 7, 35)],
    ["15.05.2025 07:35:00.000", Date.UTC(2025, 4, 15, 7, 35)],
    ["1747294500", Date.UTC(2025, 4, 15, 7, 35)],
    ["1747294500000", Date.UTC(2025, 4, 15, 7, 35)]
  ])("the time %s reads as %d", (text, expected) => {
    expect(readTime(text, utc)).toBe(expected)
  })

  test.each(["2021-02-30 10:00", "2021-01-01 24:00", "yesterday", "17472945"])("the time %s is refused with a reason", (text) => {
    expect(typeof readTime(text, utc)).toBe("string")
  })

  test.each([
    ["time,Open,High,Low,Close,Volume", "2025-05-15 07:35:00,3170.1,3171.2,3169.5,3170.8,123"],
    ["<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>", "2025.05.15\t07:35:00\t3170.1\t3171.2\t3169.5\t3170.8\t123\t0\t12"],
    ["Volume;CLOSE;low;High;open;Timestamp", "123;3170.8;3169.5;3171.2;3170.1;1747294500"],
    ["symbol,ts,open,high,low,close,volume,trades,vwap,filled,gap_status,session", "XAUUSD,2025-05-15T07:35:00.000Z,3170.1,3171.2,3169.5,3170.8,123,,,false,,2025-05-15"]
  ])("a header in any case, order and separator finds the columns: %s", (header, line) => {
    const parser = headerParser(header, "utc", "XAUUSD")
    expect(Either.isRight(parser)).toBe(true)
    const row = Either.getOrThrow(parser)(line, 2)
    expect(Either.getOrThrow(row)).toEqual({
      _tag: "bar",
      bar: { ts: Date.UTC(2025, 4, 15, 7, 35), open: 3170.1, high: 3171.2, low: 3169.5, close: 3170.8, volume: 123, vwap: null, trades: null }
    })
  })

  test("a fill's stand-ins and another symbol's rows are skipped, not bad; a header without prices is refused naming them", () => {
    const parser = Either.getOrThrow(headerParser("symbol,ts,open,high,low,close,volume,filled", "utc", "EURUSD"))
    expect(Either.getOrThrow(parser("EURUSD,2021-01-05T10:00:00.000Z,,,,,0,true", 2))).toEqual({ _tag: "skip" })
    expect(Either.getOrThrow(parser("XAUUSD,2021-01-05T10:00:00.000Z,1,1,1,1,0,false", 3))).toEqual({ _tag: "skip" })
    expect(Either.isLeft(parser("EURUSD,2021-01-05T10:00:00.000Z,,1,1,1,0,false", 4))).toBe(true)
    const refused = headerParser("when,price,size", "utc", undefined)
    expect(Either.isLeft(refused) && refused.left).toContain("no time, open, high, low, close column")
  })
})
