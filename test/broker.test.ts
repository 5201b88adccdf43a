import { SingleRunner } from "@effect/cluster"
import { SqlClient } from "@effect/sql"
import { afterEach, describe, expect, test } from "bun:test"
import { join } from "node:path"
import { Effect, Fiber, Layer, Logger, LogLevel, Option, Queue, Redacted, TestClock, TestContext } from "effect"
import { AppConfig, type AppConfigShape } from "../src/config.ts"
import type { Candle } from "../src/domain/candle.ts"
import { Broker } from "../src/pipeline/broker.ts"
import { BrokerRepo } from "../src/store/broker-repo.ts"
import { CandleStore } from "../src/store/candle-store.ts"
import { DatabaseInfo } from "../src/store/database.ts"
import { runBrokerLoop } from "../src/supervisor/broker-loop.ts"
import { StreamEvents, type StreamEvent } from "../src/supervisor/events.ts"
import { SupervisorLive } from "../src/supervisor/supervisor.ts"
import { startMetaApiFake, type MetaApiFake, type MetaApiFakeOptions } from "./fakes/metaapi.ts"
import { createTestDatabase, databaseKinds, type DatabaseKind, type TestDatabase } from "./support/databases.ts"
import { hasSharedData, loadHistdata, noSharedDataReason } from "./support/shared-data.ts"
import { advanceUntil, untilAsleepAt as untilAsleepAtShared } from "./support/test-clock.ts"

const token = "mtapi-secret-Q7v2kLx9.broker"
const account = "demo-acct-01"
const minute = 60_000
const at = (iso: string) => Date.parse(iso)
/** What the fake broker adds to the vendor's prices, and its spread (ask − bid): both in price units. */
const offset = 0.35
const spread = 0.2

if (!hasSharedData) console.log(noSharedDataReason)

/** Real gold bars (HistData, UTC) from Tuesday 10:00 to Thursday 02:00; complete but for the daily 22:00 UTC pause. */
const realGold: ReadonlyArray<Candle> = hasSharedData
  ? loadHistdata("XAUUSD").filter((b) => b.ts >= at("2021-03-02T10:00:00Z") && b.ts < at("2021-03-04T02:00:00Z"))
  : []
/** Minutes the broker lacks (only the vendor has them) and minutes the vendor lacks (only the broker has them). */
const brokerMissing = ["2021-03-03T12:07:00.000Z", "2021-03-03T12:31:00.000Z", "2021-03-03T12:32:00.000Z"]
const vendorMissing = ["2021-03-03T12:45:00.000Z", "2021-03-03T12:46:00.000Z"]
const vendorBars = realGold.filter((b) => !vendorMissing.includes(new Date(b.ts).toISOString()))
/** MT4 candles of a broker quoting `offset` above the vendor. */
const brokerBars = realGold
  .filter((b) => !brokerMissing.includes(new Date(b.ts).toISOString()))
  .map((b) => ({ ...b, open: b.open + offset, high: b.high + offset, low: b.low + offset, close: b.close + offset }))

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

const brokerSettings = (fake: MetaApiFake, overrides: Partial<AppConfigShape["broker"]> = {}): AppConfigShape["broker"] => ({
  ...AppConfig.fixed().broker,
  token: Option.some(Redacted.make(token)),
  accounts: [account],
  baseUrl: fake.baseUrl,
  marketDataUrl: fake.baseUrl,
  symbols: Option.some({ XAUUSD: "XAUUSD.a" }),
  // Far beyond every wait the clock driver jumps over, so moving the clock never times out a request.
  timeoutSeconds: 100_000,
  ...overrides
})

/** A fresh database with the vendor's gold bars stored, and the fake broker; its clock is the test's, once set. */
const setup = async (
  kind: DatabaseKind,
  fakeOptions: Partial<MetaApiFakeOptions> = {},
  overrides: Partial<AppConfigShape> = {},
  brokerOverrides: Partial<AppConfigShape["broker"]> = {}
) => {
  const clock = { now: () => Date.now() }
  const fake = startMetaApiFake({
    accounts: new Map([[account, new Map([["XAUUSD.a", brokerBars]])]]),
    tokens: [token],
    spread,
    now: () => clock.now(),
    ...fakeOptions
  })
  // The stored vendor bars are final unless a test says otherwise: no settle time, no plan delay.
  const settledAtOnce = { ...AppConfig.fixed().massive, settleSeconds: 0, delayMinutes: Option.some(0) }
  const db = await createTestDatabase(kind, { massive: settledAtOnce, ...overrides, broker: brokerSettings(fake, brokerOverrides) })
  cleanups.push(async () => {
    await db.close()
    await db.drop()
    await fake.stop()
  })
  await db.run(CandleStore.use((store) => store.upsertPage({ symbol: "XAUUSD", timeframe: "M1", source: "import", candles: vendorBars })))
  return { fake, db, clock }
}

type Services = Parameters<TestDatabase["run"]>[0] extends Effect.Effect<any, any, infer R> ? R : never

/** Runs `script` on the TestClock from `start`, with the fake reading the same clock and the events collected. */
const onTestClock = <A>(db: TestDatabase, clock: { now: () => number }, start: number, script: (events: Array<StreamEvent>) => Effect.Effect<A, unknown, any>) =>
  db.run(
    Effect.gen(function* () {
      yield* TestClock.setTime(start)
      const testClock = yield* Effect.clock
      clock.now = () => testClock.unsafeCurrentTimeMillis()
      const events: Array<StreamEvent> = []
      const subscription = yield* (yield* StreamEvents).subscribe
      yield* Effect.fork(Effect.forever(Effect.map(Queue.take(subscription), (e) => void events.push(e))))
      return yield* script(events)
    }).pipe(Effect.scoped, Effect.provide(TestContext.TestContext)) as Effect.Effect<A, unknown, Services>
  )

/** The cluster's own timers at a minute, so the TestClock's steps are few; messages still arrive within one. */
const quietCluster = { entityMessagePollInterval: "1 minute", refreshAssignmentsInterval: "1 minute" } as const

/** Every log line, as logfmt. */
const captureLogs = () => {
  const lines: Array<string> = []
  return { lines, layer: Logger.replace(Logger.defaultLogger, Logger.make((options) => void lines.push(Logger.logfmtLogger.log(options)))) }
}

const untilAsleepAt = (wakeAt: number) => untilAsleepAtShared(wakeAt, "nothing")

const stream = { account, symbol: "XAUUSD", brokerSymbol: "XAUUSD.a" } as const
const brokerStatuses = (events: ReadonlyArray<StreamEvent>) => events.flatMap((e) => (e.type === "broker-state" ? [e.status] : []))
const stateOf = BrokerRepo.use((repo) => repo.state(account, "XAUUSD")).pipe(Effect.map(Option.getOrThrow))
const priceRequests = (fake: MetaApiFake) => fake.requests.filter((r) => r.kind === "price").length

describe.each(databaseKinds)("broker price sync on the %s database", (kind) => {
  test.skipIf(!hasSharedData)("an hour of real gold bars: the comparison reports the broker's offset, the samples and the one-sided minutes", async () => {
    const { db, clock } = await setup(kind)
    const report = await onTestClock(db, clock, at("2021-03-03T13:00:20Z"), () => Broker.use((b) => b.compare({ account, symbol: "xauusd", windowMinutes: 60 })))
    expect(report).toMatchObject({
      account,
      symbol: "XAUUSD",
      broker_symbol: "XAUUSD.a",
      window: { from: "2021-03-03T12:00:00.000Z", to: "2021-03-03T13:00:00.000Z", minutes: 60 },
      status: "ok",
      pip_size: 0.01,
      samples: 55,
      vendor_minutes: 58,
      broker_minutes: 57,
      vendor_only: 3,
      broker_only: 2,
      vendor_only_minutes: brokerMissing,
      broker_only_minutes: vendorMissing
    })
    expect(report.one_sided_share).toBeCloseTo(5 / 60, 12)
    expect(report.diff!.mean).toBeCloseTo(offset, 9)
    expect(report.diff!.max_abs).toBeCloseTo(offset, 9)
    expect(report.diff!.std).toBeLessThan(1e-9)
    expect(report.diff_pips!.mean).toBeCloseTo(35, 6)
    const lastVendor = vendorBars.at(-1)!
    const brokerNow = brokerBars.find((b) => b.ts === at("2021-03-03T13:00:00Z"))!
    expect(report.latest).toEqual({
      vendor_close: lastVendor.close,
      vendor_ts: new Date(lastVendor.ts).toISOString(),
      bid: brokerNow.close,
      ask: brokerNow.close + spread,
      // 13:00:20 UTC on the broker's GMT+2 server clock (the US is still on winter time).
      broker_time: "2021-03-03 15:00:20.000"
    })
  })

  test.skipIf(!hasSharedData)("the hourly comparison covers only minutes the vendor has settled: the newest, not yet synced, are not broker-only", async () => {
    // A free plan: its bars are delayed 15 minutes, and settle 2 minutes after that.
    const { db, clock } = await setup(kind, {}, { massive: { ...AppConfig.fixed().massive, plan: "free" } })
    // The vendor's last two minutes are not synced yet (as at 13:00:20 on a plan without delay).
    await db.run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DELETE FROM candles WHERE symbol = 'XAUUSD' AND ts >= ${new Date(at("2021-03-03T12:58:00Z"))}`))
    const entry = await onTestClock(db, clock, at("2021-03-03T13:00:20Z"), () => Broker.use((b) => b.compareAndRecord({ account, symbol: "XAUUSD" })))
    expect(entry.window).toEqual({ from: "2021-03-03T11:43:00.000Z", to: "2021-03-03T12:43:00.000Z", minutes: 60 })
    // Only the broker's own three missing minutes are one-sided; nothing after the settle line counts.
    expect([entry.vendor_only, entry.broker_only]).toEqual([3, 0])
    expect(entry.status).toBe("ok")
  })

  test.skipIf(!hasSharedData)("a day's window is read from the broker in pages of 1,000, and the daily pause is on neither side", async () => {
    const { db, clock, fake } = await setup(kind)
    const end = at("2021-03-04T00:00:00Z")
    const report = await onTestClock(db, clock, at("2021-03-04T01:30:10Z"), () => Broker.use((b) => b.compare({ account, symbol: "XAUUSD", windowMinutes: 1440, end })))
    const inWindow = realGold.filter((b) => b.ts >= end - 1440 * minute && b.ts < end).length
    expect(report.samples).toBe(inWindow - brokerMissing.length - vendorMissing.length)
    expect([report.vendor_only, report.broker_only]).toEqual([3, 2])
    // 22:00–23:00 UTC is gold's daily pause: no bar on either side, so no one-sided minute there.
    expect(report.vendor_only_minutes.concat(report.broker_only_minutes).some((m) => m.startsWith("2021-03-03T22:"))).toBe(false)
    expect(report.diff!.mean).toBeCloseTo(offset, 9)
    expect(fake.requests.filter((r) => r.kind === "candles").map((r) => r.limit)).toEqual(["1000", "1000"])
  })

  test.skipIf(!hasSharedData)("the quote loop samples every 5 s and goes live; the offset of its quotes is recommended", async () => {
    const { db, clock, fake } = await setup(kind)
    const start = at("2021-03-03T13:00:00Z")
    const result = await onTestClock(db, clock, start, (events) =>
      Effect.gen(function* () {
        const loop = yield* Effect.fork(runBrokerLoop(stream, "test-runner"))
        // Ten minutes of samples: the 121st is asked at 13:10:00, stored, and the loop sleeps until 13:10:05.
        yield* advanceUntil(() => priceRequests(fake) >= 121, { limitMillis: 11 * minute })
        yield* untilAsleepAt(start + 10 * minute + 5_000)
        yield* Fiber.interrupt(loop)
        const quotes = yield* Broker.use((b) => b.quotes({ account, symbol: "XAUUSD", from: start, to: start + 11 * minute }))
        const measured = yield* Broker.use((b) => b.offset({ account, symbol: "XAUUSD" }))
        return { events, quotes, measured, state: yield* stateOf }
      })
    )
    expect(brokerStatuses(result.events).slice(0, 2)).toEqual(["starting", "live"])
    expect(result.quotes).toHaveLength(121)
    expect(result.quotes.slice(0, 2).map((q) => q.ts)).toEqual(["2021-03-03T13:00:00.000Z", "2021-03-03T13:00:05.000Z"])
    const first = brokerBars.find((b) => b.ts === start)!
    expect(result.quotes[0]).toEqual({ ts: "2021-03-03T13:00:00.000Z", bid: first.close, ask: first.close + spread, broker_time: "2021-03-03 15:00:00.000" })
    // Broker mid = vendor close + offset + half the spread, every minute.
    expect(result.measured).toMatchObject({ quotes: 121, matched: 121, threshold_pips: 0.5, pip_size: 0.01, from: "2021-03-03T13:00:00.000Z", to: "2021-03-03T13:10:00.000Z" })
    expect(result.measured.mean!).toBeCloseTo(offset + spread / 2, 9)
    expect(result.measured.mean_pips!).toBeCloseTo(45, 6)
    expect(result.measured.std!).toBeLessThan(1e-9)
    expect(result.measured.recommendation.use_offset).toBe(true)
    expect(result.measured.recommendation.offset!).toBeCloseTo(offset + spread / 2, 9)
    expect(result.state).toMatchObject({ status: "live", owner: "test-runner", lastError: null, consecutiveFailures: 0 })
    expect(result.state.lastQuoteAt).toBeGreaterThanOrEqual(start + 10 * minute)
  })

  test.skipIf(!hasSharedData)("a bad token marks the broker stream failed after one request, asks again only hourly, and never logs the token", async () => {
    const { db, clock, fake } = await setup(kind, { tokens: ["the-right-token"] })
    const logs = captureLogs()
    const result = await onTestClock(db, clock, at("2021-03-03T13:00:00Z"), (events) =>
      Effect.gen(function* () {
        const loop = yield* Effect.fork(runBrokerLoop(stream, "test-runner"))
        yield* advanceUntil(() => brokerStatuses(events).includes("failed"), { limitMillis: minute })
        // Most of an hour passes: a failed stream neither spins nor polls.
        yield* TestClock.adjust("59 minutes")
        const requestsWithinTheHour = fake.requests.length
        const failed = yield* stateOf
        yield* TestClock.adjust("1 minute")
        yield* advanceUntil(() => fake.requests.length >= 2, { limitMillis: minute })
        yield* Fiber.interrupt(loop)
        return { requestsWithinTheHour, failed, requests: fake.requests.length }
      }).pipe(Effect.provide(logs.layer))
    )
    expect(result.requestsWithinTheHour).toBe(1)
    expect(result.requests).toBe(2)
    expect(result.failed.status).toBe("failed")
    expect(result.failed.lastError).toContain("UnauthorizedError")
    expect(fake.requests[0]!.authToken).toBe(token)
    const logged = logs.lines.join("\n")
    // Logged once, though asked twice with the same answer.
    expect(logs.lines.filter((line) => line.includes("level=ERROR") && line.includes("failed:"))).toHaveLength(1)
    expect(logged).toContain("UnauthorizedError")
    expect(logged).not.toContain(token)
    expect(result.failed.lastError).not.toContain(token)
  })

  test.skipIf(!hasSharedData)("a broker failing again and again makes the stream degraded with backoff, then it is live again", async () => {
    // Eight 500s: the client's own tries run out once, the loop backs off and restarts, then MetaApi answers.
    const { db, clock } = await setup(kind, { faults: (index) => (index < 8 ? "500" : null) })
    const logs = captureLogs()
    const result = await onTestClock(db, clock, at("2021-03-03T13:00:00Z"), (events) =>
      Effect.gen(function* () {
        const loop = yield* Effect.fork(runBrokerLoop(stream, "test-runner"))
        yield* advanceUntil(() => brokerStatuses(events).at(-1) === "live", { limitMillis: 30 * minute })
        yield* Fiber.interrupt(loop)
        return { events, state: yield* stateOf }
      }).pipe(Effect.provide(logs.layer))
    )
    // Seven client retries, then the loop's own restart, each logged with its delay.
    expect(logs.lines.filter((line) => line.includes("level=WARN") && line.includes("retrying in"))).toHaveLength(7)
    expect(logs.lines.filter((line) => line.includes("retries in") && line.includes("after failure 1"))).toHaveLength(1)
    expect(brokerStatuses(result.events)).toEqual(["starting", "degraded", "live"])
    const degraded = result.events.find((e) => e.type === "broker-state" && e.status === "degraded")
    expect(degraded).toMatchObject({ stream: `${account}:XAUUSD`, error: expect.stringContaining("InternalError") })
    expect(degraded?.type === "broker-state" ? degraded.delayMillis : 0).toBeWithin(800, 1201)
    expect(result.state).toMatchObject({ status: "live", lastError: null, consecutiveFailures: 0 })
  })

  test.skipIf(!hasSharedData)("the sampling loop deletes quotes older than the retention, on every database flavour", async () => {
    const { db, clock, fake } = await setup(kind)
    const now = at("2021-03-03T13:00:00Z")
    const day = 86_400_000
    const result = await onTestClock(db, clock, now, () =>
      Effect.gen(function* () {
        const repo = yield* BrokerRepo
        for (const age of [31, 29]) yield* repo.insertQuote({ ...stream, ts: now - age * day, bid: 1700, ask: 1700.2, brokerTime: null })
        const loop = yield* Effect.fork(runBrokerLoop(stream, "test-runner"))
        yield* advanceUntil(() => priceRequests(fake) >= 1, { limitMillis: minute })
        yield* untilAsleepAt(now + 5_000)
        yield* Fiber.interrupt(loop)
        return yield* repo.quotes(account, "XAUUSD", 0, now + day)
      })
    )
    expect(result.map((q) => Math.round((now - q.ts) / day))).toEqual([29, 0])
  })

  test.skipIf(!hasSharedData)("a window the broker answers with nothing is stored as no_broker_data, never as a zero difference", async () => {
    const { db, clock } = await setup(kind)
    const result = await onTestClock(db, clock, at("2021-03-04T01:30:00Z"), () =>
      Broker.use((b) =>
        Effect.gen(function* () {
          // Tuesday 08:00–09:00: before the broker's (and the vendor's) first bar here.
          const empty = yield* b.compareAndRecord({ account, symbol: "XAUUSD", end: at("2021-03-02T09:00:00Z") })
          const ok = yield* b.compareAndRecord({ account, symbol: "XAUUSD", end: at("2021-03-03T13:00:00Z") })
          const history = yield* b.history({ account, symbol: "XAUUSD", from: 0, to: at("2021-03-05T00:00:00Z") })
          return { empty, ok, history }
        })
      )
    )
    expect(result.empty).toMatchObject({ status: "no_broker_data", samples: 0, broker_minutes: 0, diff: null, diff_pips: null, error: null })
    expect(result.ok).toMatchObject({ status: "ok", samples: 55, vendor_only: 3, broker_only: 2, window: { from: "2021-03-03T12:00:00.000Z", to: "2021-03-03T13:00:00.000Z", minutes: 60 } })
    expect(result.ok.diff!.mean).toBeCloseTo(offset, 9)
    expect(result.history.map((h) => h.status)).toEqual(["no_broker_data", "ok"])
    expect(result.history[1]!.compared_at).toBe("2021-03-04T01:30:00.000Z")
  })

  test.skipIf(!hasSharedData)("the scheduled comparison runs through ClusterCron on the TestClock: one row per run, an outage recorded, then resumed", async () => {
    let brokerDown = false
    const { db, clock, fake } = await setup(
      kind,
      { faults: (_, url) => (brokerDown && url.pathname.endsWith("/candles") ? "500" : null) },
      { streams: Option.some([]) },
      // Every ten minutes over ten-minute windows, to keep the test's clock short; quotes hourly, so the steps are the cron's.
      { compareCron: "0 */10 * * * *", compareWindowMinutes: 10, quoteIntervalSeconds: 3600 }
    )
    const logs = captureLogs()
    const rows = await onTestClock(db, clock, at("2021-03-03T11:59:30Z"), (events) =>
      Effect.gen(function* () {
        const runs = () => events.filter((e) => e.type === "broker-compare").length
        // Built in the background: the cluster starts on the TestClock, which only the driver below moves.
        yield* Effect.fork(Layer.build(SupervisorLive.pipe(Layer.provide(SingleRunner.layer({ runnerStorage: "memory", shardingConfig: quietCluster })))))
        yield* advanceUntil(() => runs() >= 1, { limitMillis: 5 * minute })
        brokerDown = true
        yield* advanceUntil(() => runs() >= 2, { limitMillis: 15 * minute })
        brokerDown = false
        yield* advanceUntil(() => runs() >= 3, { limitMillis: 15 * minute })
        const info = yield* DatabaseInfo
        const sql = yield* SqlClient.SqlClient
        // Where TimescaleDB runs, old quotes also go by its retention policy, set from BROKER_QUOTE_RETENTION_DAYS.
        const policies =
          info.flavour === "timescale"
            ? yield* sql<{ drop_after: string }>`SELECT config->>'drop_after' AS drop_after FROM timescaledb_information.jobs
                WHERE proc_name = 'policy_retention' AND hypertable_name = 'broker_quotes'`
            : [{ drop_after: "30 days" }]
        expect(policies.map((p) => p.drop_after)).toEqual(["30 days"])
        return yield* Broker.use((b) => b.history({ account, symbol: "XAUUSD", from: 0, to: at("2021-03-04T00:00:00Z") }))
      }).pipe(Effect.provide(logs.layer))
    )
    expect(logs.lines.join("\n")).not.toContain(token)
    expect(logs.lines.join("\n")).not.toContain("could not")
    expect(rows.map((r) => [r.window.from, r.window.to, r.status])).toEqual([
      ["2021-03-03T11:50:00.000Z", "2021-03-03T12:00:00.000Z", "ok"],
      ["2021-03-03T12:00:00.000Z", "2021-03-03T12:10:00.000Z", "error"],
      ["2021-03-03T12:10:00.000Z", "2021-03-03T12:20:00.000Z", "ok"]
    ])
    expect([rows[0]!.samples, rows[2]!.samples]).toEqual([10, 10])
    expect([rows[1]!.samples, rows[1]!.diff]).toEqual([0, null])
    expect(rows[1]!.error).toContain("HTTP 500")
    expect(rows[1]!.error).not.toContain(token)
    expect(rows[2]!.diff!.mean).toBeCloseTo(offset, 9)
    // Each run within the cluster's message poll (a minute) of its tick; the failed one after the client's retries ran out.
    const ticks = ["2021-03-03T12:00:00Z", "2021-03-03T12:10:00Z", "2021-03-03T12:20:00Z"].map(at)
    rows.forEach((row, i) => expect(Date.parse(row.compared_at)).toBeWithin(ticks[i]!, ticks[i]! + (i === 1 ? 5 : 1) * minute + 1))
    expect(fake.requests.filter((r) => r.status === 500).length).toBe(8)
  })

  test("without METAAPI_TOKEN broker features are off: one clear line, no request, and stored streams say off", async () => {
    const db = await createTestDatabase(kind, { streams: Option.some([]) })
    cleanups.push(async () => {
      await db.close()
      await db.drop()
    })
    const logs = captureLogs()
    const result = await db.run(
      Effect.gen(function* () {
        // A stream left from a run that had a token.
        yield* BrokerRepo.use((repo) => repo.setStatus(stream, "live", { owner: "earlier" }))
        yield* Effect.scoped(Layer.build(SupervisorLive.pipe(Layer.provide(SingleRunner.layer({ runnerStorage: "memory" })))))
        const broker = yield* Broker
        const compared = yield* Effect.flip(broker.compare({ account, symbol: "XAUUSD" }))
        return { states: yield* broker.states(), compared }
      }).pipe(Effect.provide(logs.layer), Effect.provide(Logger.minimumLogLevel(LogLevel.Info)))
    )
    expect(logs.lines.filter((line) => line.includes("broker features off: METAAPI_TOKEN is not set"))).toHaveLength(1)
    expect(result.compared.message).toBe("broker features off: METAAPI_TOKEN is not set")
    expect(result.states.off).toBe("METAAPI_TOKEN is not set")
    expect(result.states.streams.map((s) => [s.account, s.symbol, s.status, s.lastError])).toEqual([
      [account, "XAUUSD", "off", "broker features off: METAAPI_TOKEN is not set"]
    ])
    expect(await storedQuotes(db)).toBe(0)
  })
})

const storedQuotes = (db: TestDatabase) =>
  db.run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`SELECT count(*)::int AS n FROM broker_quotes`).pipe(Effect.map((rows) => rows[0]?.n ?? -1)))

/** Runs the command line in a child process (the fake answers from this one, so never spawnSync). */
const runCli = async (args: ReadonlyArray<string>, extra: Record<string, string>) => {
  const env: Record<string, string | undefined> = { ...process.env, LOG_LEVEL: "info", ...extra }
  delete env.DATABASE_URL
  for (const name of ["METAAPI_TOKEN", "METAAPI_ACCOUNT_ID", "BROKER_SYMBOLS"]) if (!(name in extra)) delete env[name]
  const child = Bun.spawn([process.execPath, "src/main.ts", ...args], { cwd: join(import.meta.dir, ".."), env, stdout: "pipe", stderr: "pipe" })
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
  return { code, stdout, stderr, last: JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, unknown> }
}

describe("broker compare on the command line", () => {
  test.skipIf(!hasSharedData)("prints the table and ends with the JSON line; bad input and missing MetaApi settings are one clear line each", async () => {
    const { db, fake } = await setup("embedded")
    await db.close()
    const settings = {
      DATA_DIR: db.config.dataDir,
      METAAPI_TOKEN: token,
      METAAPI_ACCOUNT_ID: account,
      METAAPI_BASE_URL: fake.baseUrl,
      METAAPI_MARKET_DATA_URL: fake.baseUrl,
      BROKER_SYMBOLS: "XAUUSD=XAUUSD.a"
    }
    const ok = await runCli(["broker", "compare", "--symbol", "XAUUSD", "--account", account, "--end", "2021-03-03T13:00:00Z"], settings)
    expect(ok.code).toBe(0)
    expect(ok.stdout).toContain("broker − vendor close")
    expect(ok.last).toMatchObject({
      command: "broker compare",
      status: "ok",
      comparison: "ok",
      account,
      symbol: "XAUUSD",
      samples: 55,
      vendor_only: 3,
      broker_only: 2,
      window: { from: "2021-03-03T12:00:00.000Z", to: "2021-03-03T13:00:00.000Z", minutes: 60 }
    })
    expect((ok.last.diff_pips as { mean: number }).mean).toBeCloseTo(35, 6)
    expect(ok.stdout + ok.stderr).not.toContain(token)

    const unknown = await runCli(["broker", "compare", "--symbol", "EURUSD"], settings)
    expect(unknown.code).toBe(1)
    expect(unknown.stderr.trim()).toBe("candlekeep: no broker symbol for EURUSD: broker symbols are configured for XAUUSD (BROKER_SYMBOLS)")
    expect(unknown.last).toMatchObject({ command: "broker compare", status: "failed" })

    const off = await runCli(["broker", "compare", "--symbol", "XAUUSD"], { DATA_DIR: db.config.dataDir })
    expect(off.code).toBe(1)
    expect(off.stderr.trim()).toBe("candlekeep: broker features off: METAAPI_TOKEN is not set (see .env.example)")
    expect(off.last).toEqual({ command: "broker compare", status: "failed", symbol: "XAUUSD", error: "broker features off: METAAPI_TOKEN is not set (see .env.example)" })
  })
})
