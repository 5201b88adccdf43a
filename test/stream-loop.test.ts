import { afterEach, describe, expect, test } from "bun:test"
import { Clock, Effect, Fiber, Logger, Option, Queue, Redacted, TestClock, TestContext } from "effect"
import { AppConfig, type AppConfigShape, type MassiveSettings } from "../src/config.ts"
import { quietBars } from "./support/bars.ts"
import { CandleStore } from "../src/store/candle-store.ts"
import { SyncRepo } from "../src/store/sync-repo.ts"
import { StreamEvents, type StreamEvent } from "../src/supervisor/events.ts"
import { runStreamLoop, sendToStream } from "../src/supervisor/stream-loop.ts"
import { startMassiveFake, type MassiveFakeOptions } from "./fakes/massive.ts"
import { createTestDatabase, databaseKinds, type DatabaseKind, type TestDatabase } from "./support/databases.ts"
import { streamDelayMinutes, streamLagSeconds } from "../src/http/status.ts"
import { advanceUntil, untilAsleepAt as untilAsleepAtShared } from "./support/test-clock.ts"

const apiKey = "loop-key-5d1e"
const minute = 60_000
// Monday 2021-01-04 10:00:30 UTC: half a minute into a bar.
const t0 = Date.parse("2021-01-04T10:00:30Z")
const dayStart = Date.parse("2021-01-04T00:00:00Z")

/** A quiet minute-bar series from midnight until well after the test's clock will go. */
const bars = quietBars(dayStart, 14 * 60)

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

/** The vendor's "now": the loop's TestClock once `withLoop` has set it. */
let vendorNow: () => number = () => Date.now()

const setup = async (kind: DatabaseKind, fakeOptions: Partial<MassiveFakeOptions> = {}, overrides: Partial<AppConfigShape> = {}, massive: Partial<MassiveSettings> = {}) => {
  const apiKeys = [apiKey]
  const fake = startMassiveFake({ bars: new Map([["C:EURUSD", bars]]), now: () => vendorNow(), ...fakeOptions, apiKeys: fakeOptions.apiKeys ?? apiKeys })
  const db = await createTestDatabase(kind, {
    backfillFrom: Option.some(dayStart),
    ...overrides,
    massive: {
      ...AppConfig.fixed().massive,
      // The vendor publishes at once: a bar is settled as soon as it closes (tests of late bars say otherwise).
      settleSeconds: 0,
      apiKey: Option.some(Redacted.make(apiKey)),
      baseUrl: fake.baseUrl,
      plan: "paid",
      requestsPerMinute: Option.none(),
      maxConcurrency: 2,
      // Far beyond every wait the clock driver jumps over, so moving the clock never times out a request.
      timeoutSeconds: 100_000,
      ...massive
    }
  })
  cleanups.push(async () => {
    await db.close()
    await db.drop()
    await fake.stop()
  })
  return { fake, db }
}

const stream = { symbol: "EURUSD", timeframe: "M1" } as const

/** Runs the stream's loop on the TestClock from t0, collects its events, and hands control to `script`. */
const withLoop = <A>(script: (events: Array<StreamEvent>) => Effect.Effect<A, unknown, any>, start = t0) =>
  Effect.gen(function* () {
    yield* TestClock.setTime(start)
    const clock = yield* Effect.clock
    vendorNow = () => clock.unsafeCurrentTimeMillis()
    const events: Array<StreamEvent> = []
    const hub = yield* StreamEvents
    const subscription = yield* hub.subscribe
    yield* Effect.fork(Effect.forever(Effect.map(Queue.take(subscription), (e) => void events.push(e))))
    const loop = yield* Effect.fork(runStreamLoop(stream, "test-runner"))
    const result = yield* script(events)
    yield* Fiber.interrupt(loop)
    return result
  }).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

const statusOf = SyncRepo.use((r) => r.state("EURUSD", "M1")).pipe(Effect.map(Option.map((s) => s.status)))
const statuses = (events: ReadonlyArray<StreamEvent>) => events.flatMap((e) => (e.type === "state" ? [e.status] : []))

afterEach(() => {
  vendorNow = () => Date.now()
})

describe.each(databaseKinds)("a stream's loop on the %s database", (kind) => {
  test("catches up, goes live, then syncs once a minute shortly after each minute closes", async () => {
    const { fake, db } = await setup(kind)
    const result = await db.run(
      withLoop((events) =>
        Effect.gen(function* () {
          yield* advanceUntil(() => statuses(events).includes("live"), { limitMillis: 10_000 })
          const afterCatchUp = fake.requests.length
          // Three more minutes: three syncs, each a few seconds after the minute; done when the third page is stored.
          const thirdSync = t0 - 30_000 + 3 * minute
          yield* advanceUntil(() => events.some((e) => e.type === "page" && e.watermark >= thirdSync), { limitMillis: 4 * minute })
          const stored = yield* CandleStore.use((s) => s.range({ symbol: "EURUSD", timeframe: "M1", from: dayStart, to: t0 + 10 * minute, limit: 10_000 }))
          const state = yield* SyncRepo.use((r) => r.state("EURUSD", "M1"))
          return { events, afterCatchUp, stored: stored.length, state }
        })
      )
    )
    expect(statuses(result.events).slice(0, 3)).toEqual(["starting", "backfilling", "live"])
    expect(result.afterCatchUp).toBe(1)
    // Sync requests are asked for exactly the closed minutes, at second 5 of the next minute.
    const syncs = fake.requests.slice(1, 4).map((r) => new URL(r.url).pathname.split("/").slice(-2).map(Number))
    expect(syncs).toEqual([1, 2, 3].map((i) => [t0 - 30_000 + (i - 1) * minute, t0 - 30_000 + i * minute - 1]))
    expect(result.stored).toBe(10 * 60 + 3)
    expect(Option.map(result.state, (s) => [s.status, s.owner, s.watermark])).toEqual(
      Option.some(["live", "test-runner", t0 - 30_000 + 3 * minute])
    )
  })

  test("a source that fails again and again goes degraded, restarts with backoff, and ends live with every bar", async () => {
    // The first ten requests fail: the client's own 8 tries run out once, the loop restarts, then it recovers.
    const { fake, db } = await setup(kind, { faults: (index) => (index < 10 ? "502-html" : null) })
    const result = await db.run(
      withLoop((events) =>
        Effect.gen(function* () {
          yield* advanceUntil(() => statuses(events).at(-1) === "live", { limitMillis: 30 * minute })
          const stored = yield* CandleStore.use((s) => s.range({ symbol: "EURUSD", timeframe: "M1", from: dayStart, to: t0 + 60 * minute, limit: 10_000 }))
          return { events, stored, status: yield* statusOf }
        })
      )
    )
    const seen = statuses(result.events)
    expect(seen).toContain("degraded")
    expect(seen.at(-1)).toBe("live")
    expect(result.events.some((e) => e.type === "restart" && e.delayMillis >= 800 && e.delayMillis <= 1200)).toBe(true)
    expect(fake.requests.filter((r) => r.status === 502).length).toBe(10)
    // Every bar up to the last closed minute at the moment it recovered, none twice.
    const stamps = result.stored.map((b) => b.ts)
    expect(new Set(stamps).size).toBe(stamps.length)
    expect(stamps[0]).toBe(dayStart)
    expect(stamps.every((ts, i) => i === 0 || ts - stamps[i - 1]! === minute)).toBe(true)
    expect(result.status).toEqual(Option.some("live"))
  })

  test("Unauthorized fails the stream after one request, nothing more is asked, and Retry brings it back", async () => {
    const keys: Array<string> = ["another-key"]
    const { fake, db } = await setup(kind, { apiKeys: keys })
    const result = await db.run(
      withLoop((events) =>
        Effect.gen(function* () {
          yield* advanceUntil(() => statuses(events).includes("failed"), { limitMillis: minute })
          // Hours pass: a failed stream neither spins nor polls the vendor.
          yield* TestClock.adjust("6 hours")
          const requestsWhileFailed = fake.requests.length
          const syncWhileFailed = yield* Effect.either(sendToStream.syncNow("EURUSD:M1"))
          const failedState = yield* SyncRepo.use((r) => r.state("EURUSD", "M1"))
          // The key is fixed at the vendor; a Retry starts the stream again.
          keys.push(apiKey)
          const retried = yield* sendToStream.retry("EURUSD:M1")
          yield* advanceUntil(() => statuses(events).at(-1) === "live", { limitMillis: 5 * minute })
          return { requestsWhileFailed, syncWhileFailed, failedState, retried, status: yield* statusOf }
        })
      )
    )
    expect(result.requestsWhileFailed).toBe(1)
    expect(result.syncWhileFailed._tag).toBe("Left")
    expect(Option.map(result.failedState, (s) => [s.status, s.lastError?.includes("Unknown API Key")])).toEqual(Option.some(["failed", true]))
    expect(Option.getOrThrow(result.failedState).lastError).not.toContain(apiKey)
    expect(result.retried).toBe("starting")
    expect(result.status).toEqual(Option.some("live"))
    expect(fake.requests.length).toBeGreaterThan(1)
  })

  test("SyncNow runs a pass at once and answers with its report", async () => {
    const { db } = await setup(kind)
    const report = await db.run(
      withLoop((events) =>
        Effect.gen(function* () {
          yield* advanceUntil(() => statuses(events).includes("live"), { limitMillis: 10_000 })
          // 10:01:03, two seconds before the tick: SyncNow asks for the 10:00 bar at once.
          yield* TestClock.setTime(t0 + 33_000)
          return yield* sendToStream.syncNow("EURUSD:M1")
        })
      )
    )
    expect(report).toMatchObject({ symbol: "EURUSD", timeframe: "M1", fetched: 1, stored: 1 })
  })
})

const untilAsleepAt = (wakeAt: number) => untilAsleepAtShared(wakeAt, "the loop")

/** `advanceUntil`, asked again while it gives up only because real I/O (a slow server database) outlasted its patience. */
const settle = (done: () => boolean, options: { readonly limitMillis: number }) =>
  Effect.gen(function* () {
    const start = yield* Clock.currentTimeMillis
    // Up to a minute of real time: a 20-day page and its rollups take a while on a busy server.
    const realStart = Date.now()
    while (!done() && Date.now() - realStart < 60_000) {
      const left = options.limitMillis - ((yield* Clock.currentTimeMillis) - start)
      if (left < 0) break
      yield* advanceUntil(done, { limitMillis: left })
    }
    return done()
  })

interface Observation {
  readonly now: number
  readonly status: string
  readonly watermark: number | null
  readonly lagSeconds: number | null
  readonly delayMinutes: number
  /** Bars the vendor had published by `now` that are not stored, oldest first. */
  readonly missing: ReadonlyArray<number>
}

/**
 * Runs the loop live for `syncs` minutes and, after each sync (at second 5 of the minute), compares what the
 * vendor had published by then with what is stored, beside what the status page says.
 */
const observeLive = (db: TestDatabase, syncs: number, publishedBy: (now: number) => ReadonlyArray<number>) =>
  withLoop((events) =>
    Effect.gen(function* () {
      const pages = () => events.filter((e) => e.type === "page").length
      yield* settle(() => statuses(events).includes("live"), { limitMillis: 10_000 })
      const observations: Array<Observation> = []
      for (let i = 0; i < syncs; i++) {
        const before = pages()
        yield* settle(() => pages() > before, { limitMillis: 2 * minute })
        const now = yield* Clock.currentTimeMillis
        yield* untilAsleepAt(now + minute)
        const state = Option.getOrThrow(yield* SyncRepo.use((r) => r.state("EURUSD", "M1")))
        const stored = yield* CandleStore.use((s) => s.range({ symbol: "EURUSD", timeframe: "M1", from: dayStart, to: now, limit: 10_000 }))
        const have = new Set(stored.map((b) => b.ts))
        observations.push({
          now,
          status: state.status,
          watermark: state.watermark,
          lagSeconds: streamLagSeconds(db.config, state, now),
          delayMinutes: streamDelayMinutes(db.config, state),
          missing: publishedBy(now).filter((ts) => !have.has(ts))
        })
      }
      return observations
    })
  )

/** Observations where a published bar is missing behind the watermark, or where `live` shows a lag that does not reach back to it. */
const hiddenLosses = (observations: ReadonlyArray<Observation>) =>
  observations.filter((o) => {
    const oldest = o.missing[0]
    if (oldest === undefined) return false
    const lagReaches = o.lagSeconds !== null && o.now - o.delayMinutes * minute - o.lagSeconds * 1000 <= oldest
    return o.watermark === null || oldest < o.watermark || (o.status === "live" && !lagReaches)
  })

describe.each(databaseKinds)("late bars, a delayed plan and a short history on the %s database", (kind) => {
  test("a bar published 25 s late is stored on the next sync, and status never hides a missing bar", async () => {
    const { db } = await setup(kind, { publishAfterSeconds: { "C:EURUSD": 25 } }, {}, { settleSeconds: 120 })
    const observations = await db.run(observeLive(db, 6, (now) => bars.filter((b) => b.ts + minute + 25_000 <= now).map((b) => b.ts)))
    expect(hiddenLosses(observations)).toEqual([])
    // Every sync finds every bar published before it: the one that came 25 s late was asked for again.
    expect(observations.map((o) => o.missing.length)).toEqual([0, 0, 0, 0, 0, 0])
    // The watermark stays behind the settle line (two minutes), and that is what status calls lag.
    for (const o of observations) {
      expect(o.watermark).toBe(o.now - (o.now % minute) - 2 * minute)
      expect(o.status).toBe("live")
      expect(o.lagSeconds).toBe((o.now - o.watermark!) / 1000)
    }
  })

  test("on a 15-minute delayed plan every bar the vendor publishes is stored, and the delay shows in status", async () => {
    const lines: Array<string> = []
    const capture = Logger.make(({ message }) => void lines.push(String(message)))
    // The plan is set to no delay: the vendor's DELAYED answer has to correct it.
    const { db } = await setup(kind, { delayMinutes: 15 }, {}, { settleSeconds: 120, delayMinutes: Option.some(0) })
    const observations = await db.run(
      observeLive(db, 5, (now) => bars.filter((b) => b.ts + minute + 15 * minute <= now).map((b) => b.ts)).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, capture))
      )
    )
    expect(hiddenLosses(observations)).toEqual([])
    expect(observations.map((o) => o.missing.length)).toEqual([0, 0, 0, 0, 0])
    for (const o of observations) {
      expect([o.status, o.delayMinutes]).toEqual(["live", 15])
      // Measured from what the plan can deliver: the settle time and less than a bar, not a quarter of an hour.
      expect(o.lagSeconds!).toBeLessThanOrEqual(180)
      expect(o.watermark).toBe(o.now - (o.now % minute) - 17 * minute)
    }
    expect(lines.filter((line) => line.includes("answers DELAYED"))).toHaveLength(1)
  })

  test("a plan that covers 20 days, asked from 60 days back: the history start is found in a few requests, all 20 days stored, the stream live", async () => {
    const now = Date.parse("2021-03-01T10:00:30Z")
    const today = Date.parse("2021-03-01T00:00:00Z")
    const history = quietBars(today - 61 * 24 * 60 * minute, 61 * 24 * 60 + 10 * 60)
    const { fake, db } = await setup(kind, { bars: new Map([["C:EURUSD", history]]), historyDays: 20 }, {
      backfillFrom: Option.some(today - 60 * 24 * 60 * minute)
    })
    const result = await db.run(
      withLoop(
        (events) =>
          Effect.gen(function* () {
            yield* settle(() => statuses(events).includes("live") || statuses(events).includes("failed"), { limitMillis: 10 * minute })
            const requests = fake.requests.length
            const stored = yield* CandleStore.use((s) => s.range({ symbol: "EURUSD", timeframe: "M1", from: today - 61 * 24 * 60 * minute, to: now, limit: 100_000 }))
            return { requests, stored, state: Option.getOrThrow(yield* SyncRepo.use((r) => r.state("EURUSD", "M1"))), seen: statuses(events) }
          }),
        now
      )
    )
    const historyFrom = today - 20 * 24 * 60 * minute
    expect(result.seen).not.toContain("failed")
    expect(result.state).toMatchObject({ status: "live", historyFrom, watermark: now - 30_000 })
    const want = history.filter((b) => b.ts >= historyFrom && b.ts < now - 30_000)
    expect(result.stored.length).toBe(want.length)
    expect(result.stored[0]!.ts).toBe(historyFrom)
    // Halving 60 days takes about six probes: not one request per day.
    expect(result.requests).toBeLessThanOrEqual(12)
  })

  test("a 403 for the newest bars fails the stream for good, saying the plan does not cover the symbol at all", async () => {
    const { fake, db } = await setup(kind, { notEntitled: ["C:EURUSD"] })
    const result = await db.run(
      withLoop((events) =>
        Effect.gen(function* () {
          yield* settle(() => statuses(events).includes("failed"), { limitMillis: minute })
          yield* TestClock.adjust("1 hour")
          return { requests: fake.requests.length, state: Option.getOrThrow(yield* SyncRepo.use((r) => r.state("EURUSD", "M1"))) }
        })
      )
    )
    expect(result.state.status).toBe("failed")
    expect(result.state.lastError).toContain("does not cover C:EURUSD at all")
    expect(result.state.lastError).toContain("You are not entitled to this data")
    expect(result.state.historyFrom).toBeNull()
    expect(result.requests).toBeLessThanOrEqual(2)
  })
})
