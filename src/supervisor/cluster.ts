import { RunnerAddress, SingleRunner } from "@effect/cluster"
import { BunClusterSocket } from "@effect/platform-bun"
import { Data, Duration, Effect, Layer, Option } from "effect"
import { AppConfig } from "../config.ts"

/**
 * Where streams run. Embedded database: one instance, `SingleRunner` with in-memory runner storage. Server
 * database: runners share shard locks in PostgreSQL and talk over a socket; a stopped runner hands its shards
 * over at once, a killed one's locks expire after SHARD_LOCK_EXPIRATION_SECONDS (refreshed every
 * SHARD_LOCK_REFRESH_SECONDS), so its streams restart elsewhere within about that long.
 */
export const ClusterLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) => {
    const s = config.supervisor
    return Option.isNone(config.databaseUrl)
      ? SingleRunner.layer({ runnerStorage: "memory" })
      : BunClusterSocket.layer({
          storage: "sql",
          shardingConfig: {
            runnerAddress: Option.some(RunnerAddress.make(s.runnerHost, s.runnerPort)),
            shardLockRefreshInterval: Duration.seconds(s.shardLockRefreshSeconds),
            shardLockExpiration: Duration.seconds(s.shardLockExpirationSeconds)
          }
        }).pipe(
          // The socket library says only `Open`; a person needs to know which setting and which port.
          Layer.catchAll((error) =>
            Layer.fail<typeof error | RunnerPortUnavailable>(
              error._tag === "SocketServerError" && error.reason === "Open"
                ? new RunnerPortUnavailable({ port: s.runnerPort, reason: describeOpenFailure(error.cause) })
                : error
            )
          )
        )
  })
)

/** The runner's socket could not be opened: usually another instance on this machine already holds RUNNER_PORT. */
export class RunnerPortUnavailable extends Data.TaggedError("RunnerPortUnavailable")<{ readonly port: number; readonly reason: string }> {
  override get message() {
    return `cannot listen on RUNNER_PORT ${this.port} (${this.reason}): another candlekeep instance on this machine may hold it — give each instance its own RUNNER_PORT`
  }
}

const describeOpenFailure = (cause: unknown): string => {
  const code = typeof cause === "object" && cause !== null && "code" in cause ? String((cause as { code: unknown }).code) : null
  if (code !== null) return code === "EADDRINUSE" ? "EADDRINUSE: the port is in use" : code
  return cause instanceof Error ? cause.message : String(cause)
}

/** How this instance names itself in `sync_state.owner`: its runner address, or "embedded" for the single runner. */
export const runnerName = Effect.map(AppConfig, (config) =>
  Option.isNone(config.databaseUrl) ? "embedded" : `${config.supervisor.runnerHost}:${config.supervisor.runnerPort}`
)
