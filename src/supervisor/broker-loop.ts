import { Cause, Clock, Duration, Effect, Option, Random } from "effect"
import { AppConfig, type BrokerStream } from "../config.ts"
import { Broker, BrokerFetchFailed, BrokerOff, UnknownBrokerStream } from "../pipeline/broker.ts"
import { isTransient } from "../sources/metaapi/errors.ts"
import { BrokerRepo, type BrokerStatus } from "../store/broker-repo.ts"
import { StreamEvents } from "./events.ts"
import { restartDelay } from "./stream-loop.ts"
import { describeError } from "../store/database-error.ts"

/** `ACCOUNT:SYMBOL`: how events and logs name a broker stream. */
export const brokerStreamName = (stream: { readonly account: string; readonly symbol: string }): string => `${stream.account}:${stream.symbol}`

/** The cluster singleton running a broker stream's quote loop. */
export const brokerSingletonName = (stream: { readonly account: string; readonly symbol: string }): string => `broker/${brokerStreamName(stream)}`

/** A failed broker stream (bad token, unknown symbol) asks once more after this long, in case it was fixed at MetaApi. */
export const failedRecheck = Duration.hours(1)

/** How often old quotes are deleted (BROKER_QUOTE_RETENTION_DAYS), on every database flavour. */
const pruneEvery = 3_600_000

type Outcome = { readonly _tag: "ok" } | { readonly _tag: "permanent" | "transient"; readonly error: string }

/** A MetaApi answer that will not change by asking again (401, 404, 400, JSON of an unknown shape), or a stream that is not configured. */
const isPermanent = (error: unknown): boolean =>
  error instanceof BrokerOff || error instanceof UnknownBrokerStream || (error instanceof BrokerFetchFailed && !isTransient(error.cause))

/**
 * The quote loop of one broker stream: a sample every BROKER_QUOTE_INTERVAL_SECONDS, on whole multiples of it;
 * starting → live; degraded while transient failures are retried with capped, jittered backoff; failed on a
 * permanent one (bad token, unknown symbol), logged once, asked again only after an hour — never a hot loop.
 * Old quotes are deleted hourly. It handles every failure itself: nothing escapes.
 */
export const runBrokerLoop = (stream: BrokerStream, owner: string) =>
  Effect.gen(function* () {
    const config = yield* AppConfig
    const broker = yield* Broker
    const repo = yield* BrokerRepo
    const events = yield* StreamEvents
    const name = brokerStreamName(stream)
    const intervalMillis = Math.max(1, Math.round(config.broker.quoteIntervalSeconds * 1000))

    let status = "starting" as BrokerStatus
    const setStatus = (next: BrokerStatus, details: { readonly error?: string; readonly delayMillis?: number } = {}) =>
      Effect.gen(function* () {
        status = next
        yield* repo
          .setStatus(stream, next, { owner, ...(details.error === undefined ? {} : { error: details.error }) })
          .pipe(Effect.catchAllCause((cause) => Effect.logWarning(`could not record broker status ${next}`, cause)))
        yield* events.publish({ type: "broker-state", stream: name, account: stream.account, symbol: stream.symbol, status: next, at: yield* events.now, ...details })
      })

    /** One sample, classified; a defect or a database failure counts as transient. */
    const sampleOnce = broker.sample(stream).pipe(
      Effect.as<Outcome>({ _tag: "ok" }),
      Effect.catchAllCause((cause): Effect.Effect<Outcome> => {
        if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause) as never
        const failure = Cause.failureOption(cause)
        const error = Option.match(failure, {
          onNone: () => Cause.pretty(cause).split("\n")[0] ?? "defect",
          onSome: describeError
        })
        return Effect.succeed({ _tag: Option.exists(failure, isPermanent) ? "permanent" : "transient", error })
      })
    )

    const prune = (now: number) =>
      broker.pruneQuotes(stream, now).pipe(
        Effect.tap((deleted) => (deleted > 0 ? Effect.logDebug(`deleted ${deleted} quotes older than ${config.broker.quoteRetentionDays} days`) : Effect.void)),
        Effect.catchAllCause((cause) => Effect.logWarning("could not delete old quotes", cause))
      )

    /** Sleeps until the next whole multiple of the interval. */
    const untilNextTick = Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sleep(Duration.millis((Math.floor(now / intervalMillis) + 1) * intervalMillis - now)))

    let failures = 0
    let lastPrune = Number.NEGATIVE_INFINITY
    let loggedFailure: string | null = null
    yield* setStatus("starting")
    for (;;) {
      const outcome = yield* sampleOnce
      if (outcome._tag === "ok") {
        if (status !== "live") yield* setStatus("live")
        if (failures > 0 || loggedFailure !== null) yield* Effect.logInfo(`${name} is live again`)
        failures = 0
        loggedFailure = null
        const now = yield* Clock.currentTimeMillis
        if (now - lastPrune >= pruneEvery) {
          lastPrune = now
          yield* prune(now)
        }
        yield* untilNextTick
        continue
      }
      if (outcome._tag === "permanent") {
        if (status !== "failed" || loggedFailure !== outcome.error) yield* setStatus("failed", { error: outcome.error, delayMillis: Duration.toMillis(failedRecheck) })
        // Logged once per distinct error; the hourly re-check stays quiet while the answer does not change.
        if (loggedFailure !== outcome.error) yield* Effect.logError(`${name} failed: ${outcome.error}; asks again in ${Duration.format(failedRecheck)}`)
        loggedFailure = outcome.error
        failures = 0
        yield* Effect.sleep(failedRecheck)
        continue
      }
      failures += 1
      const delay = restartDelay(failures, yield* Random.next)
      yield* setStatus("degraded", { error: outcome.error, delayMillis: Duration.toMillis(delay) })
      yield* Effect.logWarning(`${name} retries in ${Duration.format(delay)} after failure ${failures}: ${outcome.error}`)
      yield* Effect.sleep(delay)
    }
  }).pipe(Effect.annotateLogs({ service: "Broker", stream: brokerStreamName(stream) }))

/**
 * The scheduled comparison: every configured broker stream compared over the configured window and stored, one
 * failing never stopping the next; each outcome logged and published.
 */
export const compareAllBrokerStreams = Effect.gen(function* () {
  const broker = yield* Broker
  const events = yield* StreamEvents
  for (const stream of broker.streams) {
    const name = brokerStreamName(stream)
    const outcome = yield* Effect.either(broker.compareAndRecord(stream))
    if (outcome._tag === "Left") {
      yield* Effect.logError(`broker-compare ${name}: could not run or store the comparison: ${describeError(outcome.left)}`)
      continue
    }
    const entry = outcome.right
    const meanPips = entry.diff_pips?.mean ?? null
    yield* Effect.logInfo(
      `broker-compare ${name}: ${entry.status}, ${entry.samples} minutes compared` +
        (meanPips === null ? "" : `, mean ${meanPips.toFixed(2)} pips`) +
        (entry.error === null ? "" : `: ${entry.error}`)
    )
    yield* events.publish({
      type: "broker-compare",
      stream: name,
      account: stream.account,
      symbol: stream.symbol,
      status: entry.status,
      at: yield* events.now,
      samples: entry.samples,
      meanPips,
      ...(entry.error === null ? {} : { error: entry.error })
    })
  }
}).pipe(Effect.annotateLogs({ service: "Broker" }))
