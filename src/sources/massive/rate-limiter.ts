import { Clock, Deferred, Effect, FiberId, Redacted } from "effect"

/** Admits one request at a time to a vendor budget; every caller with the same key shares it. */
export interface RateLimiter {
  /** Runs `request` once a concurrency permit and a place in the 60 s window are free. */
  readonly withPermit: <A, E, R>(request: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

export interface RateLimit {
  /** Requests allowed in any 60 s window; null = no cap. */
  readonly requestsPerMinute: number | null
  readonly maxConcurrency: number
}

const windowMillis = 60_000

/** A request's place in the window; it frees only 60 s after the request has finished. */
interface Slot {
  finishedAt: number | null
  readonly finished: Deferred.Deferred<void>
}

/**
 * A sliding-window log of the last N requests. A place counts from when its request *finished*, and an
 * unfinished one is never reused: the server sees a request no later than we see its answer, so N + 1
 * requests can never land inside one 60 s window on the server, whatever the latency.
 */
export const makeRateLimiter = (limit: RateLimit): RateLimiter => {
  const permits = Effect.unsafeMakeSemaphore(limit.maxConcurrency)
  const perMinute = limit.requestsPerMinute
  if (perMinute === null) return { withPermit: (request) => permits.withPermits(1)(request) }

  const log: Array<Slot> = []

  // Waits are interruptible; taking a place is one synchronous step, so a place is never taken and lost.
  const takePlace = (restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>): Effect.Effect<Slot> =>
    Effect.suspend(() => {
      const oldest = log.length < perMinute ? undefined : log[0]
      if (oldest === undefined) return Effect.succeed(push())
      if (oldest.finishedAt === null) return restore(Deferred.await(oldest.finished)).pipe(Effect.zipRight(takePlace(restore)))
      const freeAt = oldest.finishedAt + windowMillis
      return Effect.flatMap(Clock.currentTimeMillis, (now) => {
        if (now < freeAt) return restore(Effect.sleep(freeAt - now)).pipe(Effect.zipRight(takePlace(restore)))
        // Re-read: another fiber may have taken this place while we read the clock.
        if (log[0] !== oldest) return takePlace(restore)
        log.shift()
        return Effect.succeed(push())
      })
    })

  const push = (): Slot => {
    const slot: Slot = { finishedAt: null, finished: Deferred.unsafeMake<void>(FiberId.none) }
    log.push(slot)
    return slot
  }

  const finish = (slot: Slot) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      slot.finishedAt = now
      return Deferred.succeed(slot.finished, undefined)
    })

  return {
    withPermit: (request) =>
      permits.withPermits(1)(
        Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(takePlace(restore), (slot) => restore(request).pipe(Effect.ensuring(finish(slot))))
        )
      )
  }
}

/** One limiter per API key for the whole process, so two clients (or streams) with one key share one budget. */
export class MassiveRateLimits extends Effect.Service<MassiveRateLimits>()("Massive/MassiveRateLimits", {
  sync: () => {
    const byKey = new Map<string, RateLimiter>()
    return {
      /** The key's limiter; the first caller's limits win, as one key has one plan. */
      forKey: (apiKey: Redacted.Redacted<string>, limit: RateLimit): Effect.Effect<RateLimiter> =>
        Effect.sync(() => {
          const key = Redacted.value(apiKey)
          const existing = byKey.get(key)
          if (existing !== undefined) return existing
          const limiter = makeRateLimiter(limit)
          byKey.set(key, limiter)
          return limiter
        })
    }
  }
}) {}
