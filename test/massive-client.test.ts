import { FetchHttpClient, type HttpClient } from "@effect/platform"
import { describe, expect, test } from "bun:test"
import { Cause, Chunk, Clock, Context, Effect, Either, Exit, Fiber, HashMap, Layer, Logger, Option, Queue, Redacted, type Scope, Stream, TestClock, TestContext } from "effect"
import { AppConfig, type MassiveSettings } from "../src/config.ts"
import type { Candle } from "../src/domain/candle.ts"
import { type MassiveRange, MassiveClient, massiveRetry } from "../src/sources/massive/client.ts"
import { parseRetryAfter } from "../src/sources/http-answer.ts"
import {
  excerptOf,
  failureForStatus,
  type FailedRequest,
  isTransient,
  type MassiveError,
  redactSecret,
  timedOut,
  transportFailed,
  undecodable
} from "../src/sources/massive/errors.ts"
import { MassiveRateLimits } from "../src/sources/massive/rate-limiter.ts"
import { type MassiveFake, type MassiveFakeOptions, type MassiveFault, startMassiveFake } from "./fakes/massive.ts"
import { memoryRateBudgetLayer } from "./support/memory-rate-budget.ts"
import { hasSharedData, loadHistdata, noSharedDataReason } from "./support/shared-data.ts"

const apiKey = "ck-live-7Hq2ZpX9vL4mW1"
const minute = 60_000
const monday = Date.UTC(2021, 0, 4)

/** M1 bars one minute apart; every other bar lacks vw and n, as the vendor allows. */
const syntheticBars = (count: number, from = monday): Array<Candle> =>
  Array.from({ length: count }, (_, i) => ({
    ts: from + i * minute,
    open: 1.2241 + i / 1e5,
    high: 1.2244 + i / 1e5,
    low: 1.2239 + i / 1e5,
    close: 1.2242 + i / 1e5,
    volume: 40 + i,
    vwap: i % 2 === 0 ? 1.22415 + i / 1e5 : null,
    trades: i % 2 === 0 ? 40 + i : null
  }))

const eurusd = (bars: ReadonlyArray<Candle>) => new Map([["C:EURUSD", bars]])

const range = (from: number, to: number, symbol = "EURUSD"): MassiveRange => ({ symbol, timeframe: "M1", from, to })

/** Everything logged, as the default logfmt lines a person would read, plus each retry's announced delay. */
const captureLogs = () => {
  const lines: Array<string> = []
  const retryDelays = Effect.runSync(Queue.unbounded<number>())
  const logger = Logger.make((options) => {
    lines.push(Logger.logfmtLogger.log(options))
    const delay = HashMap.get(options.annotations, "delayMillis")
    if (Option.isSome(delay) && typeof delay.value === "number") Queue.unsafeOffer(retryDelays, delay.value)
  })
  return { lines, retryDelays, layer: Logger.replace(Logger.defaultLogger, logger) }
}
type Logs = ReturnType<typeof captureLogs>

type Env = Scope.Scope | HttpClient.HttpClient | MassiveRateLimits

const provide = <A, E>(effect: Effect.Effect<A, E, Env>, logs: Logs) =>
  effect.pipe(Effect.scoped, Effect.provide(Layer.mergeAll(FetchHttpClient.layer, MassiveRateLimits.Default.pipe(Layer.provide(memoryRateBudgetLayer)), logs.layer)))

const runLive = <A, E>(effect: Effect.Effect<A, E, Env>, logs: Logs = captureLogs()): Promise<A> => Effect.runPromise(provide(effect, logs))

const runOnTestClock = <A, E>(effect: Effect.Effect<A, E, Env>, logs: Logs = captureLogs()): Promise<A> =>
  Effect.runPromise(provide(effect, logs).pipe(Effect.provide(TestContext.TestContext)))

const fakeMassive = (options: Partial<MassiveFakeOptions>) =>
  Effect.acquireRelease(
    Effect.sync(() => startMassiveFake({ bars: new Map(), apiKeys: [apiKey], ...options })),
    (fake) => Effect.promise(() => fake.stop())
  )

const settingsFor = (fake: MassiveFake, overrides: Partial<MassiveSettings> = {}): MassiveSettings => ({
  ...AppConfig.fixed().massive,
  apiKey: Option.some(Redacted.make(apiKey)),
  baseUrl: fake.baseUrl,
  plan: "paid",
  requestsPerMinute: Option.none(),
  maxConcurrency: 4,
  timeoutSeconds: 30,
  ...overrides
})

/** A client of its own; clients built in one test share that test's limiter registry, as in the service. */
const clientFor = (fake: MassiveFake, overrides: Partial<MassiveSettings> = {}) =>
  Layer.build(MassiveClient.DefaultWithoutDependencies.pipe(Layer.provide(AppConfig.make({ massive: settingsFor(fake, overrides) })))).pipe(
    Effect.map(Context.get(MassiveClient))
  )

const collectPages = (client: MassiveClient, request: MassiveRange) => Effect.map(Stream.runCollect(client.pages(request)), Chunk.toReadonlyArray)

/** Waits (without moving time) until some fiber sleeps on the TestClock until `wakeAt`. */
const untilAsleep = (wakeAt: number) =>
  Effect.gen(function* () {
    for (let i = 0; i < 100_000; i++) {
      if (Chunk.toReadonlyArray(yield* TestClock.sleeps()).includes(wakeAt)) return
      yield* Effect.yieldNow()
    }
    return yield* Effect.die(new Error(`nothing went to sleep until ${wakeAt}`))
  })

/** Runs `effect` on the TestClock, moving time by exactly each retry delay the client announces in its log. */
const driveRetries = <A, E, R>(effect: Effect.Effect<A, E, R>, logs: Logs) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(effect)
    const delays: Array<number> = []
    for (;;) {
      const next = yield* Effect.raceFirst(
        Effect.map(Fiber.await(fiber), (exit) => Either.right(exit)),
        Effect.map(Queue.take(logs.retryDelays), (delay) => Either.left(delay))
      )
      if (Either.isRight(next)) return { exit: next.right, delays }
      delays.push(next.left)
      yield* untilAsleep((yield* Clock.currentTimeMillis) + next.left)
      yield* TestClock.adjust(next.left)
    }
  })

/** Every way a failure can be shown to a person, so none of them may carry the key. */
const renderings = (error: MassiveError): string => [error.message, String(error), JSON.stringify(error), Cause.pretty(Cause.fail(error))].join("\n")

describe("Massive client against the loopback fake", () => {
  test("pagination follows next_url as given, re-adds auth on every page, and never puts the key in a URL", async () => {
    const bars = syntheticBars(25)
    const to = monday + 20 * minute
    const { pages, requests } = await runLive(
      Effect.gen(function* () {
        const fake = yield* fakeMassive({ bars: eurusd(bars), pageSize: 8 })
        const client = yield* clientFor(fake)
        return { pages: yield* collectPages(client, range(monday, to)), requests: fake.requests }
      })
    )
    // The bar opening exactly at `to` stays out: `to` is exclusive and the vendor's is inclusive.
    expect(pages.flatMap((p) => p.candles)).toEqual(bars.slice(0, 20))
    expect(pages.map((p) => p.candles.length)).toEqual([8, 8, 4])
    expect(pages.map((p) => p.retries)).toEqual([0, 0, 0])
    expect(pages[2]?.nextUrl).toBeNull()
    expect(requests).toHaveLength(3)
    const first = new URL(requests[0]!.url)
    expect(first.pathname).toBe(`/v2/aggs/ticker/C:EURUSD/range/1/minute/${monday}/${to - 1}`)
    expect(first.search).toBe("?adjusted=true&sort=asc&limit=50000")
    expect(requests[1]?.url).toBe(pages[0]!.nextUrl!)
    expect(requests[2]?.url).toBe(pages[1]!.nextUrl!)
    expect(requests.every((r) => r.authorizationHeader)).toBe(true)
    expect(requests.some((r) => r.url.includes(apiKey) || /apiKey=/i.test(r.url))).toBe(false)
    expect(new Set(requests.map((r) => r.cursor)).size).toBe(3)
  })

  test.skipIf(!hasSharedData)("a week of real EURUSD minutes comes back whole and in order through pagination", async () => {
    const from = Date.UTC(2021, 0, 3, 22)
    const to = Date.UTC(2021, 0, 8, 22)
    const real = loadHistdata("EURUSD")
    const week = real.filter((bar) => bar.ts >= from && bar.ts < to)
    const { pages, requests } = await runLive(
      Effect.gen(function* () {
        const fake = yield* fakeMassive({ bars: eurusd(real), pageSize: 2000 })
        const client = yield* clientFor(fake)
        return { pages: yield* collectPages(client, range(from, to)), requests: fake.requests }
      })
    )
    expect(week.length).toBeGreaterThan(6000)
    expect(pages.flatMap((p) => p.candles)).toEqual(week)
    expect(pages).toHaveLength(Math.ceil(week.length / 2000))
    expect(new Set(requests.map((r) => r.cursor)).size).toBe(requests.length)
  })

  test("a range without bars arrives with no `results` at all and becomes an empty last page", async () => {
    const saturday = Date.UTC(2021, 0, 9)
    const { raw, page } = await runLive(
      Effect.gen(function* () {
        const fake = yield* fakeMassive({ bars: eurusd(syntheticBars(10)) })
        const client = yield* clientFor(fake)
        const raw = yield* Effect.promise(() =>
          fetch(`${fake.baseUrl}/v2/aggs/ticker/C:EURUSD/range/1/minute/${saturday}/${saturday + 3_600_000}`, {
            headers: { authorization: `Bearer ${apiKey}` }
          }).then((r) => r.json() as Promise<Record<string, unknown>>)
        )
        const page = yield* client.fetchPage(range(saturday, saturday + 3_600_000))
        return { raw, page }
      })
    )
    expect("results" in raw).toBe(false)
    expect(raw.resultsCount).toBe(0)
    expect(page).toMatchObject({ candles: [], nextUrl: null, status: 200 })
    expect(page.requestId).toMatch(/^[0-9a-f]{32}$/)
  })

  test("status DELAYED is a success", async () => {
    const bars = syntheticBars(5)
    const page = await runLive(
      Effect.gen(function* () {
        const fake = yield* fakeMassive({ bars: eurusd(bars), status: "DELAYED" })
        const client = yield* clientFor(fake)
        return yield* client.fetchPage(range(monday, monday + 5 * minute))
      })
    )
    expect(page.candles).toEqual(bars)
  })

  test("a DELAYED answer for one ticker delays that ticker's settle line only (a key's plans are per market)", async () => {
    const logs = captureLogs()
    const now = monday + 60 * minute
    const lines = await runLive(
      Effect.gen(function* () {
        const fake = yield* fakeMassive({ bars: new Map([["C:EURUSD", syntheticBars(5)], ["C:USDJPY", syntheticBars(5)]]), delayedTickers: { "C:USDJPY": 15 } })
        const client = yield* clientFor(fake, { delayMinutes: Option.some(0) })
        const before = yield* client.settledBefore(now, "M1", "USDJPY")
        yield* client.fetchPage(range(monday, monday + 5 * minute, "USDJPY"))
        yield* client.fetchPage(range(monday, monday + 5 * minute, "EURUSD"))
        return {
          before,
          usdjpy: yield* client.settledBefore(now, "M1", "USDJPY"),
          eurusd: yield* client.settledBefore(now, "M1", "EURUSD"),
          delays: [yield* client.planDelayMinutes("USDJPY"), yield* client.planDelayMinutes("EURUSD")]
        }
      }),
      logs
    )
    expect(lines.delays).toEqual([15, 0])
    expect(lines.eurusd).toBe(lines.before)
    expect(lines.usdjpy).toBe(lines.before - 15 * minute)
    expect(logs.lines.filter((line) => line.includes("answers DELAYED for C:USDJPY"))).toHaveLength(1)
  })

  test("a 401 stops after exactly one request, and the key shows in no error rendering nor log line", async () => {
    const wrongKey = "ck-revoked-Qm83LxT0aa"
    const logs = captureLogs()
    const { error, requests } = await runLive(
      Effect.gen(function* () {
        const fake = yield* fakeMassive({ bars: eurusd(syntheticBars(5)) })
        const client = yield* clientFor(fake, { apiKey: Option.some(Redacted.make(wrongKey)) })
        // Logged the way a stream logs the failure that stops it.
        const error = yield* Stream.runDrain(client.pages(range(monday, monday + 5 * minute))).pipe(
          Effect.tapErrorCause((cause) => Effect.logError("stream stopped", cause)),
          Effect.flip
        )
        return { error, requests: fake.requests }
      }),
      logs
    )
    expect(error._tag).toBe("Unauthorized")
    expect(error.message).toContain("Unknown API Key")
    if (error._tag !== "Unauthorized") throw new Error("unreachable")
    expect(error.status).toBe(401)
    expect(error.requestId).toMatch(/^[0-9a-f]{32}$/)
    expect(error.range).toBe(`${new Date(monday).toISOString()}/${new Date(monday + 5 * minute).toISOString()}`)
    expect(requests).toHaveLength(1)
    expect(requests[0]?.authorizationHeader).toBe(true)
    expect(isTransient(error)).toBe(false)
    expect(renderings(error)).not.toContain(wrongKey)
    expect(logs.lines.join("\n")).toContain("Unknown API Key")
    expect(logs.lines.join("\n")).not.toContain(wrongKey)
  })

  test("without an API key nothing is sent and the error says MASSIVE_API_KEY is not set", async () => {
    const { error, requests } = await runLive(
      Effect.gen(function* () {
        const fake = yield* fakeMassive({ bars: eurusd(syntheticBars(5)) })
        const client = yield* clientFor(fake, { apiKey: Option.none() })
        const error = yield* Effect.flip(client.fetchPageWithRetry(range(monday, monday + 5 * minute)))
        return { error, requests: fake.requests }
      })
    )
    expect(error._tag).toBe("Unauthorized")
    expect(error.message).toContain("MASSIVE_API_KEY is not set")
    expect(requests).toHaveLength(0)
  })

  test("an unconfigured symbol fails as UnknownSymbol before any request; known ones map to the vendor's ticker", async () => {
    const { error, requests, btc } = await runLive(
      Effect.gen(function* () {
        const fake = yield* fakeMassive({})
        const client = yield* clientFor(fake)
        const error = yield* Effect.flip(client.fetchPageWithRetry(range(monday, monday + minute, "EURGBP")))
        return { error, requests: fake.requests, btc: client.tickerFor("BTCUSD") }
      })
    )
    expect(error._tag).toBe("UnknownSymbol")
    expect(error.message).toContain("EURGBP")
    expect(requests).toHaveLength(0)
    expect(btc).toEqual(Either.right("X:BTCUSD"))
  })

  test("a 403 becomes NotEntitled carrying the vendor's message, without a retry", async () => {
    const { error, requests } = await runLive(
      Effect.gen(function* () {
        const fake = yield* fakeMassive({ bars: new Map([["C:XAUUSD", syntheticBars(5)]]), notEntitled: ["C:XAUUSD"] })
        const client = yield* clientFor(fake)
        const error = yield* Effect.flip(client.fetchPageWithRetry(range(monday, monday + 5 * minute, "XAUUSD")))
        return { error, requests: fake.requests }
      })
    )
    expect(error._tag).toBe("NotEntitled")
    expect(error.message).toContain("You are not entitled to this data")
    if (error._tag !== "NotEntitled") throw new Error("unreachable")
    expect(error.ticker).toBe("C:XAUUSD")
    expect(error.status).toBe(403)
    expect(requests).toHaveLength(1)
  })

  test("a 429 with Retry-After waits that long and loses no bar", async () => {
    const bars = syntheticBars(30)
    const logs = captureLogs()
    const result = await runOnTestClock(
      Effect.gen(function* () {
        const fake = yield* fakeMassive({
          bars: eurusd(bars),
          pageSize: 10,
          retryAfterSeconds: 7,
          faults: (index) => (index === 1 ? "429-retry-after" : null)
        })
        const client = yield* clientFor(fake)
        const fiber = yield* Effect.fork(collectPages(client, range(monday, monday + 30 * minute)))
        const delay = yield* Queue.take(logs.retryDelays)
        const wakeAt = (yield* Clock.currentTimeMillis) + delay
        yield* untilAsleep(wakeAt)
        // One millisecond short of the wait, the client is still asleep and has not asked again.
        yield* TestClock.adjust(delay - 1)
        const stillAsleep = Chunk.toReadonlyArray(yield* TestClock.sleeps()).includes(wakeAt)
        const requestsBeforeWake = fake.requests.length
        yield* TestClock.adjust(1)
        const pages = yield* Fiber.join(fiber)
        return { delay, stillAsleep, requestsBeforeWake, pages, requests: fake.requests }
      }),
      logs
    )
    expect(result.delay).toBeGreaterThanOrEqual(7_000)
    expect(result.stillAsleep).toBe(true)
    expect(result.requestsBeforeWake).toBe(2)
    expect(result.pages.flatMap((p) => p.candles)).toEqual(bars)
    expect(result.pages.map((p) => p.retries)).toEqual([0, 1, 0])
    expect(result.requests.map((r) => r.status)).toEqual([200, 429, 200, 200])
    // The refused page is asked again with the same cursor; no page is served twice.
    expect(result.requests[2]?.cursor).toBe(result.requests[1]!.cursor)
    expect(new Set(result.requests.filter((r) => r.status === 200).map((r) => r.cursor)).size).toBe(3)
  })

  test("a 502 HTML page, a truncated JSON body and a bare 429 are retried with growing delays and the range arrives whole", async () => {
    const bars = syntheticBars(30)
    const logs = captureLogs()
    const faults = new Map<number, MassiveFault>([[1, "502-html"], [2, "truncated-json"], [4, "429"]])
    const result = await runOnTestClock(
      Effect.gen(function* () {
        const fake = yield* fakeMassive({ bars: eurusd(bars), pageSize: 10, faults: (index) => faults.get(index) ?? null })
        const client = yield* clientFor(fake)
        const { exit, delays } = yield* driveRetries(collectPages(client, range(monday, monday + 30 * minute)), logs)
        return { exit, delays, requests: fake.requests }
      }),
      logs
    )
    if (!Exit.isSuccess(result.exit)) throw new Error(Cause.pretty(result.exit.cause))
    const pages = result.exit.value
    expect(pages.flatMap((p) => p.candles)).toEqual(bars)
    expect(pages.map((p) => p.retries)).toEqual([0, 2, 1])
    expect(result.requests.map((r) => r.status)).toEqual([200, 502, 200, 200, 429, 200])
    const [first = 0, second = 0, third = 0] = result.delays
    const { baseMillis, factor, jitter } = massiveRetry
    expect(first).toBeWithin(baseMillis * (1 - jitter), baseMillis * (1 + jitter) + 1)
    expect(second).toBeWithin(baseMillis * factor * (1 - jitter), baseMillis * factor * (1 + jitter) + 1)
    expect(third).toBeWithin(baseMillis * (1 - jitter), baseMillis * (1 + jitter) + 1)
    const logged = logs.lines.join("\n")
    expect(logs.lines.filter((line) => line.includes("level=WARN"))).toHaveLength(3)
    for (const tag of ["ServerError", "Decode", "RateLimited"]) expect(logged).toContain(`error=${tag}`)
    expect(logged).not.toContain(apiKey)
  })

  test("the server's own per-minute limit answers 429 with the vendor's body, and the wait it asks for reaches the error", async () => {
    const { error, requests } = await runLive(
      Effect.gen(function* () {
        const fake = yield* fakeMassive({ bars: eurusd(syntheticBars(5)), rateLimit: { requestsPerMinute: 2, sendRetryAfter: true } })
        const client = yield* clientFor(fake)
        const request = range(monday, monday + 5 * minute)
        yield* client.fetchPage(request)
        yield* client.fetchPage(request)
        const error = yield* Effect.flip(client.fetchPage(request))
        return { error, requests: fake.requests }
      })
    )
    expect(requests.map((r) => r.status)).toEqual([200, 200, 429])
    expect(error._tag).toBe("RateLimited")
    if (error._tag !== "RateLimited") throw new Error("unreachable")
    expect(error.message).toContain("exceeded the maximum requests per minute")
    expect(error.retryAfterMillis).toBeWithin(1_000, 60_001)
    expect(isTransient(error)).toBe(true)
  })

  test("valid JSON of an unknown shape fails at once as a permanent Decode", async () => {
    const { error, requests } = await runLive(
      Effect.gen(function* () {
        const fake = yield* fakeMassive({ bars: eurusd(syntheticBars(5)), faults: () => "schema-mismatch" })
        const client = yield* clientFor(fake)
        const error = yield* Effect.flip(client.fetchPageWithRetry(range(monday, monday + 5 * minute)))
        return { error, requests: fake.requests }
      })
    )
    expect(error._tag).toBe("Decode")
    if (error._tag !== "Decode") throw new Error("unreachable")
    expect(error.reason).toBe("schema-mismatch")
    expect(error.message).toContain("results")
    expect(error.requestId).toMatch(/^[0-9a-f]{32}$/)
    expect(isTransient(error)).toBe(false)
    expect(requests).toHaveLength(1)
  })

  test("an answer slower than the timeout setting becomes a Timeout", async () => {
    const startedAt = Date.now()
    const { error, requests } = await runLive(
      Effect.gen(function* () {
        const fake = yield* fakeMassive({ bars: eurusd(syntheticBars(5)), slowMillis: 10_000, faults: () => "slow" })
        const client = yield* clientFor(fake, { timeoutSeconds: 0.2 })
        const error = yield* Effect.flip(client.fetchPage(range(monday, monday + 5 * minute)))
        return { error, requests: fake.requests }
      })
    )
    expect(error._tag).toBe("Timeout")
    if (error._tag !== "Timeout") throw new Error("unreachable")
    expect(error.timeoutMillis).toBe(200)
    expect(isTransient(error)).toBe(true)
    expect(requests).toHaveLength(1)
    expect(Date.now() - startedAt).toBeLessThan(5_000)
  })

  test("two clients with the same key share one free-plan budget; a client with another key has its own", async () => {
    const otherKey = "ck-live-second-account-9"
    const result = await runOnTestClock(
      Effect.gen(function* () {
        const fake = yield* fakeMassive({ bars: eurusd(syntheticBars(10)), apiKeys: [apiKey, otherKey] })
        const free = { plan: "free" as const }
        const first = yield* clientFor(fake, free)
        const second = yield* clientFor(fake, free)
        const other = yield* clientFor(fake, { ...free, apiKey: Option.some(Redacted.make(otherKey)) })
        const request = range(monday, monday + 10 * minute)
        yield* Effect.forEach([1, 2, 3, 4, 5], () => first.fetchPage(request))
        yield* other.fetchPage(request)
        const waiting = yield* Effect.fork(second.fetchPage(request))
        // The sixth request on the key is held until a minute after the first five finished.
        yield* untilAsleep(60_000)
        const sentBeforeTheMinute = fake.requests.length
        yield* TestClock.adjust(60_000)
        const page = yield* Fiber.join(waiting)
        return { sentBeforeTheMinute, page, sent: fake.requests.length }
      })
    )
    expect(result.sentBeforeTheMinute).toBe(6)
    expect(result.page.candles).toHaveLength(10)
    expect(result.sent).toBe(7)
  })
})

describe("Massive errors and headers", () => {
  const facts: FailedRequest = {
    ticker: "C:EURUSD",
    range: "2021-01-04T00:00:00.000Z/2021-01-05T00:00:00.000Z",
    url: null,
    status: null,
    requestId: null,
    detail: "",
    excerpt: ""
  }

  test("transient and permanent failures are told apart", () => {
    const cases: ReadonlyArray<readonly [MassiveError, boolean]> = [
      [failureForStatus(429, facts, 7_000), true],
      [failureForStatus(502, facts, null), true],
      [failureForStatus(503, facts, null), true],
      [timedOut(facts, 30_000), true],
      [transportFailed(facts), true],
      [undecodable(facts, "invalid-json"), true],
      [undecodable(facts, "schema-mismatch"), false],
      [failureForStatus(400, facts, null), false],
      [failureForStatus(401, facts, null), false],
      [failureForStatus(403, facts, null), false],
      [failureForStatus(404, facts, null), false]
    ]
    for (const [error, transient] of cases) expect([error._tag, isTransient(error)]).toEqual([error._tag, transient])
    expect(cases.map(([error]) => error._tag)).toEqual([
      "RateLimited", "ServerError", "ServerError", "Timeout", "Transport", "Decode", "Decode", "BadRequest", "Unauthorized", "NotEntitled", "NotFound"
    ])
  })

  test("Retry-After is read as seconds or as an HTTP date", () => {
    const now = Date.UTC(2021, 0, 4, 12)
    expect(parseRetryAfter("7", now)).toBe(7_000)
    expect(parseRetryAfter(" 1.5 ", now)).toBe(1_500)
    expect(parseRetryAfter(new Date(now + 12_000).toUTCString(), now)).toBe(12_000)
    expect(parseRetryAfter(new Date(now - 12_000).toUTCString(), now)).toBe(0)
    expect(parseRetryAfter("soon", now)).toBeNull()
    expect(parseRetryAfter(undefined, now)).toBeNull()
  })

  test("the key is scrubbed from URLs, bearer headers and bodies, and excerpts stay under 200 characters", () => {
    const text = `GET https://api.massive.com/v2/aggs?apiKey=${apiKey}&limit=1 Authorization: Bearer ${apiKey} echoed ${apiKey}`
    expect(redactSecret(text, apiKey)).not.toContain(apiKey)
    expect(redactSecret("https://x/y?cursor=a&apiKey=other-key", null)).toBe("https://x/y?cursor=a&apiKey=[redacted]")
    const excerpt = excerptOf(`<html>\n${"x".repeat(500)}</html>`, null)
    expect(excerpt.length).toBeLessThanOrEqual(200)
    expect(excerpt.startsWith("<html> x")).toBe(true)
  })
})

if (!hasSharedData) console.log(noSharedDataReason)
