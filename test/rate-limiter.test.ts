import { describe, expect, test } from "bun:test"
import { Clock, Effect, Fiber, Redacted, TestClock, TestContext } from "effect"
import { makeRateLimiter, MassiveRateLimits, type RateLimit, type RateLimiter } from "../src/sources/massive/rate-limiter.ts"
import { RateBudgetUnavailable } from "../src/domain/rate-budget.ts"
import { makeMemoryRateBudget, memoryRateBudgetLayer } from "./support/memory-rate-budget.ts"

const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect.pipe(Effect.provide(TestContext.TestContext)))

/** A limiter over a budget of its own, with a lease far beyond every test's horizon. */
const limiterFor = (limit: Omit<RateLimit, "leaseMillis">): RateLimiter =>
  makeRateLimiter({ ...limit, leaseMillis: 3_600_000 }, makeMemoryRateBudget(), "0123456789abcdef")

type AnyFiber = Fiber.RuntimeFiber<unknown, unknown>

/** Lets every fiber run until it waits (on the clock or on another fiber). */
const settle = (fibers: ReadonlyArray<AnyFiber>) =>
  Effect.gen(function* () {
    for (;;) {
      const statuses = yield* Effect.forEach(fibers, (fiber) => fiber.status)
      if (statuses.every((status) => status._tag !== "Running")) return
      yield* Effect.yieldNow()
    }
  })

/** A discrete-event run: settle, jump the TestClock to the next wake-up, repeat until every fiber is done. */
const simulate = (fibers: ReadonlyArray<AnyFiber>) =>
  Effect.gen(function* () {
    for (;;) {
      yield* settle(fibers)
      const statuses = yield* Effect.forEach(fibers, (fiber) => fiber.status)
      if (statuses.every((status) => status._tag === "Done")) return
      const now = yield* Clock.currentTimeMillis
      const wakeUps = [...(yield* TestClock.sleeps())].filter((at) => at > now)
      if (wakeUps.length === 0) return yield* Effect.die(new Error("fibers wait but nothing is due on the clock: deadlock"))
      yield* TestClock.setTime(Math.min(...wakeUps))
    }
  })

interface Sent {
  readonly start: number
  readonly end: number
}

/** Requests arriving at the given times, each taking `latency` ms once admitted; returns start and end times. */
const traffic = (limiter: RateLimiter, arrivals: ReadonlyArray<number>, latency = 0) =>
  Effect.gen(function* () {
    const sent: Array<Sent> = []
    const request = Effect.gen(function* () {
      const start = yield* Clock.currentTimeMillis
      if (latency > 0) yield* Effect.sleep(latency)
      sent.push({ start, end: yield* Clock.currentTimeMillis })
    })
    const fibers = yield* Effect.forEach(arrivals, (at) => Effect.fork(Effect.sleep(at).pipe(Effect.zipRight(limiter.withPermit(request)))))
    yield* simulate(fibers)
    return sent.sort((a, b) => a.start - b.start)
  })

/** The most requests that started inside any 60 s window. */
const busiestMinute = (starts: ReadonlyArray<number>): number =>
  Math.max(0, ...starts.map((from) => starts.filter((at) => at >= from && at < from + 60_000).length))

describe("Massive rate limiter", () => {
  test("a free plan (5/min) never sends a sixth request inside any 60 s window, even after a quiet start", async () => {
    const limiter = limiterFor({ requestsPerMinute: 5, maxConcurrency: 10 })
    // 5 at once, then one at 12 s: a bucket that starts full and refills continuously would send it at 12 s.
    const arrivals = [0, 0, 0, 0, 0, 12_000, 30_000, 30_000, 61_000, 61_000, 61_000]
    const sent = await run(traffic(limiter, arrivals))
    const starts = sent.map((s) => s.start)
    expect(busiestMinute(starts)).toBe(5)
    expect(starts).toEqual([0, 0, 0, 0, 0, 60_000, 60_000, 60_000, 61_000, 61_000, 120_000])
  })

  test("a place is held until the answer arrives, so slow answers cannot bunch requests on the server", async () => {
    const limiter = limiterFor({ requestsPerMinute: 2, maxConcurrency: 10 })
    const sent = await run(traffic(limiter, [0, 0, 0, 0, 0], 10_000))
    expect(sent.map((s) => s.start)).toEqual([0, 0, 70_000, 70_000, 140_000])
    // Each request starts a full minute after the answer two places before it: the server saw it arrive no later.
    for (let i = 2; i < sent.length; i++) expect(sent[i]!.start).toBeGreaterThanOrEqual(sent[i - 2]!.end + 60_000)
  })

  test("the concurrency cap holds requests back even without a per-minute cap", async () => {
    const limiter = limiterFor({ requestsPerMinute: null, maxConcurrency: 2 })
    const sent = await run(traffic(limiter, [0, 0, 0, 0, 0, 0], 5_000))
    expect(sent.map((s) => s.start)).toEqual([0, 0, 5_000, 5_000, 10_000, 10_000])
    const inFlightAt = (t: number) => sent.filter((s) => s.start <= t && t < s.end).length
    expect(Math.max(...sent.map((s) => inFlightAt(s.start)))).toBe(2)
  })

  test("an interrupted wait gives no place away and leaves the budget usable", async () => {
    const limiter = limiterFor({ requestsPerMinute: 1, maxConcurrency: 10 })
    const starts = await run(
      Effect.gen(function* () {
        const starts: Array<number> = []
        const request = Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => starts.push(now)))
        yield* limiter.withPermit(request)
        const waiting = yield* Effect.fork(limiter.withPermit(request))
        yield* settle([waiting])
        yield* Fiber.interrupt(waiting)
        const next = yield* Effect.fork(Effect.sleep(1_000).pipe(Effect.zipRight(limiter.withPermit(request))))
        yield* simulate([next])
        return starts
      })
    )
    expect(starts).toEqual([0, 60_000])
  })

  test("a budget that cannot be asked fails the request before it is sent; one that cannot record a finish does not fail it", async () => {
    const down = new RateBudgetUnavailable({ message: "the database is restarting", cause: null })
    const memory = makeMemoryRateBudget()
    const unaskable = makeRateLimiter({ requestsPerMinute: 5, maxConcurrency: 1, leaseMillis: 1_000 }, { ...memory, take: () => Effect.fail(down) }, "0123456789abcdef")
    const forgetful = makeRateLimiter({ requestsPerMinute: 5, maxConcurrency: 1, leaseMillis: 1_000 }, { ...memory, finish: () => Effect.fail(down) }, "0123456789abcdef")
    const result = await run(
      Effect.gen(function* () {
        let sent = 0
        const request = Effect.sync(() => ++sent)
        const refused = yield* Effect.flip(unaskable.withPermit(request))
        const answered = yield* forgetful.withPermit(request)
        return { refused, answered, sent }
      })
    )
    expect(result.refused).toBe(down)
    expect(result).toMatchObject({ answered: 1, sent: 1 })
  })

  test("the registry gives two callers with one key one budget, and another key its own", async () => {
    const result = await run(
      Effect.gen(function* () {
        const limits = yield* MassiveRateLimits
        const limit = { requestsPerMinute: 5, maxConcurrency: 4, leaseMillis: 3_600_000 }
        const first = yield* limits.forKey(Redacted.make("key-one"), limit)
        const second = yield* limits.forKey(Redacted.make("key-one"), limit)
        const other = yield* limits.forKey(Redacted.make("key-two"), limit)
        const starts: Array<{ readonly who: string; readonly at: number }> = []
        const request = (who: string) =>
          Effect.flatMap(Clock.currentTimeMillis, (at) => Effect.sync(() => starts.push({ who, at })))
        const fibers = yield* Effect.forEach(
          [
            ...Array.from({ length: 5 }, () => first.withPermit(request("first"))),
            ...Array.from({ length: 3 }, () => second.withPermit(request("second"))),
            ...Array.from({ length: 3 }, () => other.withPermit(request("other")))
          ],
          (effect) => Effect.fork(effect)
        )
        yield* simulate(fibers)
        return { same: first === second, starts }
      }).pipe(Effect.provide(MassiveRateLimits.Default), Effect.provide(memoryRateBudgetLayer))
    )
    expect(result.same).toBe(true)
    const sharing = result.starts.filter((s) => s.who !== "other").map((s) => s.at).sort((a, b) => a - b)
    expect(sharing).toEqual([0, 0, 0, 0, 0, 60_000, 60_000, 60_000])
    expect(result.starts.filter((s) => s.who === "other").map((s) => s.at)).toEqual([0, 0, 0])
  })
})
