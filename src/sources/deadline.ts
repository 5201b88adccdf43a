import { Clock, Effect, FiberRef } from "effect"

/**
 * When the work on this fiber must be answered (Unix ms on the Effect clock), or null for work nobody waits
 * on (a stream's loop, a job). An HTTP request sets it from REQUEST_TIMEOUT_SECONDS; the outside-API clients
 * read it so that their timeouts and retries end in time for the request to answer with the upstream's reason,
 * rather than being cut off with none. Forked fibers inherit it: background work started by a request clears it.
 */
export const currentDeadline = FiberRef.unsafeMake<number | null>(null)

/** Runs `effect` with a deadline `millis` from now. */
export const withDeadline =
  (millis: number) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.locally(effect, currentDeadline, now + millis))

/** Runs `effect` as background work: no deadline, whoever started it. */
export const withoutDeadline = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => Effect.locally(effect, currentDeadline, null)

/** Milliseconds left before the deadline (never below 0), or null when there is none. */
export const timeLeft: Effect.Effect<number | null> = Effect.flatMap(FiberRef.get(currentDeadline), (deadline) =>
  deadline === null ? Effect.succeed(null) : Effect.map(Clock.currentTimeMillis, (now) => Math.max(0, deadline - now))
)

/** One request's timeout: the client's own, or what is left of the deadline when that is sooner. */
export const attemptTimeout = (timeoutMillis: number): Effect.Effect<number> =>
  Effect.map(timeLeft, (left) => (left === null ? timeoutMillis : Math.max(1, Math.min(timeoutMillis, left))))

/** Least time worth starting another try with, after a retry's wait. */
const minimumAttemptMillis = 250

/** Whether waiting `delayMillis` and trying again still ends before the deadline (always, without one). */
export const retryFits = (delayMillis: number): Effect.Effect<boolean> =>
  Effect.map(timeLeft, (left) => left === null || delayMillis + minimumAttemptMillis <= left)
