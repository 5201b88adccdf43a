import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"

/** Advisory lock keys: any fixed numbers, the same in every instance. */
export const advisoryLocks = {
  /** One migration run at a time: two instances starting on a new database would otherwise both create its tables. */
  migrate: 0x636b4d31,
  /** One rollup payer at a time per database. */
  rollups: 0x636b5231
} as const

/**
 * Runs `body` while this process holds a session-level advisory lock on a connection of its own, so other
 * instances on the same server wait for it; PostgreSQL releases it if the process dies. The body's own
 * statements use the pool as usual. The embedded database has one process and one connection: no lock.
 */
export const withAdvisoryLock = <A, E, R>(
  key: number,
  embedded: boolean,
  body: Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError, R | SqlClient.SqlClient> =>
  embedded
    ? body
    : Effect.scoped(
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const connection = yield* sql.reserve
          yield* Effect.acquireRelease(connection.executeUnprepared("SELECT pg_advisory_lock($1)", [key], undefined), () =>
            Effect.ignore(connection.executeUnprepared("SELECT pg_advisory_unlock($1)", [key], undefined))
          )
          return yield* body
        })
      )
