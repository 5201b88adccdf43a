import { Chunk, Clock, Effect, TestClock } from "effect"

/**
 * Moves the TestClock from one wake-up to the next while real I/O (a loopback fake, a database) runs in
 * between: time jumps only when some fiber sleeps on the clock, never past `horizon` ahead in one jump
 * (so request timeouts, set far beyond it, never fire). Stops when `done` holds or `limitMillis` of test
 * time has passed.
 */
export const advanceUntil = (done: () => boolean, options: { readonly limitMillis: number; readonly horizonMillis?: number }) =>
  Effect.gen(function* () {
    const start = yield* Clock.currentTimeMillis
    const horizon = options.horizonMillis ?? 600_000
    // Real I/O is given up to ~50k turns of the event loop between wake-ups before the wait is called off.
    let idleTurns = 0
    for (;;) {
      if (done()) return true
      const now = yield* Clock.currentTimeMillis
      if (now - start > options.limitMillis) return false
      const wakeUps = Chunk.toReadonlyArray(yield* TestClock.sleeps()).filter((at) => at - now <= horizon)
      if (wakeUps.length > 0) {
        idleTurns = 0
        yield* TestClock.setTime(Math.min(...wakeUps))
      } else if (++idleTurns > 50_000) return false
      else yield* Effect.async<void>((resume) => void setImmediate(() => resume(Effect.void)))
    }
  })
