import { SqlClient } from "@effect/sql"
import { Effect, Option } from "effect"

export type JobKind = "sync" | "full_sync" | "gap_fill" | "verify"
export type JobStatus = "queued" | "running" | "succeeded" | "failed"

export interface Job {
  readonly id: string
  readonly kind: JobKind
  readonly symbol: string
  readonly timeframe: string
  readonly status: JobStatus
  readonly progress: unknown
  readonly result: unknown
  readonly error: string | null
  readonly instance: string
  readonly createdAt: number
  readonly startedAt: number | null
  readonly finishedAt: number | null
}

/** `jobs`: work asked for over HTTP, readable from any instance. */
export class JobRepo extends Effect.Service<JobRepo>()("Store/JobRepo", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    const create = (job: { readonly id: string; readonly kind: JobKind; readonly symbol: string; readonly timeframe: string; readonly instance: string }) =>
      sql`INSERT INTO jobs (id, kind, symbol, timeframe, instance) VALUES (${job.id}, ${job.kind}, ${job.symbol}, ${job.timeframe}, ${job.instance})`.pipe(
        Effect.asVoid
      )

    const start = (id: string) => sql`UPDATE jobs SET status = 'running', started_at = now() WHERE id = ${id}`.pipe(Effect.asVoid)

    const progress = (id: string, progress: unknown) =>
      sql`UPDATE jobs SET progress = ${JSON.stringify(progress)}::jsonb WHERE id = ${id} AND status = 'running'`.pipe(Effect.asVoid)

    const finish = (id: string, outcome: { readonly status: "succeeded" | "failed"; readonly result: unknown; readonly error: string | null }) =>
      sql`UPDATE jobs SET status = ${outcome.status}, result = ${outcome.result === null ? null : JSON.stringify(outcome.result)}::jsonb,
            error = ${outcome.error}, finished_at = now() WHERE id = ${id}`.pipe(Effect.asVoid)

    const get = (id: string) =>
      sql<{
        id: string
        kind: JobKind
        symbol: string
        timeframe: string
        status: JobStatus
        progress: unknown
        result: unknown
        error: string | null
        instance: string
        created_at: Date
        started_at: Date | null
        finished_at: Date | null
      }>`SELECT id::text AS id, kind, symbol, timeframe, status, progress, result, error, instance, created_at, started_at, finished_at
         FROM jobs WHERE id = ${id}`.pipe(
        Effect.map((rows) =>
          Option.map(
            Option.fromNullable(rows[0]),
            (row): Job => ({
              id: row.id,
              kind: row.kind,
              symbol: row.symbol,
              timeframe: row.timeframe,
              status: row.status,
              progress: parseJson(row.progress),
              result: parseJson(row.result),
              error: row.error,
              instance: row.instance,
              createdAt: row.created_at.getTime(),
              startedAt: row.started_at?.getTime() ?? null,
              finishedAt: row.finished_at?.getTime() ?? null
            })
          )
        )
      )

    return { create, start, progress, finish, get } as const
  })
}) {}

/** node-postgres parses jsonb; PGlite may hand it back as text. */
const parseJson = (value: unknown): unknown => (typeof value === "string" ? JSON.parse(value) : value)
