import { ClusterCron, Singleton } from "@effect/cluster"
import { Cause, Clock, Cron, Duration, Effect, Layer } from "effect"
import { AppConfig, configuredStreams } from "../config.ts"
import { streamName, type StreamKey } from "../domain/stream.ts"
import { Backfill } from "../pipeline/backfill.ts"
import { Gaps } from "../pipeline/gaps.ts"
import { runnerName } from "./cluster.ts"
import { StreamEvents } from "./events.ts"
import { StreamEntityLive, streamEntityId } from "./stream-entity.ts"
import { runStreamLoop } from "./stream-loop.ts"

/** The loop handles its own failures; this catches what should never happen, so a defect restarts it, never kills it. */
const guarded = (stream: StreamKey) =>
  Effect.gen(function* () {
    const owner = yield* runnerName
    yield* Effect.logInfo(`${streamName(stream)} runs here (${owner})`)
    return yield* runStreamLoop(stream, owner).pipe(
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause)
          ? Effect.failCause(cause)
          : Effect.logError(`${streamName(stream)} loop died; restarting in 5 s`, cause).pipe(Effect.zipRight(Effect.sleep("5 seconds")))
      ),
      Effect.forever
    )
  })

/** Re-verification: the last VERIFY_DAYS of every stream asked again and upserted; counts bars that changed. */
const verifyRecentDays = Effect.gen(function* () {
  const config = yield* AppConfig
  const backfill = yield* Backfill
  const events = yield* StreamEvents
  const now = yield* Clock.currentTimeMillis
  const from = now - Duration.toMillis(Duration.days(config.supervisor.verifyDays))
  for (const stream of configuredStreams(config)) {
    const outcome = yield* Effect.either(backfill.run({ ...stream, from, purpose: "verify", refetch: true }))
    const detail =
      outcome._tag === "Right"
        ? `${streamName(stream)}: ${outcome.right.fetched} bars asked again, ${outcome.right.changed} changed, ${outcome.right.stored - outcome.right.changed} new`
        : `${streamName(stream)}: verification failed: ${outcome.left.message}`
    yield* Effect.logInfo(`verify ${detail}`)
    yield* events.publish({ type: "job", job: "verify", at: yield* Clock.currentTimeMillis, detail })
  }
})

/** The daily gap scan: detect over each stream's whole history, then ask the vendor again for the open gaps. */
const gapScan = Effect.gen(function* () {
  const config = yield* AppConfig
  const gaps = yield* Gaps
  const events = yield* StreamEvents
  for (const stream of configuredStreams(config)) {
    const outcome = yield* Effect.either(
      Effect.zip(gaps.detect(stream), gaps.fill(stream))
    )
    const detail =
      outcome._tag === "Right"
        ? `${streamName(stream)}: ${outcome.right[0].gaps.length} gaps (${outcome.right[0].recorded} new); refilled ${outcome.right[1].filled}, ` +
          `shrunk ${outcome.right[1].partiallyFilled}, unfillable ${outcome.right[1].unfillable}, ${outcome.right[1].barsRecovered} bars recovered`
        : `${streamName(stream)}: gap scan failed: ${String((outcome.left as { message?: unknown }).message ?? outcome.left)}`
    yield* Effect.logInfo(`gap scan ${detail}`)
    yield* events.publish({ type: "job", job: "gap-scan", at: yield* Clock.currentTimeMillis, detail })
  }
})

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
      ...configuredStreams(config).map((stream) => Singleton.make(streamEntityId(streamName(stream)), guarded(stream)))
    )
  )
)
