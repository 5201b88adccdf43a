import { afterEach, describe, expect, test } from "bun:test"
import { Effect, Fiber, Option, Queue, Redacted, TestClock, TestContext } from "effect"
import { AppConfig } from "../src/config.ts"
import { quietBars } from "./support/bars.ts"
import { CandleStore } from "../src/store/candle-store.ts"
import { SyncRepo } from "../src/store/sync-repo.ts"
import { StreamEvents, type StreamEvent } from "../src/supervisor/events.ts"
import { runStreamLoop, sendToStream } from "../src/supervisor/stream-loop.ts"
import { startMassiveFake, type MassiveFakeOptions } from "./fakes/massive.ts"
import { createTestDatabase, databaseKinds } from "./support/databases.ts"
import { advanceUntil } from "./support/test-clock.ts"

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

const setup = async (kind: "embedded" | "server", fakeOptions: Partial<MassiveFakeOptions> = {}) => {
  const apiKeys = [apiKey]
  const fake = startMassiveFake({ bars: new Map([["C:EURUSD", bars]]), ...fakeOptions, apiKeys: fakeOptions.apiKeys ?? apiKeys })
  const db = await createTestDatabase(kind, {
    backfillFrom: Option.some(dayStart),
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
      timeoutSeconds: 100_000
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
const withLoop = <A>(script: (events: Array<StreamEvent>) => Effect.Effect<A, unknown, any>) =>
  Effect.gen(function* () {
    yield* TestClock.setTime(t0)
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
