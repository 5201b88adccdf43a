import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Option, Redacted } from "effect"
import { AppConfig } from "../config.ts"
import { layerEmbedded } from "./embedded.ts"
import { migrate, type Flavour } from "./migrations.ts"

export type DatabaseKind = "embedded" | "server"

/** What the store runs on, for health checks and for the queries that differ by flavour. */
export interface DatabaseInfoShape {
  readonly kind: DatabaseKind
  readonly flavour: Flavour
  readonly flavourReason: string
  readonly postgresVersion: string
  readonly timescaleVersion: string | null
  readonly migrationLevel: string
  readonly location: string
}

export class DatabaseInfo extends Effect.Tag("Store/DatabaseInfo")<DatabaseInfo, DatabaseInfoShape>() {}

/** The SqlClient for the configured database: embedded PGlite when DATABASE_URL is unset, else the server. */
export const SqlLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) =>
    Option.match(config.databaseUrl, {
      onNone: () => layerEmbedded(config.dataDir),
      onSome: (url) =>
        PgClient.layer({ url, applicationName: "candlekeep", connectTimeout: "10 seconds" }) as Layer.Layer<
          SqlClient.SqlClient,
          Layer.Layer.Error<ReturnType<typeof PgClient.layer>>
        >
    })
  )
)

/** Runs the migrations once at start-up and describes the database they left. */
export const DatabaseInfoLive = Layer.effect(
  DatabaseInfo,
  Effect.gen(function* () {
    const config = yield* AppConfig
    const sql = yield* SqlClient.SqlClient
    const report = yield* migrate({ requested: config.databaseFlavour, embedded: Option.isNone(config.databaseUrl) })
    const [versions] = yield* sql<{ postgres: string; timescale: string | null }>`
      SELECT current_setting('server_version') AS postgres,
             (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS timescale`
    return {
      kind: Option.isSome(config.databaseUrl) ? "server" : "embedded",
      flavour: report.flavour,
      flavourReason: report.flavourReason,
      postgresVersion: versions?.postgres ?? "unknown",
      timescaleVersion: versions?.timescale ?? null,
      migrationLevel: report.level,
      location: Option.match(config.databaseUrl, { onNone: () => config.dataDir, onSome: redactUrl })
    } satisfies DatabaseInfoShape
  })
)

/** postgres://user:secret@host/db → postgres://user:***@host/db */
export const redactUrl = (url: Redacted.Redacted<string>): string => {
  try {
    const parsed = new URL(Redacted.value(url))
    if (parsed.password) parsed.password = "***"
    return parsed.toString()
  } catch {
    return "<unparseable url>"
  }
}

export const DatabaseLive = DatabaseInfoLive.pipe(Layer.provideMerge(SqlLive))
