import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"

/** A fresh database named `name` next to the one `adminUrl` names, dropped when the scope closes; its URL. */
export const benchDatabase = (adminUrl: string, name: string) =>
  Effect.gen(function* () {
    const admin = PgClient.layer({ url: Redacted.make(adminUrl), applicationName: "candlekeep-bench", connectTimeout: "5 seconds" })
    const onAdmin = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => Effect.provide(effect, admin)
    yield* Effect.acquireRelease(
      onAdmin(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`CREATE DATABASE ${name}`))),
      () =>
        onAdmin(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))).pipe(
          Effect.catchAll((error) => Effect.sync(() => console.error(`could not drop ${name}: ${error.message}`)))
        )
    )
    const url = new URL(adminUrl)
    url.pathname = `/${name}`
    return url.toString()
  })
