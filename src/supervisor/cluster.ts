import { RunnerAddress, SingleRunner } from "@effect/cluster"
import { SqlClient } from "@effect/sql"
import { BunClusterSocket } from "@effect/platform-bun"
import { Data, Duration, Effect, Exit, Layer, Option, Scope } from "effect"
import { AppConfig } from "../config.ts"
import { advisoryLocks } from "../store/advisory-lock.ts"

/**
 * The SqlClient the cluster's shard-lock storage uses: the same pool, but every connection it reserves (the one
 * that holds the shard locks, as PostgreSQL advisory locks) gets `idle_session_timeout`. A runner refreshes its
 * locks every SHARD_LOCK_REFRESH_SECONDS; one that stays silent longer than the timeout is frozen (SIGSTOP, a
 * stalled VM, a partition) and PostgreSQL ends its session, which releases its locks so another runner can take
 * its streams. TCP keepalive cannot tell: a frozen process's kernel still answers for it.
 */
const lockSessionClient = (sql: SqlClient.SqlClient, timeoutSeconds: number): SqlClient.SqlClient => {
  const millis = Math.round(timeoutSeconds * 1000)
  const reserve = Effect.tap(sql.reserve, (connection) =>
    Effect.acquireRelease(connection.executeRaw(`SET idle_session_timeout = ${millis}`, []), () =>
      // Back in the pool, the connection must not be ended for idling.
      Effect.ignore(connection.executeRaw("RESET idle_session_timeout", []).pipe(Effect.timeout("1 second")))
    )
  )
  const client: SqlClient.SqlClient = Object.assign(
    (...args: Parameters<SqlClient.SqlClient>) => sql(...args),
    sql,
    { reserve, withoutTransforms: () => client }
  )
  ;(client as { safe: unknown }).safe = client
  return client
}

/**
 * Builds `layer` while holding the migration lock: the cluster creates its own tables when it starts, and two
 * instances starting at once on a new database raced there (`duplicate key … pg_type_typname_nsp_index` for
 * cluster_migrations: one of them failed start-up, found by the soak). The lock is held for the build only.
 */
const builtOneAtATime = <A, E, R>(layer: Layer.Layer<A, E, R>) =>
  Layer.scopedContext(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const lockScope = yield* Scope.make()
      const connection = yield* Scope.extend(sql.reserve, lockScope)
      yield* connection.executeUnprepared("SELECT pg_advisory_lock($1)", [advisoryLocks.migrate], undefined)
      return yield* Layer.build(layer).pipe(
        Effect.ensuring(
          Effect.ignore(connection.executeUnprepared("SELECT pg_advisory_unlock($1)", [advisoryLocks.migrate], undefined)).pipe(
            Effect.zipRight(Scope.close(lockScope, Exit.void))
          )
        )
      )
    })
  )

/**
 * Where streams run. Embedded database: one instance, `SingleRunner` with in-memory runner storage. Server
 * database: runners share shard locks in PostgreSQL and talk over a socket; a stopped runner hands its shards
 * over at once, a killed one's locks expire after SHARD_LOCK_EXPIRATION_SECONDS (refreshed every
 * SHARD_LOCK_REFRESH_SECONDS), so its streams restart elsewhere within about that long; a frozen one's lock
 * session is ended by PostgreSQL after SHARD_LOCK_SESSION_TIMEOUT_SECONDS (see `lockSessionClient`), so the same.
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
          Layer.provide(Layer.effect(SqlClient.SqlClient, Effect.map(SqlClient.SqlClient, (sql) => lockSessionClient(sql, s.shardLockSessionTimeoutSeconds)))),
          builtOneAtATime,
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
