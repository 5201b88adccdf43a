import { Effect, Layer, Option } from "effect"
import { AppConfig } from "../config.ts"

/** The exit code of a runner that woke from a stall long enough to have lost its streams. */
export const stalledExitCode = 75

/**
 * A runner on a server database whose event loop stood still long enough for its shard-lock session to idle past
 * SHARD_LOCK_SESSION_TIMEOUT_SECONDS (SIGSTOP, a stalled VM, a machine too loaded to run it) may have lost that
 * session, and its streams may already run elsewhere, while its own loops still believe they own them. The session's
 * last statement may be up to SHARD_LOCK_REFRESH_SECONDS older than the stall, so the limit is the timeout less that. It must not do one more request or
 * write: it exits at once on waking, before any other timer's work, and its restart joins the cluster afresh.
 * A plain interval timer, not an Effect schedule, so it runs first among the timers due when the process resumes.
 */
export const StallGuardLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const config = yield* AppConfig
    if (Option.isNone(config.databaseUrl)) return
    const { shardLockSessionTimeoutSeconds, shardLockRefreshSeconds } = config.supervisor
    const limitMillis = Math.max(1, shardLockSessionTimeoutSeconds - shardLockRefreshSeconds) * 1000
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        let last = performance.now()
        return setInterval(() => {
          const now = performance.now()
          const stalled = now - last
          last = now
          if (stalled <= limitMillis) return
          process.stderr.write(
            `candlekeep: this runner stood still for ${Math.round(stalled / 1000)} s, long enough for PostgreSQL to end its ` +
              `shard-lock session (SHARD_LOCK_SESSION_TIMEOUT_SECONDS ${shardLockSessionTimeoutSeconds}): its streams may run elsewhere ` +
              `now; exiting so that none runs twice (restart it)\n`
          )
          process.exit(stalledExitCode)
        }, 1000)
      }),
      (timer) => Effect.sync(() => clearInterval(timer))
    )
  })
)
