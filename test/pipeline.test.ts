import { afterEach, describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, Fiber, HashMap, Logger, Option, Redacted, TestClock, TestContext } from "effect"
import { AppConfig, type AppConfigShape, type MassiveSettings } from "../src/config.ts"
import type { Candle } from "../src/domain/candle.ts"
import { streamLagSeconds } from "../src/http/status.ts"
import { Backfill, StreamFetchFailed } from "../src/pipeline/backfill.ts"
import { CandleStore } from "../src/store/candle-store.ts"
import { SyncRepo } from "../src/store/sync-repo.ts"
import { quietBars } from "./support/bars.ts"
import { advanceUntil } from "./support/test-clock.ts"
import { startMassiveFake, type MassiveFake, type MassiveFakeOptions } from "./fakes/massive.ts"
import { createTestDatabase, databaseKinds, type DatabaseKind, type TestDatabase } from "./support/databases.ts"
import { hasSharedData, loadHistdata, noSharedDataReason } from "./support/shared-data.ts"

const apiKey = "test-key-3f9a1c77e2"
const from = Date.parse("2021-01-03T00:00:00Z")
const to = Date.parse("2021-05-22T00:00:00Z")
const minute = 60_000

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

/**
 * A fake vendor and a fresh database whose configuration points at it (paid plan: no per-minute wait; the vendor
 * publishes at once, so bars settle as soon as they close unless a test says otherwise).
 */
const setup = async (
  kind: DatabaseKind,
  fakeOptions: Omit<MassiveFakeOptions, "apiKeys"> & { apiKeys?: ReadonlyArray<string> },
  key = apiKey,
  vendor: Partial<MassiveSettings> = {},
  overrides: Partial<AppConfigShape> = {}
) => {
  const fake = startMassiveFake({ apiKeys: [apiKey], ...fakeOptions })
  const db = await createTestDatabase(kind, {
    ...overrides,
    massive: {
      ...AppConfig.fixed().massive,
      apiKey: Option.some(Redacted.make(key)),
      baseUrl: fake.baseUrl,
      plan: "paid",
      timeoutSeconds: 5,
      settleSeconds: 0,
      ...vendor
    }
  })
  cleanups.push(async () => {
    await db.close()
    await db.drop()
    await fake.stop()
  })
  return { fake, db }
}

const storedBars = (db: TestDatabase, symbol: string) =>
  db.run(CandleStore.use((s) => s.range({ symbol, timeframe: "M1", from, to, limit: 500_000 })))

const expectExactly = async (db: TestDatabase, symbol: string, source: ReadonlyArray<Candle>) => {
  const stored = await storedBars(db, symbol)
  expect(stored.length).toBe(source.length)
  // Every value, not a sample: one wrong bar is one too many.
  const mismatches = stored.filter((bar, i) => {
    const want = source[i]!
    return bar.ts !== want.ts || bar.open !== want.open || bar.high !== want.high || bar.low !== want.low || bar.close !== want.close || bar.volume !== want.volume
  })
  expect(mismatches.length).toBe(0)
}

/** Requests that reached the vendor's data (not faults, not refusals), as path + cursor. */
const servedPages = (fake: MassiveFake) =>
  fake.requests.filter((r) => r.status === 200 && r.fault === null).map((r) => `${new URL(r.url).pathname}?${r.cursor ?? ""}`)

describe.each(databaseKinds)("ingest pipeline on the %s database", (kind) => {
  test.skipIf(!hasSharedData)("backfilling the real EURUSD and XAUUSD files stores exactly the source's bars, with faults injected", async () => {
    const eurusd = loadHistdata("EURUSD")
    const xauusd = loadHistdata("XAUUSD")
    // Every seventh request fails once in one of the ways a real vendor or proxy does.
    const kinds = ["429", "502-html", "truncated-json", "429-retry-after"] as const
    const { fake, db } = await setup(kind, {
      bars: new Map([["C:EURUSD", eurusd], ["C:XAUUSD", xauusd]]),
      pageSize: 20_000,
      retryAfterSeconds: 1,
      faults: (index) => (index % 7 === 3 ? kinds[Math.floor(index / 7) % kinds.length]! : null)
    })
    for (const symbol of ["EURUSD", "XAUUSD"]) {
      const report = await db.run(Backfill.use((b) => b.run({ symbol, timeframe: "M1", from, to })))
      expect(report.retries).toBeGreaterThan(0)
      expect(report.rejected).toBe(0)
    }
    await expectExactly(db, "EURUSD", eurusd)
    await expectExactly(db, "XAUUSD", xauusd)
    const state = await db.run(SyncRepo.use((r) => r.state("EURUSD", "M1")))
    expect(Option.map(state, (s) => [s.watermark, s.barsStored])).toEqual(Option.some([to, eurusd.length]))
    // The watermark is in 2021: the stream trails the wall clock by years of open market (weekends are not lag).
    expect(streamLagSeconds(db.config, Option.getOrThrow(state), Date.now())!).toBeGreaterThan(((Date.now() - to) / 1000) * 0.6)
    // Derived timeframes were refreshed page by page: the last hour of data is in H1.
    const lastHour = await db.run(CandleStore.use((s) => s.lastBar("EURUSD", "H1")))
    expect(Option.map(lastHour, (b) => b.ts)).toEqual(Option.some(eurusd.at(-1)!.ts - (eurusd.at(-1)!.ts % 3_600_000)))
    expect(fake.requests.every((r) => r.authorizationHeader && !r.url.includes(apiKey))).toBe(true)
  }, 240_000)

  test.skipIf(!hasSharedData)("a backfill stopped mid-way and run again ends with exactly the source's bars and repeats no page", async () => {
    const eurusd = loadHistdata("EURUSD").filter((b) => b.ts < Date.parse("2021-03-01T00:00:00Z"))
    const { fake, db } = await setup(kind, { bars: new Map([["C:EURUSD", eurusd]]), pageSize: 5_000 })
    // Stop as Ctrl-C would, in the middle of the fifth page's processing.
    const stopped = await db.run(
      Backfill.use((b) =>
        b.run({ symbol: "EURUSD", timeframe: "M1", from, to, onProgress: (p) => (p.pages === 5 ? Effect.interrupt : Effect.void) })
      ).pipe(Effect.exit)
    )
    expect(stopped._tag).toBe("Failure")
    const firstRun = servedPages(fake)
    const partial = await storedBars(db, "EURUSD")
    expect(partial.length).toBeGreaterThan(0)
    expect(partial.length).toBeLessThan(eurusd.length)
    const report = await db.run(Backfill.use((b) => b.run({ symbol: "EURUSD", timeframe: "M1", from, to })))
    await expectExactly(db, "EURUSD", eurusd)
    const secondRun = servedPages(fake).slice(firstRun.length)
    expect(secondRun.filter((page) => firstRun.includes(page))).toEqual([])
    expect(report.unchanged).toBe(0)
  }, 120_000)

  test("a wrong key stops with Unauthorized after one request, and the key appears in no log line or error", async () => {
    const wrongKey = "wrong-key-77aa0c1d"
    const { fake, db } = await setup(kind, { bars: new Map([["C:EURUSD", []]]) }, wrongKey)
    const lines: Array<string> = []
    const capture = Logger.make(({ message, annotations }) => {
      lines.push(`${JSON.stringify(message)} ${JSON.stringify(HashMap.toEntries(annotations))}`)
    })
    const failure = await db.run(
      Backfill.use((b) => b.run({ symbol: "EURUSD", timeframe: "M1", from, to })).pipe(
        Effect.flip,
        Effect.provide(Logger.replace(Logger.defaultLogger, capture))
      )
    )
    expect(failure).toBeInstanceOf(StreamFetchFailed)
    const cause = (failure as StreamFetchFailed).cause
    expect(cause._tag).toBe("Unauthorized")
    expect(fake.requests.length).toBe(1)
    expect(JSON.stringify(failure)).not.toContain(wrongKey)
    expect(failure.message).not.toContain(wrongKey)
    expect(failure.message).toContain("EURUSD M1")
    expect(lines.join("\n")).not.toContain(wrongKey)
    const [logged] = await db.run(
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ status: string; http_status: number; error: string }>`
        SELECT status, http_status, error FROM fetch_log WHERE symbol = 'EURUSD'`)
    )
    expect(logged).toMatchObject({ status: "error", http_status: 401 })
    expect(logged!.error).not.toContain(wrongKey)
    const state = await db.run(SyncRepo.use((r) => r.state("EURUSD", "M1")))
    expect(Option.map(state, (s) => [s.watermark, s.consecutiveFailures])).toEqual(Option.some([null, 1]))
  })

  test("invalid bars land in rejected_candles with the rule that caught them; the rest are stored", async () => {
    const start = Date.parse("2021-01-04T10:00:00Z")
    const good = (i: number): Candle => ({ ts: start + i * minute, open: 1.2, high: 1.2003, low: 1.1998, close: 1.2001, volume: 5, vwap: null, trades: 5 })
    const bars: Array<Candle> = Array.from({ length: 60 }, (_, i) => good(i))
    bars[10] = { ...good(10), high: 1.1, low: 1.3 }
    bars[20] = { ...good(20), open: 0 }
    bars[30] = { ...good(30), ts: good(30).ts + 7_000 }
    bars[40] = { ...good(40), open: 1.2, high: 1.5, close: 1.45 }
    const { db } = await setup(kind, { bars: new Map([["C:EURUSD", bars]]) })
    const report = await db.run(Backfill.use((b) => b.run({ symbol: "EURUSD", timeframe: "M1", from: start, to: start + 60 * minute })))
    expect(report.rejected).toBe(4)
    const rejected = await db.run(
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ ts: Date; rule: string; raw: { open: number } }>`
        SELECT ts, rule, raw FROM rejected_candles WHERE symbol = 'EURUSD' ORDER BY ts`)
    )
    expect(rejected.map((r) => [r.ts.getTime(), r.rule])).toEqual([
      [bars[10]!.ts, "high_below_open_close"],
      [bars[20]!.ts, "non_positive_price"],
      [bars[30]!.ts, "misaligned_ts"],
      [bars[40]!.ts, "price_spike"]
    ])
    expect(rejected[1]!.raw.open).toBe(0)
    const stored = await storedBars(db, "EURUSD")
    expect(stored.length).toBe(56)
    expect(stored.some((b) => b.high === 1.5)).toBe(false)
  })

  test("a free-plan backfill of three symbols at once never draws a 429 from a vendor enforcing 5 requests a minute", async () => {
    const symbols = ["EURUSD", "GBPUSD", "USDJPY"] as const
    const start = Date.parse("2021-01-04T00:00:00Z")
    const end = Date.parse("2021-05-01T00:00:00Z")
    // A few bars a week: enough for every monthly request window to carry some.
    const sparse = Array.from({ length: 60 }, (_, i): Candle => {
      const ts = start + i * 2 * 24 * 3_600_000
      return { ts, open: 1.2, high: 1.2002, low: 1.1999, close: 1.2001, volume: 3, vwap: null, trades: null }
    })
    const startedAt = Date.parse("2021-06-01T00:00:00Z")
    // The vendor judges its window by the very clock the limiter waits on: the test's TestClock, read directly.
    let vendorClock: () => number = () => startedAt
    const { fake, db } = await setup(
      kind,
      {
        bars: new Map(symbols.map((s) => [`C:${s}`, sparse])),
        rateLimit: { requestsPerMinute: 5, sendRetryAfter: true },
        now: () => vendorClock()
      },
      apiKey,
      // Request timeouts far beyond the limiter's waits, so moving the clock never times a request out.
      { plan: "free", timeoutSeconds: 100_000 }
    )
    const program = Effect.gen(function* () {
      yield* TestClock.setTime(startedAt)
      const clock = yield* Effect.clock
      vendorClock = () => clock.unsafeCurrentTimeMillis()
      const backfill = yield* Backfill
      const work = yield* Effect.fork(
        Effect.forEach(symbols, (symbol) => backfill.run({ symbol, timeframe: "M1", from: start, to: end }), { concurrency: "unbounded" })
      )
      // Move the clock to the next wake-up only when some fiber waits on it; otherwise let real I/O run.
      yield* advanceUntil(() => work.unsafePoll() !== null, { limitMillis: 10 * 60_000, horizonMillis: 120_000 })
      return yield* Fiber.join(work)
    })
    const reports = await db.run(Effect.provide(program, TestContext.TestContext))
    const inRange = sparse.filter((b) => b.ts < end).length
    expect(fake.requests.filter((r) => r.status === 429)).toEqual([])
    expect(reports.map((r) => [r.symbol, r.fetched, r.retries])).toEqual(symbols.map((s) => [s, inRange, 0]))
    // 3 symbols × 4 monthly windows = 12 requests: at 5 a minute that takes more than two minutes of vendor time.
    expect(fake.requests.length).toBe(12)
    expect(vendorClock() - startedAt).toBeGreaterThanOrEqual(120_000)
  })

  test("incremental sync goes from the watermark to the last closed bar, and is a no-op without a request when up to date", async () => {
    const start = Date.parse("2021-01-04T10:00:00Z")
    const bars = quietBars(start, 180, 3)
    const { fake, db } = await setup(kind, { bars: new Map([["C:EURUSD", bars]]) })
    const program = Effect.gen(function* () {
      const backfill = yield* Backfill
      yield* TestClock.setTime(start + 60 * minute + 30_000)
      const first = yield* backfill.run({ symbol: "EURUSD", timeframe: "M1", from: start })
      const again = yield* backfill.sync({ symbol: "EURUSD", timeframe: "M1" })
      const requestsWhenUpToDate = fake.requests.length
      yield* TestClock.adjust("1 hour")
      const later = yield* backfill.sync({ symbol: "EURUSD", timeframe: "M1" })
      return { first, again, requestsWhenUpToDate, later }
    })
    // TestClock stands in for the wall clock only; the fake's HTTP is real.
    const result = await db.run(Effect.provide(program, TestContext.TestContext))
    expect(result.first).toMatchObject({ fetched: 60, stored: 60, upToDate: false })
    expect(result.again).toMatchObject({ upToDate: true, requests: 0 })
    expect(result.requestsWhenUpToDate).toBe(1)
    expect(result.later).toMatchObject({ fetched: 60, stored: 60, requests: 1, from: start + 60 * minute, to: start + 120 * minute })
    expect((await storedBars(db, "EURUSD")).length).toBe(120)
  })
})

describe.each(databaseKinds)("the watermark never jumps, on the %s database", (kind) => {
  const day = 24 * 60 * minute
  const monday = Date.parse("2021-01-04T00:00:00Z")
  /** Two weeks and a bit of minute bars, every minute (flow, not market hours). */
  const fortnight = quietBars(monday, 16 * 24 * 60)
  const watermarkOf = SyncRepo.use((r) => r.state("EURUSD", "M1")).pipe(Effect.map((s) => Option.getOrNull(Option.flatMap(s, (x) => Option.fromNullable(x.watermark)))))

  test("a backfill --from past the watermark leaves it there, and the next sync brings the week in between", async () => {
    const { db } = await setup(kind, { bars: new Map([["C:EURUSD", fortnight]]) })
    const now = monday + 16 * day + 30_000
    const program = Effect.gen(function* () {
      yield* TestClock.setTime(now)
      const backfill = yield* Backfill
      yield* backfill.run({ symbol: "EURUSD", timeframe: "M1", from: monday, to: monday + 4 * day })
      const first = yield* watermarkOf
      // A week after the watermark: stored, but the week before it was never asked.
      const late = yield* backfill.run({ symbol: "EURUSD", timeframe: "M1", from: monday + 11 * day })
      const afterLate = yield* watermarkOf
      const sync = yield* backfill.sync({ symbol: "EURUSD", timeframe: "M1" })
      return { first, late, afterLate, sync, last: yield* watermarkOf }
    })
    const result = await db.run(Effect.provide(program, TestContext.TestContext))
    expect(result.first).toBe(monday + 4 * day)
    expect(result.late.stored).toBe(5 * 24 * 60)
    expect(result.afterLate).toBe(monday + 4 * day)
    expect(result.sync).toMatchObject({ from: monday + 4 * day, stored: 7 * 24 * 60 })
    expect(result.last).toBe(monday + 16 * day)
    const stored = await db.run(CandleStore.use((s) => s.range({ symbol: "EURUSD", timeframe: "M1", from: monday, to: now, limit: 100_000 })))
    expect(stored.map((b) => b.ts)).toEqual(fortnight.map((b) => b.ts))
  })

  test("an empty page that carries a next_url moves nothing: stopped right after it, the run again gets every bar", async () => {
    const bars = quietBars(monday, 3 * 60)
    // The first answer is an empty page pointing on, as the vendor sometimes sends.
    const { db } = await setup(kind, { bars: new Map([["C:EURUSD", bars]]), faults: (index) => (index === 0 ? "empty-next" : null) })
    const program = Effect.gen(function* () {
      yield* TestClock.setTime(monday + 3 * 60 * minute + 30_000)
      const backfill = yield* Backfill
      // Stopped as a crash would, once the empty page is written.
      const stopped = yield* Effect.exit(
        backfill.run({ symbol: "EURUSD", timeframe: "M1", from: monday, onProgress: (p) => (p.pages === 1 ? Effect.interrupt : Effect.void) })
      )
      const afterEmpty = yield* watermarkOf
      const again = yield* backfill.run({ symbol: "EURUSD", timeframe: "M1", from: monday })
      return { stopped: stopped._tag, afterEmpty, again, last: yield* watermarkOf }
    })
    const result = await db.run(Effect.provide(program, TestContext.TestContext))
    expect(result.stopped).toBe("Failure")
    expect(result.afterEmpty).toBeNull()
    expect(result.again).toMatchObject({ fetched: 180, stored: 180 })
    expect(result.last).toBe(monday + 3 * 60 * minute)
    expect((await storedBars(db, "EURUSD")).length).toBe(180)
  })
})

if (!hasSharedData) console.log(`real-data pipeline tests ${noSharedDataReason}`)

