import { SqlClient } from "@effect/sql"
import { Data, Effect, Either } from "effect"
import type { DatabaseFlavourSetting } from "../config.ts"

/** Which kind of store the schema was built for: hypertables and continuous aggregates, or plain tables. */
export type Flavour = "timescale" | "plain"

/** What the database says about TimescaleDB, read before anything is created. */
export interface FlavourProbe {
  /** The embedded database loads TimescaleDB itself (PGlite has no shared_preload_libraries). */
  readonly embedded: boolean
  /** The extension's files are on the server (`pg_available_extensions`). */
  readonly installed: boolean
  /** `CREATE EXTENSION timescaledb` has already run in this database. */
  readonly created: boolean
  /** The server's `shared_preload_libraries`, as it reports it. */
  readonly preload: string
}

/** The flavour this database cannot have: one line a person can act on. */
export class FlavourRefused extends Data.TaggedError("FlavourRefused")<{ readonly message: string }> {}

export interface FlavourChoice {
  readonly flavour: Flavour
  /** Why, in a few words, for the start-up log line. */
  readonly reason: string
}

const preloaded = (probe: FlavourProbe) => probe.preload.split(",").some((library) => library.trim().replace(/^"|"$/g, "") === "timescaledb")

/** Why TimescaleDB cannot be used here, or null when it can. */
const unloadable = (probe: FlavourProbe): string | null => {
  if (probe.embedded) return null
  if (!probe.installed) return "the timescaledb extension is not installed on this server"
  if (!preloaded(probe)) return `timescaledb is installed but not preloaded (shared_preload_libraries = '${probe.preload}')`
  return null
}

const refuseUnloadable = (why: string, recorded: boolean) =>
  new FlavourRefused({
    message:
      `TimescaleDB cannot be loaded: ${why}. Add timescaledb to shared_preload_libraries in postgresql.conf and restart PostgreSQL` +
      (recorded ? " (this database was created with TimescaleDB and needs it)" : ", or set DATABASE_FLAVOUR=plain")
  })

/**
 * The flavour to migrate with. A database keeps the flavour recorded by its first migration: asking for the
 * other one is refused rather than half-migrating it. A new database gets what was asked, or with `auto`
 * TimescaleDB when the server can load it and plain tables otherwise.
 */
export const chooseFlavour = (input: {
  readonly requested: DatabaseFlavourSetting
  readonly recorded: Flavour | null
  readonly probe: FlavourProbe
}): Either.Either<FlavourChoice, FlavourRefused> => {
  const { requested, recorded, probe } = input
  const why = unloadable(probe)
  if (recorded !== null) {
    if (requested !== "auto" && requested !== recorded) {
      return Either.left(
        new FlavourRefused({
          message: `this database was created as ${recorded}; DATABASE_FLAVOUR=${requested} cannot change it (use a new database, or DATABASE_FLAVOUR=auto or ${recorded})`
        })
      )
    }
    if (recorded === "timescale" && why !== null) return Either.left(refuseUnloadable(why, true))
    return Either.right({ flavour: recorded, reason: "as recorded when this database was created" })
  }
  switch (requested) {
    case "plain":
      return Either.right({ flavour: "plain", reason: "DATABASE_FLAVOUR=plain" })
    case "timescale":
      return why === null ? Either.right({ flavour: "timescale", reason: "DATABASE_FLAVOUR=timescale" }) : Either.left(refuseUnloadable(why, false))
    case "auto":
      return why === null
        ? Either.right({ flavour: "timescale", reason: probe.embedded ? "the embedded database loads TimescaleDB" : "TimescaleDB is preloaded on this server" })
        : Either.right({ flavour: "plain", reason: `${why}: plain tables, rollups refreshed by candlekeep` })
  }
}

/** Reads what the database says about TimescaleDB. */
export const probeFlavour = (embedded: boolean) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ installed: boolean; created: boolean; preload: string | null }>`
      SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AS installed,
             EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') AS created,
             current_setting('shared_preload_libraries', true) AS preload`
    return { embedded, installed: row?.installed ?? false, created: row?.created ?? false, preload: row?.preload ?? "" } satisfies FlavourProbe
  })
