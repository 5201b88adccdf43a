import { afterEach, describe, expect, test } from "bun:test"
import type { Candle, StoredBar } from "../src/domain/candle.ts"
import { CandleStore } from "../src/store/candle-store.ts"
import { Rollups } from "../src/store/rollups.ts"
import { createTestDatabase, databaseKinds } from "./support/databases.ts"

const minute = 60_000
const hour = 60 * minute
const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

const newYork = new Intl.DateTimeFormat("en-US", {
  timeZone: "America/New_York", hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric"
})

/**
 * The H4 bucket of an instant on the New York day boundary, computed apart from the SQL: the New York wall clock
 * (from Intl) moved on 7 h so the trading day starts at midnight, cut in 4 h blocks of wall time.
 */
const wallBlock = (ms: number): number => {
  const parts = Object.fromEntries(newYork.formatToParts(new Date(ms)).map((p) => [p.type, Number(p.value)]))
  return Math.floor((Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!) + 7 * hour) / (4 * hour))
}

/** H4 bars from M1 bars: grouped by wall block, each labelled with the first instant of its block. */
const independentH4 = (bars: ReadonlyArray<Candle>): Array<StoredBar> => {
  const blocks = new Map<number, Array<Candle>>()
  for (const bar of bars) blocks.set(wallBlock(bar.ts), [...(blocks.get(wallBlock(bar.ts)) ?? []), bar])
  return [...blocks.values()].map((group) => ({
    ts: group[0]!.ts,
    open: group[0]!.open,
    high: Math.max(...group.map((b) => b.high)),
    low: Math.min(...group.map((b) => b.low)),
    close: group.at(-1)!.close,
    volume: group.reduce((n, b) => n + b.volume, 0),
    bars: group.length,
    // Derived bars carry no vwap or trade count.
    vwap: null,
    trades: null
  }))
}

describe.each(databaseKinds)("H4 on the New York day boundary on the %s database", (kind) => {
  test("across the November fall-back (2021-11-07) every H4 bar has the label and the bars of an independent computation", async () => {
    const db = await createTestDatabase(kind)
    cleanups.push(async () => {
      await db.close()
      await db.drop()
    })
    // BTCUSD trades through the fall-back night: 36 h of minutes around it, prices a simple walk.
    const from = Date.parse("2021-11-06T12:00:00Z")
    const bars: Array<Candle> = Array.from({ length: 36 * 60 }, (_, i) => {
      const open = 60_000 + (i % 97) - (i % 13)
      const close = open + ((i * 7) % 11) - 5
      return { ts: from + i * minute, open, high: Math.max(open, close) + 3, low: Math.min(open, close) - 2, close, volume: 1 + (i % 5), vwap: null, trades: null }
    })
    await db.run(CandleStore.use((s) => s.upsertPage({ symbol: "BTCUSD", timeframe: "M1", source: "import", candles: bars })))
    await db.run(Rollups.use((r) => r.pay))

    // Only the blocks wholly inside the data: the first and last are cut by its edges.
    const expected = independentH4(bars).slice(1, -1)
    // The 01:00 block holds five hours (01:00 EDT to 05:00 EST) and opens at the first 01:00: 05:00 UTC.
    expect(expected.find((b) => b.bars === 300)?.ts).toBe(Date.parse("2021-11-07T05:00:00Z"))
    const h4 = await db.run(
      CandleStore.use((s) => s.range({ symbol: "BTCUSD", timeframe: "H4", from: expected[0]!.ts, to: expected.at(-1)!.ts + 1, limit: 100, dayBoundary: "new-york" }))
    )
    expect(h4.map((b) => new Date(b.ts).toISOString())).toEqual(expected.map((b) => new Date(b.ts).toISOString()))
    expect(h4).toEqual(expected)
  })
})
