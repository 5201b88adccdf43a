import { PgClient } from "@effect/sql-pg"
import { SqlClient } from "@effect/sql"
import { Effect, Layer, LogLevel, Logger, ManagedRuntime, Option, Redacted } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { AppConfig, type AppConfigShape } from "../../src/config.ts"
import { appLayer } from "../../src/app-layer.ts"

/** The three databases every store test runs on: embedded PGlite+TimescaleDB, and the server kept plain or with TimescaleDB. */
export type DatabaseKind = "embedded" | "plain" | "timescale"
export type ServerKind = Exclude<DatabaseKind, "embedded">

/** The admin connection used to create one throw-away database per suite. */
export const serverAdminUrl = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

const adminQuery = <A extends object = Record<string, unknown>>(statement: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    return yield* sql.unsafe<A>(statement)
  }).pipe(
    Effect.provide(PgClient.layer({ url: Redacted.make(serverAdminUrl), connectTimeout: "3 seconds" })),
    Effect.runPromise
  )

/** Whether the server suite can run here; in CI (REQUIRE_SERVER_DB=1) an absent server is a failure, not a skip. */
export const serverAvailable: boolean = await adminQuery("SELECT 1").then(
  () => true,
  () => false
)
/** Whether the server preloads TimescaleDB, so that a database on it can take the timescale flavour. */
export const serverHasTimescale: boolean =
  serverAvailable &&
  (await adminQuery<{ preload: string; installed: boolean }>(
    "SELECT current_setting('shared_preload_libraries') AS preload, EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AS installed"
  ).then(
    ([row]) => row !== undefined && row.installed && row.preload.includes("timescaledb"),
    () => false
  ))
export const requireServer = process.env.REQUIRE_SERVER_DB === "1"
/** The server flavours this run covers: both in CI; on a user's machine, what the server can do. */
export const serverKinds: ReadonlyArray<ServerKind> =
  requireServer ? ["plain", "timescale"] : serverAvailable ? (serverHasTimescale ? ["plain", "timescale"] : ["plain"]) : []
export const databaseKinds: ReadonlyArray<DatabaseKind> = ["embedded", ...serverKinds]
if (!serverAvailable) {
  console.log(
    requireServer
      ? `REQUIRE_SERVER_DB=1 but no PostgreSQL server answers at ${serverAdminUrl}: the server suite will fail`
      : `server suite skipped: no PostgreSQL server answers at ${serverAdminUrl} (set TEST_DATABASE_URL, or start one)`
  )
} else if (!serverHasTimescale) {
  console.log(
    requireServer
      ? `REQUIRE_SERVER_DB=1 but the server at ${serverAdminUrl} does not preload TimescaleDB: the timescale suite will fail`
      : `timescale server suite skipped: the server at ${serverAdminUrl} does not preload TimescaleDB (see the README's "Tests" section)`
  )
}

/** The application's layers over a fresh database of the given kind, quiet below warnings. */
export const storeLayer = (config: AppConfigShape) => appLayer(config).pipe(Layer.provideMerge(Logger.minimumLogLevel(LogLevel.Warning)))

export interface TestDatabase {
  readonly kind: DatabaseKind
  readonly config: AppConfigShape
  readonly runtime: ManagedRuntime.ManagedRuntime<Layer.Layer.Success<ReturnType<typeof storeLayer>>, unknown>
  readonly run: <A, E>(effect: Effect.Effect<A, E, Layer.Layer.Success<ReturnType<typeof storeLayer>>>) => Promise<A>
  /** Opens the same database again (a restart), for tests of what survives one. */
  readonly reopen: () => TestDatabase
  readonly close: () => Promise<void>
  readonly drop: () => Promise<void>
}

let counter = 0

/** A fresh, empty database: a temp dir for PGlite, or a new database on the server. */
export const createTestDatabase = async (kind: DatabaseKind, overrides: Partial<AppConfigShape> = {}): Promise<TestDatabase> => {
  const defaults = AppConfig.fixed(overrides)
  let config: AppConfigShape
  let drop: () => Promise<void>
  if (kind === "embedded") {
    const dataDir = mkdtempSync(join(tmpdir(), "candlekeep-test-"))
    config = { ...defaults, dataDir }
    drop = async () => rmSync(dataDir, { recursive: true, force: true })
  } else {
    const name = `candlekeep_test_${kind}_${process.pid}_${Date.now()}_${counter++}`
    await adminQuery(`CREATE DATABASE ${name}`)
    const url = new URL(serverAdminUrl)
    url.pathname = `/${name}`
    config = { ...defaults, databaseUrl: Option.some(Redacted.make(url.toString())), databaseFlavour: kind }
    drop = () => adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).then(() => undefined)
  }
  const open = (): TestDatabase => {
    const runtime = ManagedRuntime.make(storeLayer(config))
    return {
      kind,
      config,
      runtime,
      run: (effect) => runtime.runPromise(effect),
      reopen: open,
      close: () => runtime.dispose(),
      drop
    }
  }
  return open()
}

/** The settings a spawned `bun src/main.ts …` needs to open the same database with the same flavour. */
export const databaseEnv = (db: TestDatabase): Record<string, string> =>
  Option.match(db.config.databaseUrl, {
    onNone: () => ({ DATA_DIR: db.config.dataDir }),
    onSome: (url) => ({ DATABASE_URL: Redacted.value(url), DATABASE_FLAVOUR: db.config.databaseFlavour })
  })
