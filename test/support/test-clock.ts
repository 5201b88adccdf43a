import { Chunk, Clock, Effect, TestClock } from "effect"

/**
 * Moves the TestClock from one wake-up to the next while real I/O (a loopback fake, a database) runs in
 * between: time jumps only when some fiber sleeps on the clock, never past `horizon` ahead in one jump
 * (so request timeouts, set far beyond it, never fire). Stops when `done` holds or `limitMillis` of test
 * time has passed.
 */
/** How long real I/O may take, in wall-clock time, while the TestClock waits for a fiber to sleep. */
export const realIoBudgetMillis = 30_000

/** Lets real I/O run (without moving the clock) until some fiber sleeps on the TestClock until `wakeAt`; dies with `what` after `realIoBudgetMillis`. */
export const untilAsleepAt = (wakeAt: number, what: string) =>
  Effect.gen(function* () {
    const started = performance.now()
    for (;;) {
      if (Chunk.toReadonlyArray(yield* TestClock.sleeps()).includes(wakeAt)) return
      if (performance.now() - started > realIoBudgetMillis) return yield* Effect.die(new Error(`${what} did not go to sleep until ${new Date(wakeAt).toISOString()}`))
      yield* Effect.async<void>((resume) => void setImmediate(() => resume(Effect.void)))
    }
  })

export const advanceUntil = (done: () => boolean, options: { readonly limitMillis: number; readonly horizonMillis?: number }) =>
  Effect.gen(function* () {
    const start = yield* Clock.currentTimeMillis
    const horizon = options.horizonMillis ?? 600_000
    // Real I/O is given up to 30 s of wall-clock time between wake-ups before the wait is called off: counted in
    // turns of the event loop instead, a database slowed by a busy machine ran out of them (CI on timescale).
    let idleSince = performance.now()
    for (;;) {
      if (done()) return true
      const now = yield* Clock.currentTimeMillis
      if (now - start > options.limitMillis) return false
      const wakeUps = Chunk.toReadonlyArray(yield* TestClock.sleeps()).filter((at) => at - now <= horizon)
      if (wakeUps.length > 0) {
        idleSince = performance.now()
        yield* TestClock.setTime(Math.min(...wakeUps))
      } else if (performance.now() - idleSince > realIoBudgetMillis) return false
      else yield* Effect.async<void>((resume) => void setImmediate(() => resume(Effect.void)))
    }
  })
