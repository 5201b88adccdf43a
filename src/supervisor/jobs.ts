import { Clock, Data, Effect, FiberSet, Option, Queue } from "effect"
import { AppConfig, configuredStreams } from "../config.ts"
import { streamName, type StreamKey } from "../domain/stream.ts"
import type { Timeframe } from "../domain/timeframe.ts"
import { historyStart } from "../pipeline/backfill.ts"
import { Gaps, type GapRange } from "../pipeline/gaps.ts"
import { JobRepo, type JobKind } from "../store/job-repo.ts"
import { Rollups, type VerifyRequest } from "../store/rollups.ts"
import { runnerName } from "./cluster.ts"
import { StreamEvents } from "./events.ts"
import { StreamEntity, StreamRequestError, streamEntityId } from "./stream-entity.ts"
import { describeError } from "../store/database-error.ts"

/** A sync asked for a symbol × timeframe the supervisor does not keep (not in STREAMS). */
export class NotAStream extends Data.TaggedError("NotAStream")<{ readonly stream: string; readonly streams: ReadonlyArray<string> }> {
  override get message() {
    return `${this.stream} is not a configured stream (setting STREAMS): streams are ${this.streams.join(", ")}`
  }
}

const progressEveryMillis = 1_000

/**
 * Work asked for over HTTP, run in the background and recorded in `jobs`: a sync or full re-sync goes to the
 * stream's owner through the Stream entity (whichever instance runs it); a gap fill or a rollup check runs here.
 */
export class Jobs extends Effect.Service<Jobs>()("Supervisor/Jobs", {
  scoped: Effect.gen(function* () {
    const config = yield* AppConfig
    const repo = yield* JobRepo
    const gaps = yield* Gaps
    const rollups = yield* Rollups
    const events = yield* StreamEvents
    const instance = yield* runnerName
    const client = yield* StreamEntity.client
    const running = yield* FiberSet.make()

    /** Records the job, starts it in the background, and returns its id at once. */
    const submit = <A>(kind: JobKind, stream: StreamKey, work: Effect.Effect<A, { readonly message: string }>) =>
      Effect.gen(function* () {
        const id = crypto.randomUUID()
        yield* repo.create({ id, kind, symbol: stream.symbol, timeframe: stream.timeframe, instance })
        const name = streamName(stream)
        const run = Effect.gen(function* () {
          yield* repo.start(id)
          // Pages stored for this stream while the job runs are its progress (seen when the stream runs here).
          const pages = yield* events.subscribe
          let lastWrite = 0
          yield* Effect.forkScoped(Effect.forever(
            Effect.gen(function* () {
              const event = yield* Queue.take(pages)
              if (event.type !== "page" || event.stream !== name) return
              const now = yield* Clock.currentTimeMillis
              if (now - lastWrite < progressEveryMillis) return
              lastWrite = now
              yield* repo.progress(id, { fetched: event.fetched, stored: event.stored, rejected: event.rejected, reached: new Date(event.watermark).toISOString() })
            })
          ))
          const outcome = yield* Effect.either(work)
          yield* repo.finish(
            id,
            outcome._tag === "Right"
              ? { status: "succeeded", result: outcome.right, error: null }
              : { status: "failed", result: null, error: describeError(outcome.left) }
          )
          yield* events.publish({ type: "job", job: `${kind} ${id}`, at: yield* Clock.currentTimeMillis, detail: `${name}: ${outcome._tag === "Right" ? "succeeded" : `failed: ${describeError(outcome.left)}`}` })
        }).pipe(
          Effect.scoped,
          // Stopped with the instance: say so, rather than leave the job `running` for ever.
          Effect.onInterrupt(() =>
            repo.finish(id, { status: "failed", result: null, error: "the instance stopped before the job finished: ask again" }).pipe(Effect.ignore)
          ),
          Effect.catchAllCause((cause) => Effect.logError(`job ${id} could not be recorded`, cause)),
          Effect.annotateLogs({ service: "Jobs", job: id })
        )
        yield* FiberSet.run(running, run)
        return id
      })

    const checkStream = (stream: StreamKey) => {
      const streams = configuredStreams(config).map(streamName)
      const name = streamName(stream)
      return streams.includes(name) ? Effect.succeed(name) : Effect.fail(new NotAStream({ stream: name, streams }))
    }

    /** A sync pass (from the watermark) or, with `full`, the whole history asked again; answered by the stream's owner. */
    const sync = (stream: { readonly symbol: string; readonly timeframe: Timeframe }, full: boolean) =>
      Effect.gen(function* () {
        const name = yield* checkStream(stream)
        const entity = client(streamEntityId(name))
        const now = yield* Clock.currentTimeMillis
        return yield* submit(full ? "full_sync" : "sync", stream, full ? entity.Backfill({ from: historyStart(config, now), to: now }) : entity.SyncNow())
      })

    /** Asks the vendor again for the range's open gaps, on this instance. */
    const fillGaps = (range: GapRange) => submit("gap_fill", range, gaps.fill(range))

    /** Compares a symbol's rollups with a fresh aggregation of its M1 bars and rebuilds what differs, on this instance. */
    const verify = (request: VerifyRequest) =>
      submit("verify", { symbol: request.symbol, timeframe: Option.getOrElse(request.timeframe, () => "M1" as const) }, rollups.verify(request))

    /** Sends Retry to a failed stream's owner (not a job: a failed loop answers at once, with its new state). */
    const retry = (stream: StreamKey) =>
      Effect.flatMap(checkStream(stream), (name) =>
        client(streamEntityId(name))
          .Retry()
          .pipe(Effect.mapError((e) => (e instanceof StreamRequestError ? e : new StreamRequestError({ stream: name, message: describeError(e) }))))
      )

    return { sync, fillGaps, verify, retry, get: repo.get } as const
  })
}) {}
