import { RunnerAddress, SingleRunner } from "@effect/cluster"
import { BunClusterSocket } from "@effect/platform-bun"
import { Duration, Effect, Layer, Option } from "effect"
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
        })
  })
)

/** How this instance names itself in `sync_state.owner`: its runner address, or "embedded" for the single runner. */
export const runnerName = Effect.map(AppConfig, (config) =>
  Option.isNone(config.databaseUrl) ? "embedded" : `${config.supervisor.runnerHost}:${config.supervisor.runnerPort}`
)
