import { SqlClient } from "@effect/sql"
import { Data, Effect } from "effect"
import { createHash } from "node:crypto"
import type { DatabaseFlavourSetting } from "../config.ts"
import { advisoryLocks, withAdvisoryLock } from "./advisory-lock.ts"
import { chooseFlavour, probeFlavour, type Flavour } from "./flavour.ts"
import core from "../../sql/0001_core.sql" with { type: "text" }
import hypertables from "../../sql/0002_hypertables.timescale.sql" with { type: "text" }
import rollupsPlain from "../../sql/0003_rollups.plain.sql" with { type: "text" }
import rollupsTimescale from "../../sql/0003_rollups.timescale.sql" with { type: "text" }
import jobs from "../../sql/0004_jobs.sql" with { type: "text" }
import broker from "../../sql/0005_broker.sql" with { type: "text" }
import rollupsOwed from "../../sql/0006_rollups_owed.sql" with { type: "text" }
import verifyJobs from "../../sql/0010_verify_jobs.sql" with { type: "text" }
import rateBudget from "../../sql/0009_rate_budget.sql" with { type: "text" }
import historyFrom from "../../sql/0007_history_from.sql" with { type: "text" }
import jobMerging from "../../sql/0014_job_merging.sql" with { type: "text" }

export type { Flavour } from "./flavour.ts"

/** A migration: one file for every flavour, or one per flavour (a flavour without a file skips it). */
export interface Migration {
  readonly name: string
  readonly files: Partial<Record<Flavour | "any", { readonly file: string; readonly text: string }>>
}

/** Every migration, in order. A test checks this list against the files in sql/. */
export const migrations: ReadonlyArray<Migration> = [
  { name: "0001_core", files: { any: { file: "0001_core.sql", text: core } } },
  { name: "0002_hypertables", files: { timescale: { file: "0002_hypertables.timescale.sql", text: hypertables } } },
  {
    name: "0003_rollups",
    files: {
      timescale: { file: "0003_rollups.timescale.sql", text: rollupsTimescale },
      plain: { file: "0003_rollups.plain.sql", text: rollupsPlain }
    }
  },
  { name: "0004_jobs", files: { any: { file: "0004_jobs.sql", text: jobs } } },
  { name: "0005_broker", files: { any: { file: "0005_broker.sql", text: broker } } },
  { name: "0006_rollups_owed", files: { any: { file: "0006_rollups_owed.sql", text: rollupsOwed } } },
  { name: "0007_history_from", files: { any: { file: "0007_history_from.sql", text: historyFrom } } },
  { name: "0009_rate_budget", files: { any: { file: "0009_rate_budget.sql", text: rateBudget } } },
  { name: "0010_verify_jobs", files: { any: { file: "0010_verify_jobs.sql", text: verifyJobs } } },
  { name: "0014_job_merging", files: { any: { file: "0014_job_merging.sql", text: jobMerging } } }
]

export class MigrationTampered extends Data.TaggedError("MigrationTampered")<{
  readonly file: string
  readonly applied: string
  readonly found: string
}> {
  override get message() {
    return `migration ${this.file} was changed after it was applied (checksum ${this.applied.slice(0, 12)} in the database, ${this.found.slice(0, 12)} on disk): restore the file and add the change as a new migration`
  }
}

export const checksum = (text: string): string => createHash("sha256").update(text).digest("hex")

export interface MigrationReport {
  readonly flavour: Flavour
  /** Why this flavour (recorded at creation, asked for, or what the server can load). */
  readonly flavourReason: string
  readonly applied: ReadonlyArray<string>
  readonly level: string
}

export interface MigrateOptions {
  readonly requested: DatabaseFlavourSetting
  /** The embedded database, which loads TimescaleDB itself. */
  readonly embedded: boolean
}

/**
 * Applies what is not yet applied, each file with its record in one transaction, and refuses to start
 * when an applied file has changed. The flavour is the one recorded by the first run; a new database gets
 * the one asked for, checked against what the server can load before anything is created (see flavour.ts).
 */
export const migrate = (options: MigrateOptions, list: ReadonlyArray<Migration> = migrations) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE IF NOT EXISTS schema_migrations (
      name text PRIMARY KEY,
      file text NOT NULL,
      flavour text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`
    const done = yield* sql<{ name: string; file: string; flavour: Flavour; checksum: string }>`
      SELECT name, file, flavour, checksum FROM schema_migrations ORDER BY name`
    const choice = yield* chooseFlavour({ requested: options.requested, recorded: done[0]?.flavour ?? null, probe: yield* probeFlavour(options.embedded) })
    const flavour = choice.flavour
    yield* Effect.logInfo(`database flavour ${flavour}: ${choice.reason}`)

    const applied: Array<string> = []
    for (const migration of list) {
      const chosen = migration.files[flavour] ?? migration.files.any
      const record = done.find((row) => row.name === migration.name)
      if (record) {
        // A migration recorded as skipped has file "-" and the checksum of nothing.
        const onDisk = record.file === "-" ? "" : Object.values(migration.files).find((f) => f.file === record.file)?.text
        const found = onDisk === undefined ? "missing" : checksum(onDisk)
        if (found !== record.checksum) {
          return yield* new MigrationTampered({ file: record.file, applied: record.checksum, found })
        }
        continue
      }
      const file = chosen?.file ?? "-"
      const text = chosen?.text ?? ""
      yield* sql.withTransaction(
        Effect.gen(function* () {
          if (chosen) yield* sql.unsafe(text)
          yield* sql`INSERT INTO schema_migrations (name, file, flavour, checksum)
                     VALUES (${migration.name}, ${file}, ${flavour}, ${checksum(text)})`
        })
      )
      yield* Effect.logInfo(chosen ? `applied migration ${file}` : `migration ${migration.name} has no ${flavour} file: recorded as skipped`)
      applied.push(migration.name)
    }
    return { flavour, flavourReason: choice.reason, applied, level: list.at(-1)?.name ?? "none" } satisfies MigrationReport
  }).pipe((run) => withAdvisoryLock(advisoryLocks.migrate, options.embedded, run), Effect.withSpan("Store.migrate"))
