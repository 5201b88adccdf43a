import { Cause, Clock, Cron, Data, Deferred, Duration, Effect, Option, Queue, Random, Ref } from "effect"
import { AppConfig } from "../config.ts"
import { defaultSyncCron, streamName, type StreamKey } from "../domain/stream.ts"
import { Backfill, PlanLacksAsset, StreamFetchFailed, UnknownStreamSymbol, type RunReport } from "../pipeline/backfill.ts"
import { NotStreamOwner } from "../pipeline/ingest.ts"
import { isTransient } from "../sources/massive/errors.ts"
import { SyncRepo, type StreamStatus } from "../store/sync-repo.ts"
import { StreamEvents } from "./events.ts"
import { describeError } from "../store/database-error.ts"

/** Why a request to a stream was not carried out. */
export class StreamRequestFailed extends Data.TaggedError("StreamRequestFailed")<{ readonly stream: string; readonly message: string }> {}

/** What another part of the system (the Stream entity, the HTTP API) can ask of a running stream. */
export type StreamCommand =
  | { readonly _tag: "SyncNow"; readonly done: Deferred.Deferred<RunReport, StreamRequestFailed> }
  | { readonly _tag: "Backfill"; readonly from: number; readonly to: number; readonly done: Deferred.Deferred<RunReport, StreamRequestFailed> }
  | { readonly _tag: "Retry"; readonly done: Deferred.Deferred<StreamStatus, StreamRequestFailed> }

/** One mailbox per stream on this instance; the stream's loop is its only reader. */
export class StreamControl extends Effect.Service<StreamControl>()("Supervisor/StreamControl", {
  effect: Effect.gen(function* () {
    const mailboxes = yield* Ref.make(new Map<string, Queue.Queue<StreamCommand>>())
    // Streams whose loop runs on this instance right now: a command for any other would wait for nobody.
    const running = yield* Ref.make(new Set<string>())
    const register = (name: string) =>
      Effect.acquireRelease(
        Ref.update(running, (set) => new Set(set).add(name)),
        () => Ref.update(running, (set) => new Set([...set].filter((n) => n !== name)))
      )
    const mailbox = (name: string) =>
      Effect.gen(function* () {
        const known = (yield* Ref.get(mailboxes)).get(name)
        if (known) return known
        const created = yield* Queue.unbounded<StreamCommand>()
        yield* Ref.update(mailboxes, (map) => new Map(map).set(name, created))
        return created
      })
    /** Hands a command to the stream's loop and waits for its answer. */
    const send = <A>(name: string, make: (done: Deferred.Deferred<A, StreamRequestFailed>) => StreamCommand) =>
      Effect.gen(function* () {
        if (!(yield* Ref.get(running)).has(name)) {
          return yield* new StreamRequestFailed({ stream: name, message: `${name} does not run on this instance now (starting or moving): try again shortly` })
        }
        const done = yield* Deferred.make<A, StreamRequestFailed>()
        yield* Queue.offer(yield* mailbox(name), make(done))
        return yield* Deferred.await(done)
      })
    return { mailbox, send, register } as const
  })
}) {}

/** Restart delays after transient failures: 1 s doubling to 5 min, jittered ±20 %. */
export const restartDelay = (failures: number, jitter: number): Duration.Duration =>
  Duration.millis(Math.round(Math.min(300_000, 1_000 * 2 ** Math.max(0, failures - 1)) * (0.8 + 0.4 * jitter)))

type Outcome =
  | { readonly _tag: "ok"; readonly report: RunReport }
  | { readonly _tag: "permanent" | "transient"; readonly error: string }
  | { readonly _tag: "superseded"; readonly error: string }

/**
 * The self-healing loop of one stream: starting → backfilling → live; degraded while transient failures are
 * retried with capped, jittered backoff; failed on a permanent one, where it waits for Retry and never spins.
 * It handles every failure itself — nothing escapes (the cluster would turn it into a defect).
 */
export const runStreamLoop = (stream: StreamKey, owner: string) =>
  Effect.gen(function* () {
    const config = yield* AppConfig
    const backfill = yield* Backfill
    const syncRepo = yield* SyncRepo
    const events = yield* StreamEvents
    const control = yield* StreamControl
    const name = streamName(stream)
    const mailbox = yield* control.mailbox(name)
    yield* control.register(name)
    const cronText =
      stream.timeframe === "M1"
        ? Option.getOrElse(config.supervisor.syncCron, () => defaultSyncCron("M1", config.supervisor.syncDelaySeconds))
        : defaultSyncCron(stream.timeframe, config.supervisor.syncDelaySeconds)
    const cron = Cron.unsafeParse(cronText, "UTC")

    // Only starting claims the stream: a loop that lost it (see NotStreamOwner) must not take it back by reporting a state.
    const setStatus = (status: StreamStatus, error?: string) =>
      Effect.zipRight(
        syncRepo.setStatus(stream.symbol, stream.timeframe, status, status === "starting" ? owner : null).pipe(
          Effect.catchAllCause((cause) => Effect.logWarning(`could not record status ${status}`, cause))
        ),
        Effect.flatMap(events.now, (at) => events.publish({ type: "state", stream: name, status, at, ...(error === undefined ? {} : { error }) }))
      )

    const onProgress = backfillProgress(name, events)

    /** Runs one pass and says what kind of outcome it was; a defect counts as transient (the loop restarts). */
    const attempt = (run: Effect.Effect<RunReport, unknown>) =>
      run.pipe(
        Effect.map((report): Outcome => ({ _tag: "ok", report })),
        Effect.catchAllCause((cause): Effect.Effect<Outcome> => {
          if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause) as never
          const failure = Cause.failureOption(cause)
          const error = Option.match(failure, {
            onNone: () => Cause.pretty(cause).split("\n")[0] ?? "defect",
            onSome: describeError
          })
          if (Option.exists(failure, (e) => e instanceof NotStreamOwner)) return Effect.succeed({ _tag: "superseded", error })
          const permanent = Option.match(failure, {
            onNone: () => false,
            // Database failures and anything unknown are worth a restart; a vendor's permanent answer is not.
            onSome: (e) => e instanceof UnknownStreamSymbol || e instanceof PlanLacksAsset || (e instanceof StreamFetchFailed && !isTransient(e.cause))
          })
          return Effect.succeed({ _tag: permanent ? "permanent" : "transient", error })
        })
      )

    const catchUp = backfill.run({ ...stream, purpose: "backfill", onProgress, owner })
    const sync = backfill.run({ ...stream, purpose: "sync", onProgress, owner })

    /** Sleeps until the next cron tick, or until a command arrives, whichever is first. */
    const nextWork = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const wait = Cron.next(cron, new Date(now)).getTime() - now
      return yield* Effect.raceFirst(
        Effect.as(Effect.sleep(Duration.millis(Math.max(0, wait))), Option.none<StreamCommand>()),
        Effect.map(Queue.take(mailbox), Option.some)
      )
    })

    const answerWhileFailed = (command: StreamCommand, error: string) =>
      command._tag === "Retry"
        ? Effect.void
        : Deferred.fail(command.done, new StreamRequestFailed({ stream: name, message: `${name} is failed (${error}): send Retry first` }))

    let failures = 0
    yield* setStatus("starting")
    let next: Option.Option<StreamCommand> | "catch-up" = "catch-up"
    for (;;) {
      const command: Option.Option<StreamCommand> = next === "catch-up" ? Option.none() : next
      if (next === "catch-up") yield* setStatus(failures > 0 ? "degraded" : "backfilling")
      const run: Effect.Effect<RunReport, unknown> = Option.match(command, {
        onNone: () => (next === "catch-up" ? catchUp : sync),
        onSome: (c) => (c._tag === "Backfill" ? backfill.run({ ...stream, from: c.from, to: c.to, purpose: "backfill", refetch: true, onProgress, owner }) : sync)
      })
      const outcome = yield* attempt(run)
      if (outcome._tag === "ok") {
        if (Option.isSome(command)) {
          const c = command.value
          if (c._tag === "Retry") yield* Deferred.succeed(c.done, "live")
          else yield* Deferred.succeed(c.done, outcome.report)
        }
        if (failures > 0 || next === "catch-up") yield* setStatus("live")
        failures = 0
        next = yield* nextWork
        continue
      }
      if (Option.isSome(command)) {
        const c = command.value
        const failed = new StreamRequestFailed({ stream: name, message: outcome.error })
        if (c._tag === "Retry") yield* Deferred.fail(c.done, failed)
        else yield* Deferred.fail(c.done, failed)
      }
      if (outcome._tag === "superseded") {
        // Another runner runs the stream now: this loop writes nothing more and waits for the cluster to stop it.
        yield* Effect.logWarning(`${outcome.error}; this loop stops working and waits for the cluster to end it`)
        for (;;) {
          const c = yield* Queue.take(mailbox)
          const refused = new StreamRequestFailed({ stream: name, message: outcome.error })
          if (c._tag === "Retry") yield* Deferred.fail(c.done, refused)
          else yield* Deferred.fail(c.done, refused)
        }
      }
      if (outcome._tag === "permanent") {
        yield* setStatus("failed", outcome.error)
        yield* Effect.logError(`${name} failed: ${outcome.error}; it waits for a Retry or a configuration change`)
        // Waits, without polling, until someone asks for a Retry; other requests are answered at once.
        for (;;) {
          const c = yield* Queue.take(mailbox)
          if (c._tag === "Retry") {
            yield* Deferred.succeed(c.done, "starting")
            break
          }
          yield* answerWhileFailed(c, outcome.error)
        }
        failures = 0
        yield* setStatus("starting")
        next = "catch-up"
        continue
      }
      failures += 1
      const delay = restartDelay(failures, yield* Random.next)
      yield* setStatus("degraded", outcome.error)
      yield* Effect.flatMap(events.now, (at) =>
        events.publish({ type: "restart", stream: name, at, delayMillis: Duration.toMillis(delay), error: outcome.error })
      )
      yield* Effect.logWarning(`${name} restarts in ${Duration.format(delay)} after failure ${failures}: ${outcome.error}`)
      yield* Effect.sleep(delay)
      next = "catch-up"
    }
  }).pipe(Effect.scoped, Effect.annotateLogs({ service: "Supervisor", stream: streamName(stream) }))

/** Publishes each stored page as an event. */
const backfillProgress = (name: string, events: StreamEvents) => (p: { fetched: number; stored: number; rejected: number; reached: number }) =>
  Effect.flatMap(events.now, (at) =>
    events.publish({ type: "page", stream: name, at, fetched: p.fetched, stored: p.stored, rejected: p.rejected, watermark: p.reached })
  )

/** Sends a command to a stream on this instance. */
export const sendToStream = {
  syncNow: (name: string) => StreamControl.use((c) => c.send<RunReport>(name, (done) => ({ _tag: "SyncNow", done }))),
  backfill: (name: string, from: number, to: number) =>
    StreamControl.use((c) => c.send<RunReport>(name, (done) => ({ _tag: "Backfill", from, to, done }))),
  retry: (name: string) => StreamControl.use((c) => c.send<StreamStatus>(name, (done) => ({ _tag: "Retry", done })))
}

