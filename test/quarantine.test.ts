import { afterEach, describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Candle } from "../src/domain/candle.ts"
import { defaultSymbols } from "../src/domain/symbol.ts"
import { Importer } from "../src/pipeline/import.ts"
import { Ingest } from "../src/pipeline/ingest.ts"
import { quietBars } from "./support/bars.ts"
import { createTestDatabase, databaseKinds, type TestDatabase } from "./support/databases.ts"

const minute = 60_000
const eurusd = defaultSymbols.find((s) => s.symbol === "EURUSD")!
const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

const database = async (kind: (typeof databaseKinds)[number]) => {
  const db = await createTestDatabase(kind)
  cleanups.push(async () => {
    await db.close()
    await db.drop()
  })
  return db
}

const bar = (ts: number, open: number, close: number): Candle => ({
  ts, open, close, high: Math.max(open, close) + 0.0001, low: Math.min(open, close) - 0.0001, volume: 3, vwap: null, trades: null
})

/** One page of EURUSD M1 from the vendor, as the backfill hands it over: `range` is the request window. */
const writePage = (db: TestDatabase, candles: ReadonlyArray<Candle>, range: { from: number; to: number }) =>
  db.run(Ingest.use((i) => i.writePage({ spec: eurusd, timeframe: "M1", source: "massive", purpose: "backfill", range, candles, requestId: null, httpStatus: null, advanceTo: null })))

const stored = (db: TestDatabase) =>
  db.run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ ts: Date }>`SELECT ts FROM candles WHERE symbol = 'EURUSD' ORDER BY ts`)).then((rows) => rows.map((r) => r.ts.getTime()))

const quarantined = (db: TestDatabase) =>
  db
    .run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ ts: Date; rule: string }>`SELECT ts, rule FROM rejected_candles WHERE symbol = 'EURUSD' ORDER BY ts`))
    .then((rows) => rows.map((r) => [r.ts.toISOString(), r.rule]))

const t0 = Date.parse("2021-03-01T09:00:00Z")

describe.each(databaseKinds)("the quarantine on the %s database", (kind) => {
  test("an imported line dated 10000101 and a vendor bar dated 2099 are quarantined as out_of_range, not stored", async () => {
    const db = await database(kind)
    const dir = mkdtempSync(join(tmpdir(), "candlekeep-range-"))
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, "histdata.csv")
    writeFileSync(file, ["10000101 000000;1.2;1.2002;1.1999;1.2001;0", "20210104 050000;1.2;1.2002;1.1999;1.2001;0", "20210104 050100;1.2;1.2002;1.1999;1.2001;0"].join("\n") + "\n")
    const report = await db.run(Importer.use((i) => i.run({ file, format: "histdata", symbol: "EURUSD", clock: "utc" })))
    expect(report).toMatchObject({ bars: 3, stored: 2, rejected: 1 })
    const future = Date.UTC(2099, 0, 1)
    await writePage(db, [bar(future, 1.2, 1.2001)], { from: future, to: future + minute })
    expect(await quarantined(db)).toEqual([
      ["1000-01-01T00:00:00.000Z", "out_of_range"],
      ["2099-01-01T00:00:00.000Z", "out_of_range"]
    ])
    expect(await stored(db)).toEqual([Date.parse("2021-01-04T05:00:00Z"), Date.parse("2021-01-04T05:01:00Z")])
  })

  test("the first bars of a fast move, quarantined as spikes at the end of a page, are stored once the next page confirms the move", async () => {
    const db = await database(kind)
    await writePage(db, quietBars(t0, 60), { from: t0, to: t0 + 60 * minute })
    const up = (i: number) => bar(t0 + i * minute, 1.25, 1.2501)
    await writePage(db, [up(60), up(61)], { from: t0 + 60 * minute, to: t0 + 62 * minute })
    expect((await quarantined(db)).map(([, rule]) => rule)).toEqual(["price_spike", "price_spike"])
    await writePage(db, [up(62), up(63), up(64)], { from: t0 + 62 * minute, to: t0 + 65 * minute })
    expect(await quarantined(db)).toEqual([])
    expect(await stored(db)).toEqual(Array.from({ length: 65 }, (_, i) => t0 + i * minute))
  })

  test("the second page of a request window is judged against the first page, not against the bars before the window", async () => {
    const db = await database(kind)
    await writePage(db, quietBars(t0, 60), { from: t0, to: t0 + 60 * minute })
    // Page one of the window climbs 80 pips in ten steps, none of them a spike; page two goes on at the new level
    // with two bars (too few to confirm a level shift, were they judged as spikes from the bars before the window).
    const climb = Array.from({ length: 10 }, (_, i) => bar(t0 + (60 + i) * minute, 1.2001 + 0.008 * i, 1.2001 + 0.008 * (i + 1)))
    const level = climb.at(-1)!.close
    const window = { from: t0 + 60 * minute, to: t0 + 200 * minute }
    expect((await writePage(db, climb, window)).rejected).toBe(0)
    const onward = Array.from({ length: 2 }, (_, i) => bar(t0 + (70 + i) * minute, level, level))
    expect((await writePage(db, onward, window)).rejected).toBe(0)
    expect(await quarantined(db)).toEqual([])
    expect((await stored(db)).length).toBe(72)
  })
})
