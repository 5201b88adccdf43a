import { FetchHttpClient, type HttpClient } from "@effect/platform"
import { describe, expect, test } from "bun:test"
import { Cause, Chunk, Clock, Context, Effect, Either, Exit, Fiber, HashMap, Layer, Logger, Option, Queue, Redacted, type Scope, TestClock, TestContext } from "effect"
import { AppConfig, type BrokerSettings } from "../src/config.ts"
import type { Candle } from "../src/domain/candle.ts"
import { maxCandlesPerRequest, MetaApiClient, metaApiRetry } from "../src/sources/metaapi/client.ts"
import {
  excerptOf,
  type FailedBrokerRequest,
  failureForStatus,
  isTransient,
  type MetaApiError,
  redactToken,
  timedOut,
  transportFailed,
  undecodable
} from "../src/sources/metaapi/errors.ts"
import { type MetaApiFake, type MetaApiFakeOptions, type MetaApiFault, brokerTimeOf, startMetaApiFake } from "./fakes/metaapi.ts"

const token = "mtapi-tok.eyJhbGciOiJSUzUxMiJ9.Zk3q81"
const account = "a1b2c3d4-acct"
const minute = 60_000
const wednesday = Date.parse("2021-03-03T00:00:00Z")

/** M1 gold candles one minute apart from `from`. */
const goldBars = (count: number, from = wednesday): Array<Candle> =>
  Array.from({ length: count }, (_, i) => ({
    ts: from + i * minute,
    open: 1720 + i / 100,
    high: 1720.5 + i / 100,
    low: 1719.5 + i / 100,
    close: 1720.2 + i / 100,
    volume: 30 + (i % 7),
    vwap: null,
    trades: null
  }))

const accounts = (bars: ReadonlyArray<Candle>) => new Map([[account, new Map([["XAUUSD.a", bars]])]])

/** Everything logged, as the logfmt lines a person would read, plus each retry's announced delay. */
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

type Env = Scope.Scope | HttpClient.HttpClient

const provide = <A, E>(effect: Effect.Effect<A, E, Env>, logs: Logs) => effect.pipe(Effect.scoped, Effect.provide(Layer.mergeAll(FetchHttpClient.layer, logs.layer)))
const runLive = <A, E>(effect: Effect.Effect<A, E, Env>, logs: Logs = captureLogs()): Promise<A> => Effect.runPromise(provide(effect, logs))
const runOnTestClock = <A, E>(effect: Effect.Effect<A, E, Env>, logs: Logs = captureLogs()): Promise<A> =>
  Effect.runPromise(provide(effect, logs).pipe(Effect.provide(TestContext.TestContext)))

const fakeMetaApi = (options: Partial<MetaApiFakeOptions>) =>
  Effect.acquireRelease(
    Effect.sync(() => startMetaApiFake({ accounts: new Map(), tokens: [token], ...options })),
    (fake) => Effect.promise(() => fake.stop())
  )

const settingsFor = (fake: MetaApiFake, overrides: Partial<BrokerSettings> = {}): BrokerSettings => ({
  ...AppConfig.fixed().broker,
  token: Option.some(Redacted.make(token)),
  accounts: [account],
  baseUrl: fake.baseUrl,
  marketDataUrl: fake.baseUrl,
  ...overrides
})

const clientFor = (fake: MetaApiFake, overrides: Partial<BrokerSettings> = {}) =>
  Layer.build(MetaApiClient.Default.pipe(Layer.provide(AppConfig.make({ broker: settingsFor(fake, overrides) })))).pipe(Effect.map(Context.get(MetaApiClient)))

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

/** Every way a failure can be shown to a person, so none of them may carry the token. */
const renderings = (error: MetaApiError): string => [error.message, String(error), JSON.stringify(error), Cause.pretty(Cause.fail(error))].join("\n")

describe("MetaApi client against the loopback fake", () => {
  test("the current price is decoded (bid, ask, UTC time, broker time), with the token in auth-token and never in the URL", async () => {
    const at = wednesday + 10 * minute + 17_250
    const { price, requests } = await runLive(
      Effect.gen(function* () {
        const fake = yield* fakeMetaApi({ accounts: accounts(goldBars(30)), spread: 0.25, now: () => at })
        const client = yield* clientFor(fake)
        return { price: yield* client.currentPrice(account, "XAUUSD.a"), requests: fake.requests }
      })
    )
    expect(price).toEqual({ symbol: "XAUUSD.a", bid: 1720.3, ask: 1720.55, time: at, brokerTime: "2021-03-03 02:10:17.250" })
    expect(brokerTimeOf(Date.parse("2021-07-01T12:00:00Z"))).toBe("2021-07-01 15:00:00.000")
    expect(requests).toHaveLength(1)
    expect(new URL(requests[0]!.url).pathname).toBe(`/users/current/accounts/${account}/symbols/XAUUSD.a/current-price`)
    expect(requests[0]!.authToken).toBe(token)
    expect(requests[0]!.url).not.toContain(token)
  })

  test("a window longer than one page is read backwards page by page, and exactly [from, to) comes back", async () => {
    const bars = goldBars(3000)
    const from = wednesday + 100 * minute
    const to = wednesday + 2600 * minute
    const { candles, requests } = await runLive(
      Effect.gen(function* () {
        const fake = yield* fakeMetaApi({ accounts: accounts(bars), now: () => wednesday + 3000 * minute })
        const client = yield* clientFor(fake)
        return { candles: yield* client.candles({ account, symbol: "XAUUSD.a", from, to }), requests: fake.requests }
      })
    )
    expect(candles.map((c) => c.ts)).toEqual(bars.slice(100, 2600).map((b) => b.ts))
    expect(candles[0]).toMatchObject({ open: bars[100]!.open, high: bars[100]!.high, low: bars[100]!.low, close: bars[100]!.close })
    // 2,500 minutes: three pages of at most 1,000, each starting just before the oldest candle of the one before.
    expect(requests.map((r) => [r.startTime, r.limit])).toEqual([
      [new Date(to - 1).toISOString(), String(maxCandlesPerRequest)],
      [new Date(to - 1000 * minute - 1).toISOString(), "1000"],
      [new Date(to - 2000 * minute - 1).toISOString(), "1000"]
    ])
    expect(requests.every((r) => new URL(r.url).pathname.endsWith("/historical-market-data/symbols/XAUUSD.a/timeframes/1m/candles"))).toBe(true)
  })

  test("a short window asks for just its minutes, and a history that ends early stops the paging", async () => {
    const bars = goldBars(50, wednesday + 30 * minute)
    const { hour, early, requests } = await runLive(
      Effect.gen(function* () {
        const fake = yield* fakeMetaApi({ accounts: accounts(bars), now: () => wednesday + 200 * minute })
        const client = yield* clientFor(fake)
        const hour = yield* client.candles({ account, symbol: "XAUUSD.a", from: wednesday + 60 * minute, to: wednesday + 120 * minute })
        // Two days back: the broker's history starts at 00:30, so one short page answers everything.
        const early = yield* client.candles({ account, symbol: "XAUUSD.a", from: wednesday - 2 * 1440 * minute, to: wednesday + 60 * minute })
        return { hour, early, requests: fake.requests }
      })
    )
    expect(hour.map((c) => c.ts)).toEqual(bars.filter((b) => b.ts >= wednesday + 60 * minute).map((b) => b.ts))
    expect(requests[0]!.limit).toBe("60")
    expect(early.map((c) => c.ts)).toEqual(bars.filter((b) => b.ts < wednesday + 60 * minute).map((b) => b.ts))
    expect(requests).toHaveLength(2)
  })

  test.each([
    ["recommendedRetryTime later than Retry-After", 42_000, 5, 42_000],
    ["Retry-After later than recommendedRetryTime", 10_000, 90, 90_000]
  ])("a 429 waits for the later of the two (%s)", async (_, recommendedMillis, retryAfterSeconds, expectedWait) => {
    const logs = captureLogs()
    const start = wednesday + 60 * minute
    let clock = () => start
    const result = await runOnTestClock(
      Effect.gen(function* () {
        yield* TestClock.setTime(start)
        const testClock = yield* Effect.clock
        clock = () => testClock.unsafeCurrentTimeMillis()
        const fake = yield* fakeMetaApi({
          accounts: accounts(goldBars(120)),
          now: () => clock(),
          recommendedRetryAfterMillis: recommendedMillis,
          retryAfterSeconds,
          faults: (index) => (index === 0 ? "429-retry-after" : null)
        })
        const client = yield* clientFor(fake)
        const fiber = yield* Effect.fork(client.currentPrice(account, "XAUUSD.a"))
        const delay = yield* Queue.take(logs.retryDelays)
        const wakeAt = start + delay
        yield* untilAsleep(wakeAt)
        // One millisecond short of the wait, the client is still asleep and has not asked again.
        yield* TestClock.adjust(delay - 1)
        const requestsBeforeWake = fake.requests.length
        yield* TestClock.adjust(1)
        const price = yield* Fiber.join(fiber)
        return { delay, requestsBeforeWake, price, requests: fake.requests }
      }),
      logs
    )
    expect(result.delay).toBe(expectedWait)
    expect(result.requestsBeforeWake).toBe(1)
    expect(result.requests.map((r) => r.status)).toEqual([429, 200])
    expect(result.price.time).toBe(start + expectedWait)
    expect(logs.lines.join("\n")).toContain("TooManyRequestsError")
  })

  test("a bad token stops after exactly one request, and the token shows in no error rendering nor log line", async () => {
    const logs = captureLogs()
    const { error, requests } = await runLive(
      Effect.gen(function* () {
        const fake = yield* fakeMetaApi({ accounts: accounts(goldBars(5)), tokens: ["another-token"] })
        const client = yield* clientFor(fake)
        const error = yield* client.currentPrice(account, "XAUUSD.a").pipe(
          Effect.tapErrorCause((cause) => Effect.logError("broker stream stopped", cause)),
          Effect.flip
        )
        return { error, requests: fake.requests }
      }),
      logs
    )
    expect(error._tag).toBe("Unauthorized")
    expect(error.message).toContain("UnauthorizedError")
    expect(error.status).toBe(401)
    expect(error.account).toBe(account)
    expect(isTransient(error)).toBe(false)
    expect(requests).toHaveLength(1)
    expect(renderings(error)).not.toContain(token)
    expect(logs.lines.join("\n")).toContain("UnauthorizedError")
    expect(logs.lines.join("\n")).not.toContain(token)
  })

  test("without a token nothing is sent and the error says METAAPI_TOKEN is not set", async () => {
    const { error, requests } = await runLive(
      Effect.gen(function* () {
        const fake = yield* fakeMetaApi({ accounts: accounts(goldBars(5)) })
        const client = yield* clientFor(fake, { token: Option.none() })
        return { error: yield* Effect.flip(client.currentPrice(account, "XAUUSD.a")), requests: fake.requests }
      })
    )
    expect(error._tag).toBe("Unauthorized")
    expect(error.message).toContain("METAAPI_TOKEN is not set")
    expect(requests).toHaveLength(0)
  })

  test.each([
    ["an unknown broker symbol is NotFound", "XAUUSD.b", "1m", "NotFound", "Symbol XAUUSD.b not found"],
    ["an unknown account is NotFound", "XAUUSD.a", "1m", "NotFound", "not found"],
    ["an unsupported timeframe is a Validation error", "XAUUSD.a", "2m", "Validation", "ValidationError"]
  ] as const)("%s, without a retry", async (name, symbol, timeframe, tag, said) => {
    const { error, requests } = await runLive(
      Effect.gen(function* () {
        const fake = yield* fakeMetaApi({ accounts: accounts(goldBars(5)), now: () => wednesday + 10 * minute })
        const client = yield* clientFor(fake)
        const who = name.includes("account") ? "no-such-account" : account
        const error = yield* Effect.flip(
          client.candlePage({ account: who, symbol, timeframe: timeframe as "1m", startTime: wednesday + 5 * minute, limit: 10 })
        )
        return { error, requests: fake.requests }
      })
    )
    expect(error._tag).toBe(tag)
    expect(error.message).toContain(said)
    expect(isTransient(error)).toBe(false)
    expect(requests).toHaveLength(1)
  })

  test("a 500, a 504, a proxy's 502 page and a truncated body are retried with growing delays and the answer arrives", async () => {
    const logs = captureLogs()
    const faults = new Map<number, MetaApiFault>([[0, "500"], [1, "504"], [2, "502-html"], [3, "truncated-json"]])
    const result = await runOnTestClock(
      Effect.gen(function* () {
        const fake = yield* fakeMetaApi({ accounts: accounts(goldBars(30)), now: () => wednesday + 40 * minute, faults: (index) => faults.get(index) ?? null })
        const client = yield* clientFor(fake)
        const { exit, delays } = yield* driveRetries(client.candles({ account, symbol: "XAUUSD.a", from: wednesday, to: wednesday + 30 * minute }), logs)
        return { exit, delays, requests: fake.requests }
      }),
      logs
    )
    if (!Exit.isSuccess(result.exit)) throw new Error(Cause.pretty(result.exit.cause))
    expect(result.exit.value).toHaveLength(30)
    expect(result.requests.map((r) => r.status)).toEqual([500, 504, 502, 200, 200])
    const { baseMillis, factor, jitter } = metaApiRetry
    result.delays.forEach((delay, i) => expect(delay).toBeWithin(baseMillis * factor ** i * (1 - jitter), baseMillis * factor ** i * (1 + jitter) + 1))
    expect(result.delays).toHaveLength(4)
    const logged = logs.lines.join("\n")
    for (const tag of ["error=Server", "error=Decode", "TimeoutError", "InternalError"]) expect(logged).toContain(tag)
    expect(logged).not.toContain(token)
  })

  test("valid JSON of an unknown shape fails at once as a permanent Decode naming the field", async () => {
    const { error, requests } = await runLive(
      Effect.gen(function* () {
        const fake = yield* fakeMetaApi({ accounts: accounts(goldBars(5)), now: () => wednesday + 2 * minute, faults: () => "schema-mismatch" })
        const client = yield* clientFor(fake)
        return { error: yield* Effect.flip(client.currentPrice(account, "XAUUSD.a")), requests: fake.requests }
      })
    )
    expect(error._tag).toBe("Decode")
    if (error._tag !== "Decode") throw new Error("unreachable")
    expect(error.reason).toBe("schema-mismatch")
    expect(error.message).toContain("symbol")
    expect(isTransient(error)).toBe(false)
    expect(requests).toHaveLength(1)
  })

  test("an answer slower than METAAPI_TIMEOUT_SECONDS becomes a Timeout, which is retried", async () => {
    const startedAt = Date.now()
    const logs = captureLogs()
    const { page, requests } = await runLive(
      Effect.gen(function* () {
        const fake = yield* fakeMetaApi({ accounts: accounts(goldBars(5)), now: () => wednesday + 10 * minute, slowMillis: 10_000, faults: (index) => (index === 0 ? "slow" : null) })
        const client = yield* clientFor(fake, { timeoutSeconds: 0.2 })
        const page = yield* client.candlePage({ account, symbol: "XAUUSD.a", timeframe: "1m", startTime: wednesday + 5 * minute, limit: 10 })
        return { page, requests: fake.requests }
      }),
      logs
    )
    expect(page.map((c) => c.ts)).toEqual(goldBars(5).map((b) => b.ts))
    expect(requests).toHaveLength(2)
    const logged = logs.lines.join("\n")
    expect(logged).toContain("error=Timeout")
    expect(logged).toContain("no complete answer within 200 ms")
    expect(Date.now() - startedAt).toBeLessThan(5_000)
  })
})

const facts: FailedBrokerRequest = {
  account,
  symbol: "XAUUSD.a",
  asked: "current price",
  url: null,
  status: null,
  detail: "",
  excerpt: ""
}

describe("MetaApi errors", () => {
  test("transient and permanent failures are told apart", () => {
    const noWait = { recommendedRetryTime: null, retryAfterMillis: null }
    const cases: ReadonlyArray<readonly [MetaApiError, string, boolean]> = [
      [failureForStatus(429, facts, { recommendedRetryTime: 1, retryAfterMillis: 7_000 }), "RateLimited", true],
      [failureForStatus(500, facts, noWait), "Server", true],
      [failureForStatus(504, facts, noWait), "Server", true],
      [timedOut(facts, 30_000), "Timeout", true],
      [transportFailed(facts), "Transport", true],
      [undecodable(facts, "invalid-json"), "Decode", true],
      [undecodable(facts, "schema-mismatch"), "Decode", false],
      [failureForStatus(400, facts, noWait), "Validation", false],
      [failureForStatus(401, facts, noWait), "Unauthorized", false],
      [failureForStatus(403, facts, noWait), "Unauthorized", false],
      [failureForStatus(404, facts, noWait), "NotFound", false]
    ]
    expect(cases.map(([error]): [string, boolean] => [error._tag, isTransient(error)])).toEqual(cases.map(([, tag, transient]): [string, boolean] => [tag, transient]))
  })

  test("the token is scrubbed from echoed headers and bodies, and excerpts stay under 200 characters", () => {
    const text = `GET /x auth-token: ${token} {"auth-token":"${token}"} echoed ${token}`
    expect(redactToken(text, token)).not.toContain(token)
    expect(redactToken("auth-token: other-secret-value", null)).toBe("auth-token: [redacted]")
    const excerpt = excerptOf(`<html>\n${"x".repeat(500)}</html>`, token)
    expect(excerpt.length).toBeLessThanOrEqual(200)
  })
})
