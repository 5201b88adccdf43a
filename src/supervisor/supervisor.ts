import { ClusterCron, Singleton } from "@effect/cluster"
import { Cause, Clock, Cron, Duration, Effect, Layer } from "effect"
import { AppConfig, brokerStreams, configuredStreams } from "../config.ts"
import { streamName, type StreamKey } from "../domain/stream.ts"
import { Backfill } from "../pipeline/backfill.ts"
import { Gaps } from "../pipeline/gaps.ts"
import { BrokerRepo } from "../store/broker-repo.ts"
import { brokerSingletonName, brokerStreamName, compareAllBrokerStreams, runBrokerLoop } from "./broker-loop.ts"
import { runnerName } from "./cluster.ts"
import { StreamEvents } from "./events.ts"
import { StreamEntityLive, streamEntityId } from "./stream-entity.ts"
import { runStreamLoop } from "./stream-loop.ts"
import { describeError } from "../store/database-error.ts"

/** A loop handles its own failures; this catches what should never happen, so a defect restarts it, never kills it. */
const keepRunning = <E, R>(name: string, loop: (owner: string) => Effect.Effect<unknown, E, R>) =>
  Effect.gen(function* () {
    const owner = yield* runnerName
    yield* Effect.logInfo(`${name} runs here (${owner})`)
    return yield* loop(owner).pipe(
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause)
          ? Effect.failCause(cause)
          : Effect.logError(`${name} loop died; restarting in 5 s`, cause).pipe(Effect.zipRight(Effect.sleep("5 seconds")))
      ),
      Effect.forever,
      // With "runs here", the line that lets an operator (and the soak) see where a stream ran, and when.
      Effect.onExit(() => Effect.logInfo(`${name} stops here (${owner})`))
    )
  })

const guarded = (stream: StreamKey) => keepRunning(streamName(stream), (owner) => runStreamLoop(stream, owner))

/** A daily job: `run` for every configured stream, one failing never stopping the next; each outcome logged and published. */
const forEachStream = <A, E, R>(job: string, run: (stream: StreamKey) => Effect.Effect<A, E, R>, describe: (result: A) => string) =>
  Effect.gen(function* () {
    const config = yield* AppConfig
    const events = yield* StreamEvents
    for (const stream of configuredStreams(config)) {
      const outcome = yield* Effect.either(run(stream))
      const detail = `${streamName(stream)}: ${outcome._tag === "Right" ? describe(outcome.right) : `failed: ${errorText(outcome.left)}`}`
      yield* Effect.logInfo(`${job} ${detail}`)
      yield* events.publish({ type: "job", job, at: yield* Clock.currentTimeMillis, detail })
    }
  })

const errorText = describeError

/** Re-verification: the last VERIFY_DAYS of every stream asked again and upserted; counts bars that changed. */
const verifyRecentDays = Effect.gen(function* () {
  const config = yield* AppConfig
  const backfill = yield* Backfill
  const from = (yield* Clock.currentTimeMillis) - Duration.toMillis(Duration.days(config.supervisor.verifyDays))
  yield* forEachStream(
    "verify",
    (stream) => backfill.run({ ...stream, from, purpose: "verify", refetch: true }),
    (report) => `${report.fetched} bars asked again, ${report.changed} changed, ${report.stored - report.changed} new`
  )
})

/** The daily gap scan: detect over each stream's whole history, then ask the vendor again for the open gaps. */
export const gapScan = Effect.flatMap(Gaps, (gaps) =>
  forEachStream(
    "gap-scan",
    (stream) => Effect.zip(gaps.detect(stream), gaps.fill(stream)),
    ([found, filled]) =>
      `${found.gaps.length} gaps (${found.recorded} new); refilled ${filled.filled}, shrunk ${filled.partiallyFilled}, ` +
      `unfillable ${filled.unfillable}, ${filled.barsRecovered} bars recovered`
  )
)

/**
 * The broker side when MetaApi is configured: a singleton quote loop per (account, symbol) `broker/ACCOUNT:SYMBOL`,
 * the comparison on BROKER_COMPARE_CRON once per cluster, and the quote retention policy. Otherwise one info line
 * and every stored broker stream marked `off`, so the status page says why.
 */
const BrokerSupervisorLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) => {
    const broker = brokerStreams(config)
    if (broker.off !== null) {
      const reason = broker.off
      return Layer.effectDiscard(
        Effect.logInfo(`broker features off: ${reason}`).pipe(
          Effect.zipRight(BrokerRepo.use((repo) => repo.markAllOff(`broker features off: ${reason}`))),
          Effect.catchAllCause((cause) => Effect.logWarning("could not mark broker streams off", cause))
        )
      )
    }
    return Layer.mergeAll(
      Layer.effectDiscard(
        BrokerRepo.use((repo) => repo.applyRetention(config.broker.quoteRetentionDays)).pipe(
          Effect.catchAllCause((cause) => Effect.logWarning("could not set the broker_quotes retention policy", cause))
        )
      ),
      ClusterCron.make({ name: "broker-compare", cron: Cron.unsafeParse(config.broker.compareCron, "UTC"), execute: compareAllBrokerStreams }),
      ...broker.streams.map((stream) =>
        Singleton.make(brokerSingletonName(stream), keepRunning(`broker ${brokerStreamName(stream)}`, (owner) => runBrokerLoop(stream, owner)))
      )
    )
  })
)

/**
 * Every configured stream as a cluster singleton (`stream/EURUSD:M1`), the Stream entity that reaches it,
 * and the daily jobs, each run once per cluster.
 */
export const SupervisorLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) =>
    Layer.mergeAll(
      StreamEntityLive,
      ClusterCron.make({ name: "gap-scan", cron: Cron.unsafeParse(config.supervisor.gapScanCron, "UTC"), execute: gapScan }),
      ClusterCron.make({ name: "verify", cron: Cron.unsafeParse(config.supervisor.verifyCron, "UTC"), execute: verifyRecentDays }),
      ...configuredStreams(config).map((stream) => Singleton.make(streamEntityId(streamName(stream)), guarded(stream))),
      BrokerSupervisorLive
    )
  )
)
