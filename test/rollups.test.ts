import { afterAll, describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, ManagedRuntime, Option } from "effect"
import type { Candle, StoredBar } from "../src/domain/candle.ts"
import { Backfill } from "../src/pipeline/backfill.ts"
import { Ingest } from "../src/pipeline/ingest.ts"
import { CandleStore } from "../src/store/candle-store.ts"
import { DatabaseInfo } from "../src/store/database.ts"
import { Rollups, rollupLevels, type RollupTimeframe } from "../src/store/rollups.ts"
import { aggregate, utcBucket } from "./support/aggregate.ts"
import { walk } from "./support/bars.ts"
import { createTestDatabase, databaseKinds, storeLayer, type TestDatabase } from "./support/databases.ts"

const minute = 60_000
const hour = 60 * minute
const monday = Date.parse("2021-01-04T00:00:00Z")
const widths: Record<RollupTimeframe, number> = { M5: 5 * minute, M15: 15 * minute, M30: 30 * minute, H1: hour }

const cleanups: Array<() => Promise<void>> = []
afterAll(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

const fresh = async (kind: (typeof databaseKinds)[number]) => {
  const db = await createTestDatabase(kind)
  cleanups.push(() => db.drop())
  return db
}

type Levels = ReadonlyArray<readonly [RollupTimeframe, ReadonlyArray<StoredBar>]>

/** Every rollup level of a symbol, as the store answers it. */
const levels = (db: TestDatabase, symbol: string, from: number, to: number): Promise<Levels> =>
  db.run(
    Effect.forEach(rollupLevels, (level) =>
      Effect.map(CandleStore.use((s) => s.range({ symbol, timeframe: level.timeframe, from, to, limit: 50_000 })), (bars) => [level.timeframe, bars] as const)
    )
  )

/** What every level must hold: an independent aggregation of the M1 bars in plain JS. */
const expected = (bars: ReadonlyArray<Candle>): Levels => rollupLevels.map((level) => [level.timeframe, aggregate(bars, utcBucket(widths[level.timeframe]))] as const)

const owed = (db: TestDatabase) => db.run(Effect.flatMap(Rollups, (r) => r.owed))

/** The page path without the run around it: what a run has done when it is stopped before paying. */
const writeUnpaid = (db: TestDatabase, symbol: string, pages: ReadonlyArray<ReadonlyArray<Candle>>) =>
  db.run(
    Effect.gen(function* () {
      const ingest = yield* Ingest
      const spec = (yield* Backfill).specFor(symbol)
      for (const candles of pages) {
        yield* ingest.writePage({
          spec: yield* spec,
          timeframe: "M1",
          source: "massive",
          purpose: "backfill",
          range: { from: candles[0]!.ts, to: candles.at(-1)!.ts + minute },
          candles,
          requestId: null,
          httpStatus: null,
          advanceTo: candles.at(-1)!.ts + minute
        })
      }
    })
  )

for (const kind of databaseKinds) {
  describe(`rollups owed and paid on the ${kind} database`, () => {
    test("a backfill stopped between its commits and the refresh leaves its rollups owed; the next run pays them and every level is exact", async () => {
      let db = await fresh(kind)
      const bars = walk("EURUSD", monday, 3 * 1440)
      const pages = [bars.slice(0, 1440), bars.slice(1440, 2880), bars.slice(2880)]
      await writeUnpaid(db, "EURUSD", pages)
      // The pages committed, the rollups were never refreshed: that is owed, and visible as such.
      expect(await owed(db)).toBe(72)
      const stale = await levels(db, "EURUSD", monday, monday + 3 * 24 * hour)
      expect(stale.every(([, rows]) => rows.length === 0)).toBe(true)

      // A restart, then the next sync: it has nothing to ask (the watermark is at the end) and still pays.
      await db.close()
      db = db.reopen()
      cleanups.push(() => db.close())
      const report = await db.run(Backfill.use((b) => b.run({ symbol: "EURUSD", timeframe: "M1", from: monday, to: monday + 3 * 24 * hour })))
      expect(report.upToDate).toBe(true)
      expect(await owed(db)).toBe(0)
      expect(await levels(db, "EURUSD", monday, monday + 3 * 24 * hour)).toEqual(expected(bars))
    })

    test("thirty writers and payers at once, from three instances where the database allows it: no error, every level exact", async () => {
      const db = await fresh(kind)
      cleanups.push(() => db.close())
      // Instances share a server database; the embedded one belongs to one process.
      const instances = kind === "embedded" ? [db.runtime] : [db.runtime, ManagedRuntime.make(storeLayer(db.config)), ManagedRuntime.make(storeLayer(db.config))]
      for (const runtime of instances.slice(1)) cleanups.push(() => runtime.dispose())
      const bars = walk("USDJPY", monday, 6 * 60).map((b) => ({ ...b, open: b.open * 100, high: b.high * 100, low: b.low * 100, close: b.close * 100 }))
      // Thirty overlapping slices: each writes its bars (some the same hours as others) and pays at once.
      const slices = Array.from({ length: 30 }, (_, i) => bars.slice(i * 10, i * 10 + 40))
      const outcomes = await Promise.allSettled(
        slices.map((slice, i) =>
          instances[i % instances.length]!.runPromise(
            Effect.gen(function* () {
              yield* CandleStore.use((s) => s.upsertPage({ symbol: "USDJPY", timeframe: "M1", source: "massive", candles: slice }))
              yield* Effect.flatMap(Rollups, (r) => r.pay)
            })
          )
        )
      )
      expect(outcomes.filter((o) => o.status === "rejected")).toEqual([])
      expect(await owed(db)).toBe(0)
      const written = bars.slice(0, 29 * 10 + 40)
      expect(await levels(db, "USDJPY", monday, monday + 6 * hour)).toEqual(expected(written))
    })

    test("verify finds a rollup bucket that differs from the bars, rebuilds it, and finds nothing the second time", async () => {
      const db = await fresh(kind)
      cleanups.push(() => db.close())
      const bars = walk("XAUUSD", monday, 4 * 60)
      await db.run(Effect.zipRight(CandleStore.use((s) => s.upsertPage({ symbol: "XAUUSD", timeframe: "M1", source: "massive", candles: bars })), Effect.flatMap(Rollups, (r) => r.pay)))
      // Damage one H1 bucket behind the store's back, where its rows really live.
      await db.run(
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const info = yield* DatabaseInfo
          const [target] =
            info.flavour === "timescale"
              ? yield* sql<{ name: string }>`SELECT format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name) AS name
                  FROM timescaledb_information.continuous_aggregates WHERE view_name = 'candles_h1'`
              : [{ name: "candles_h1" }]
          yield* sql.unsafe(`UPDATE ${target!.name} SET high = high + 1 WHERE symbol = 'XAUUSD' AND ts = $1`, [new Date(monday + hour)])
        })
      )
      const request = { symbol: "XAUUSD", timeframe: Option.none(), from: monday, to: monday + 4 * hour } as const
      const first = await db.run(Effect.flatMap(Rollups, (r) => r.verify(request)))
      expect(first.find((l) => l.timeframe === "H1")).toEqual({ timeframe: "H1", buckets: 4, missing: 0, extra: 0, differing: 1, rebuilt: 1 })
      expect(first.filter((l) => l.timeframe !== "H1").every((l) => l.differing + l.missing + l.extra === 0)).toBe(true)
      expect(await levels(db, "XAUUSD", monday, monday + 4 * hour)).toEqual(expected(bars))
      const second = await db.run(Effect.flatMap(Rollups, (r) => r.verify(request)))
      expect(second.map((l) => l.differing + l.missing + l.extra + l.rebuilt)).toEqual([0, 0, 0, 0])
      expect(second.map((l) => l.buckets)).toEqual([48, 16, 8, 4])
    })
  })
}
