import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, Option } from "effect"
import { readdirSync } from "node:fs"
import { join } from "node:path"
import type { Candle } from "../src/domain/candle.ts"
import type { Timeframe } from "../src/domain/timeframe.ts"
import { CandleStore } from "../src/store/candle-store.ts"
import { Rollups } from "../src/store/rollups.ts"
import { DatabaseInfo } from "../src/store/database.ts"
import { MigrationTampered, migrate, migrations } from "../src/store/migrations.ts"
import { FlavourRefused } from "../src/store/flavour.ts"
import { copyColumns, copyIn, encodeBars } from "../src/store/pg-copy.ts"
import { walk } from "./support/bars.ts"
import { aggregate, newYorkClock, newYorkTradingDay, utcBucket } from "./support/aggregate.ts"
import { createTestDatabase, databaseKinds, type TestDatabase } from "./support/databases.ts"
import { hasSharedData, loadHistdata, noSharedDataReason } from "./support/shared-data.ts"

const minute = 60_000
/** Pays every owed rollup, as a command does before it returns. */
const payRollups = Effect.flatMap(Rollups, (rollups) => rollups.pay)
const hour = 60 * minute
const day = 24 * hour

/** Generated M1 bars: a gentle random walk from a Monday, deterministic. */
const monday = Date.parse("2021-01-04T00:00:00Z")
const derived: ReadonlyArray<Timeframe> = ["M5", "M15", "M30", "H1", "H4", "D1"]

test("every file in sql/ is listed as a migration", () => {
  const onDisk = readdirSync(join(import.meta.dir, "..", "sql")).filter((f) => f.endsWith(".sql")).sort()
  const listed = migrations.flatMap((m) => Object.values(m.files).map((f) => f.file)).sort()
  expect(listed).toEqual(onDisk)
})

describe.each(databaseKinds)("store on the %s database", (kind) => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await createTestDatabase(kind)
  })
  afterAll(async () => {
    await db?.close()
    await db?.drop()
  })

  test("health facts: the flavour matches the extension, migrations are at the last level", async () => {
    const info = await db.run(DatabaseInfo)
    expect(info.kind).toBe(kind === "embedded" ? "embedded" : "server")
    expect(info.migrationLevel).toBe(migrations.at(-1)!.name)
    expect(info.flavour).toBe(kind === "plain" ? "plain" : "timescale")
    expect(info.flavour).toBe(info.timescaleVersion === null ? "plain" : "timescale")
    if (kind === "embedded") expect(info.timescaleVersion).not.toBeNull()
  })

  test("re-upserting a page is idempotent: nothing changes, nothing duplicates", async () => {
    const page = { symbol: "GBPUSD", timeframe: "M1" as const, source: "massive" as const, candles: walk("GBPUSD", monday, 600) }
    const first = await db.run(CandleStore.use((s) => s.upsertPage(page)))
    const again = await db.run(CandleStore.use((s) => s.upsertPage(page)))
    expect(first).toEqual({ inserted: 600, updated: 0, unchanged: 0 })
    expect(again).toEqual({ inserted: 0, updated: 0, unchanged: 600 })
    const stored = await db.run(
      CandleStore.use((s) => s.range({ symbol: "GBPUSD", timeframe: "M1", from: monday, to: monday + day, limit: 10_000 }))
    )
    expect(stored.length).toBe(600)
    expect(stored.map((b) => [b.ts, b.open, b.high, b.low, b.close, b.volume])).toEqual(
      page.candles.map((c) => [c.ts, c.open, c.high, c.low, c.close, c.volume])
    )
    const [row] = await db.run(
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number; trades: number }>`
        SELECT count(*)::int AS n, count(trades)::int AS trades FROM candles WHERE symbol = 'GBPUSD'`)
    )
    expect(row).toEqual({ n: 600, trades: 400 })
  })

  test("a page into an empty range and one into a filled range store the same values", async () => {
    const fresh = walk("EURUSD", monday + 20 * day, 500)
    const page = { symbol: "EURUSD", timeframe: "M1" as const, source: "massive" as const, candles: fresh }
    expect(await db.run(CandleStore.use((s) => s.upsertPage(page)))).toEqual({ inserted: 500, updated: 0, unchanged: 0 })
    // Half old, half new: the COPY path must step aside for the upsert.
    const overlapping = walk("EURUSD", monday + 20 * day + 250 * minute, 500)
    expect(await db.run(CandleStore.use((s) => s.upsertPage({ ...page, candles: overlapping })))).toEqual({ inserted: 250, updated: 250, unchanged: 0 })
    const stored = await db.run(CandleStore.use((s) => s.range({ symbol: "EURUSD", timeframe: "M1", from: monday + 20 * day, to: monday + 21 * day, limit: 2000 })))
    expect(stored.length).toBe(750)
    const [row] = await db.run(
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ trades: number; vwaps: number }>`
        SELECT count(trades)::int AS trades, count(vwap)::int AS vwaps FROM candles WHERE symbol = 'EURUSD' AND ts >= ${new Date(monday + 20 * day)}`)
    )
    expect(row!.vwaps).toBe(0)
    expect(row!.trades).toBe(fresh.slice(0, 250).filter((c) => c.trades !== null).length + overlapping.filter((c) => c.trades !== null).length)
    expect(stored.map((b) => b.close)).toEqual([...fresh.slice(0, 250), ...overlapping].map((c) => c.close))
  })

  test("COPY is used where the driver exposes its connection (the server) and declined elsewhere (PGlite)", async () => {
    const copied = await db.run(
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql.withTransaction(
          Effect.zipLeft(
            copyIn(`COPY candles (${copyColumns}) FROM STDIN (FORMAT binary)`, encodeBars({ symbol: "COPYT", timeframe: "M1", source: "massive" }, walk("COPYT", monday, 3))),
            Effect.flatMap(SqlClient.SqlClient, (s) => s`DELETE FROM candles WHERE symbol = 'COPYT'`)
          )
        )
      )
    )
    // On the server this pins an internal of @effect/sql-pg: if it goes, pages silently take the slower upsert.
    expect(copied).toEqual(kind !== "embedded" ? Option.some(3) : Option.none())
  })

  test("a page that repeats a bar keeps the last copy and reports it once", async () => {
    const [a, b] = walk("USDJPY", monday, 2)
    const page = { symbol: "USDJPY", timeframe: "M1" as const, source: "massive" as const, candles: [a!, b!, { ...a!, close: a!.close + 0.0001, high: a!.high + 0.0001 }] }
    const report = await db.run(CandleStore.use((s) => s.upsertPage(page)))
    expect(report).toEqual({ inserted: 2, updated: 0, unchanged: 0 })
    const stored = await db.run(CandleStore.use((s) => s.range({ symbol: "USDJPY", timeframe: "M1", from: monday, to: monday + hour, limit: 10 })))
    expect(stored[0]!.close).toBe(a!.close + 0.0001)
  })

  test("an updated bar shows in every derived timeframe after refresh", async () => {
    const bars = walk("EURUSD", monday, 2 * 24 * 60)
    await db.run(
      CandleStore.use((s) =>
        Effect.zipRight(
          s.upsertPage({ symbol: "EURUSD", timeframe: "M1", source: "massive", candles: bars }),
          payRollups
        )
      )
    )
    const target = bars[12 * 60 + 7]!
    const spiked = { ...target, high: 1.5, close: 1.45, volume: target.volume + 1000 }
    const report = await db.run(
      CandleStore.use((s) =>
        Effect.tap(s.upsertPage({ symbol: "EURUSD", timeframe: "M1", source: "massive", candles: [spiked] }), () =>
          payRollups
        )
      )
    )
    expect(report).toEqual({ inserted: 0, updated: 1, unchanged: 0 })
    for (const timeframe of derived) {
      for (const dayBoundary of ["utc", "new-york"] as const) {
        const rows = await db.run(
          CandleStore.use((s) => s.range({ symbol: "EURUSD", timeframe, from: monday - day, to: monday + 3 * day, limit: 5000, dayBoundary }))
        )
        const holder = rows.filter((r) => r.high === 1.5)
        expect({ timeframe, dayBoundary, found: holder.length }).toEqual({ timeframe, dayBoundary, found: 1 })
        expect(holder[0]!.volume).toBeGreaterThanOrEqual(1000)
      }
    }
  })

  test("a late bar inside an already-refreshed hour appears in H1, H4 and D1 after the next refresh", async () => {
    const start = Date.parse("2021-02-01T00:00:00Z")
    const bars = walk("XAUUSD", start, 6 * 60).filter((b) => b.ts !== start + 90 * minute)
    await db.run(
      CandleStore.use((s) =>
        Effect.zipRight(
          s.upsertPage({ symbol: "XAUUSD", timeframe: "M1", source: "massive", candles: bars }),
          payRollups
        )
      )
    )
    const hourOf = (tf: Timeframe) =>
      db.run(CandleStore.use((s) => s.range({ symbol: "XAUUSD", timeframe: tf, from: start, to: start + day, limit: 100 })))
    expect((await hourOf("H1"))[1]!.bars).toBe(59)
    const late: Candle = { ts: start + 90 * minute, open: 1850, high: 1999, low: 1700, close: 1850, volume: 1, vwap: null, trades: null }
    await db.run(
      CandleStore.use((s) =>
        Effect.zipRight(
          s.upsertPage({ symbol: "XAUUSD", timeframe: "M1", source: "massive", candles: [late] }),
          payRollups
        )
      )
    )
    const h1 = await hourOf("H1")
    expect(h1[1]).toMatchObject({ bars: 60, high: 1999, low: 1700 })
    for (const tf of ["H4", "D1"] as const) {
      const [first] = await hourOf(tf)
      expect({ tf, high: first!.high, low: first!.low }).toEqual({ tf, high: 1999, low: 1700 })
    }
  })

  test("range is [from, to), oldest first, capped by limit; lastBar is the newest", async () => {
    const bars = walk("BTCUSD", monday, 30)
    await db.run(CandleStore.use((s) => s.upsertPage({ symbol: "BTCUSD", timeframe: "M1", source: "massive", candles: bars })))
    const rows = await db.run(
      CandleStore.use((s) => s.range({ symbol: "BTCUSD", timeframe: "M1", from: monday + 5 * minute, to: monday + 10 * minute, limit: 100 }))
    )
    expect(rows.map((r) => r.ts)).toEqual([5, 6, 7, 8, 9].map((i) => monday + i * minute))
    const capped = await db.run(CandleStore.use((s) => s.range({ symbol: "BTCUSD", timeframe: "M1", from: monday, to: monday + day, limit: 3 })))
    expect(capped.length).toBe(3)
    const last = await db.run(CandleStore.use((s) => s.lastBar("BTCUSD", "M1")))
    expect(Option.map(last, (b) => b.ts)).toEqual(Option.some(monday + 29 * minute))
    expect(Option.isNone(await db.run(CandleStore.use((s) => s.lastBar("NOPE", "M1"))))).toBe(true)
  })

  test("migrations are idempotent across restarts", async () => {
    await db.close()
    db = db.reopen()
    const report = await db.run(migrate({ requested: db.config.databaseFlavour, embedded: kind === "embedded" }))
    expect(report.applied).toEqual([])
    expect(report.level).toBe(migrations.at(-1)!.name)
    const [row] = await db.run(
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`SELECT count(*)::int AS n FROM schema_migrations`)
    )
    expect(row!.n).toBe(migrations.length)
    // A reopened database must still take writes and refresh its rollups (PGlite needs TimescaleDB loaded again).
    const later = walk("GBPUSD", monday + 7 * day, 120)
    const written = await db.run(
      CandleStore.use((s) =>
        Effect.tap(s.upsertPage({ symbol: "GBPUSD", timeframe: "M1", source: "massive", candles: later }), () =>
          payRollups
        )
      )
    )
    expect(written.inserted).toBe(120)
    const hours = await db.run(
      CandleStore.use((s) => s.range({ symbol: "GBPUSD", timeframe: "H1", from: monday + 7 * day, to: monday + 8 * day, limit: 10 }))
    )
    expect(hours.map((h) => h.bars)).toEqual([60, 60])
  })

  test("a changed, already-applied migration stops start-up with a clear message", async () => {
    const tampered = migrations.map((m) =>
      m.name === "0001_core" ? { ...m, files: { any: { file: "0001_core.sql", text: `${m.files.any!.text}\n-- edited` } } } : m
    )
    const error = await db.run(Effect.flip(migrate({ requested: db.config.databaseFlavour, embedded: kind === "embedded" }, tampered)))
    expect(error).toBeInstanceOf(MigrationTampered)
    expect(error.message).toContain("migration 0001_core.sql was changed after it was applied")
  })

  test("a database keeps its flavour: asking for the other one is refused in one line, and nothing is migrated", async () => {
    const other = (flavour: string) => (flavour === "plain" ? "timescale" : "plain")
    const info = await db.run(DatabaseInfo)
    const error = await db.run(Effect.flip(migrate({ requested: other(info.flavour), embedded: kind === "embedded" })))
    expect(error).toBeInstanceOf(FlavourRefused)
    expect(error.message).toBe(
      `this database was created as ${info.flavour}; DATABASE_FLAVOUR=${other(info.flavour)} cannot change it (use a new database, or DATABASE_FLAVOUR=auto or ${info.flavour})`
    )
    const [row] = await db.run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ flavours: number }>`SELECT count(DISTINCT flavour)::int AS flavours FROM schema_migrations`))
    expect(row!.flavours).toBe(1)
  })
})

describe.each(databaseKinds)("rollups of the real EURUSD file on the %s database", (kind) => {
  let db: TestDatabase
  const bars = hasSharedData ? loadHistdata("EURUSD") : []
  beforeAll(async () => {
    if (!hasSharedData) return console.log(noSharedDataReason)
    db = await createTestDatabase(kind)
    await db.run(
      CandleStore.use((s) =>
        Effect.gen(function* () {
          for (let i = 0; i < bars.length; i += 50_000) {
            yield* s.upsertPage({ symbol: "EURUSD", timeframe: "M1", source: "import", candles: bars.slice(i, i + 50_000) })
          }
          yield* payRollups
        })
      )
    )
  })
  afterAll(async () => {
    await db?.close()
    await db?.drop()
  })
  const all = { symbol: "EURUSD", from: Date.parse("2021-01-01T00:00:00Z"), to: Date.parse("2021-06-01T00:00:00Z"), limit: 50_000 }

  test.skipIf(!hasSharedData)("H1 from the store equals an independent aggregation", async () => {
    const stored = await db.run(CandleStore.use((s) => s.range({ ...all, timeframe: "H1" })))
    const expected = aggregate(bars, utcBucket(hour))
    expect(stored.length).toBe(expected.length)
    expect(stored).toEqual(expected.map((b) => ({ ...b })))
  })

  test.skipIf(!hasSharedData)("D1 on the UTC boundary equals an independent aggregation", async () => {
    const stored = await db.run(CandleStore.use((s) => s.range({ ...all, timeframe: "D1", dayBoundary: "utc" })))
    expect(stored).toEqual(aggregate(bars, utcBucket(day)).map((b) => ({ ...b })))
  })

  test.skipIf(!hasSharedData)("D1 on the New York boundary equals an aggregation by MT4 trading day", async () => {
    const stored = await db.run(CandleStore.use((s) => s.range({ ...all, timeframe: "D1", dayBoundary: "new-york" })))
    const byDay = new Map<string, Array<Candle>>()
    for (const bar of bars) {
      const key = newYorkTradingDay(bar.ts)
      const group = byDay.get(key)
      if (group) group.push(bar)
      else byDay.set(key, [bar])
    }
    expect(stored.length).toBe(byDay.size)
    for (const bar of stored) {
      // Every daily bar opens at 17:00 New York, in winter and in summer.
      expect(newYorkClock(bar.ts)).toMatchObject({ hour: 17, minute: 0 })
      const [expected] = aggregate(byDay.get(newYorkTradingDay(bar.ts))!, () => bar.ts)
      expect(bar).toEqual({ ...expected! })
    }
  })

  test.skipIf(!hasSharedData)("a full forex week has 5 daily bars on the New York boundary and 6 on UTC", async () => {
    // Sunday 2021-01-10 17:00 New York (22:00 UTC) to Friday 2021-01-15 17:00 New York.
    const week = { symbol: "EURUSD", timeframe: "D1" as const, from: Date.parse("2021-01-10T00:00:00Z"), to: Date.parse("2021-01-16T00:00:00Z"), limit: 50 }
    const newYork = await db.run(CandleStore.use((s) => s.range({ ...week, dayBoundary: "new-york" })))
    const utc = await db.run(CandleStore.use((s) => s.range({ ...week, dayBoundary: "utc" })))
    expect(newYork.length).toBe(5)
    expect(utc.length).toBe(6)
    // The UTC week starts with a two-hour Sunday stub.
    expect(utc[0]!.bars).toBeLessThanOrEqual(120)
    expect(newYork.reduce((n, b) => n + b.bars, 0)).toBe(utc.reduce((n, b) => n + b.bars, 0))
  })

  test.skipIf(!hasSharedData)("M5 to M30 match an independent aggregation too", async () => {
    for (const [timeframe, width] of [["M5", 5 * minute], ["M15", 15 * minute], ["M30", 30 * minute]] as const) {
      const stored = await db.run(CandleStore.use((s) => s.range({ ...all, timeframe })))
      expect(stored).toEqual(aggregate(bars, utcBucket(width)).map((b) => ({ ...b })))
    }
  })
})

describe.each(databaseKinds)("a timeframe with its own stream on the %s database", (kind) => {
  let db: TestDatabase
  afterAll(async () => {
    await db?.close()
    await db?.drop()
  })

  test("XAUUSD:D1 answers D1 from the vendor's own daily bars; EURUSD D1 still comes from M1", async () => {
    db = await createTestDatabase(kind, {
      streams: Option.some([{ symbol: "XAUUSD", timeframe: "M1" }, { symbol: "XAUUSD", timeframe: "D1" }, { symbol: "EURUSD", timeframe: "M1" }])
    })
    const daily: ReadonlyArray<Candle> = [0, 1, 2].map((i) => ({ ts: monday + i * day, open: 1800 + i, high: 1810 + i, low: 1790 + i, close: 1805 + i, volume: 1000, vwap: null, trades: null }))
    const minutes = walk("XAUUSD", monday, 120)
    await db.run(
      CandleStore.use((s) =>
        Effect.all([
          s.upsertPage({ symbol: "XAUUSD", timeframe: "D1", source: "massive", candles: daily }),
          s.upsertPage({ symbol: "XAUUSD", timeframe: "M1", source: "massive", candles: minutes }),
          s.upsertPage({ symbol: "EURUSD", timeframe: "M1", source: "massive", candles: walk("EURUSD", monday, 120) }),
          payRollups
        ])
      )
    )
    const range = { from: monday, to: monday + 3 * day, limit: 10, timeframe: "D1" as const }
    const gold = await db.run(CandleStore.use((s) => s.range({ ...range, symbol: "XAUUSD" })))
    expect(gold.map((b) => [b.ts, b.open, b.close])).toEqual(daily.map((b) => [b.ts, b.open, b.close]))
    const euro = await db.run(CandleStore.use((s) => s.range({ ...range, symbol: "EURUSD" })))
    expect(euro.map((b) => b.bars)).toEqual([120])
    const last = await db.run(CandleStore.use((s) => s.lastBar("XAUUSD", "D1")))
    expect(Option.map(last, (b) => b.ts)).toEqual(Option.some(monday + 2 * day))
  })
})
