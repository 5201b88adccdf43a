import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
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

    /** The unfinished job identical to this one (same kind, stream and arguments), if there is one. */
    const unfinished = (job: { readonly kind: JobKind; readonly symbol: string; readonly timeframe: string; readonly args: string }) =>
      sql<{ id: string; status: JobStatus }>`SELECT id::text AS id, status FROM jobs
        WHERE kind = ${job.kind} AND symbol = ${job.symbol} AND timeframe = ${job.timeframe} AND args = ${job.args} AND status IN ('queued', 'running')`.pipe(
        Effect.map((rows) => Option.fromNullable(rows[0]))
      )

    /**
     * Records a job, unless an identical one is queued or running: then that one's id comes back with
     * `merged: true`. The partial unique index on unfinished jobs makes this hold between instances too.
     */
    const create = (job: {
      readonly id: string
      readonly kind: JobKind
      readonly symbol: string
      readonly timeframe: string
      readonly args: string
      readonly instance: string
    }): Effect.Effect<{ readonly id: string; readonly status: JobStatus; readonly merged: boolean }, SqlError> =>
      Effect.gen(function* () {
        // The identical job may finish between the insert that conflicts and the look-up: then try again.
        for (let attempt = 0; ; attempt++) {
          const inserted = yield* sql<{ id: string }>`
            INSERT INTO jobs (id, kind, symbol, timeframe, args, instance) VALUES (${job.id}, ${job.kind}, ${job.symbol}, ${job.timeframe}, ${job.args}, ${job.instance})
            ON CONFLICT (kind, symbol, timeframe, args) WHERE status IN ('queued', 'running') DO NOTHING
            RETURNING id::text AS id`
          if (inserted.length > 0) return { id: job.id, status: "queued" as const, merged: false }
          const existing = yield* unfinished(job)
          if (Option.isSome(existing)) return { ...existing.value, merged: true }
          if (attempt >= 3) return yield* Effect.die(new Error(`job ${job.kind} ${job.symbol} ${job.timeframe} could neither be recorded nor found`))
        }
      })

    /** Jobs queued or running on every instance. */
    const unfinishedCount = sql<{ n: number }>`SELECT count(*)::int AS n FROM jobs WHERE status IN ('queued', 'running')`.pipe(
      Effect.map((rows) => rows[0]?.n ?? 0)
    )

    /** At start-up: what this instance left unfinished when it last stopped (killed, or crashed) is failed, so it merges no request. */
    const abandon = (instance: string) =>
      sql`UPDATE jobs SET status = 'failed', error = 'the instance stopped before the job finished: ask again', finished_at = now()
          WHERE instance = ${instance} AND status IN ('queued', 'running')`.pipe(Effect.asVoid)

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

    return { create, unfinished, unfinishedCount, abandon, start, progress, finish, get } as const
  })
}) {}

/** node-postgres parses jsonb; PGlite may hand it back as text. */
const parseJson = (value: unknown): unknown => (typeof value === "string" ? JSON.parse(value) : value)
