import { Effect, Option, Schema } from "effect"
import type { AppConfig } from "../config.ts"
import type { Job } from "../store/job-repo.ts"
import { Jobs } from "../supervisor/jobs.ts"
import type { Api } from "./api.ts"
import { NotFound } from "./errors.ts"
import { answer, JobAcceptedAnswer, JobAnswer } from "./contract.ts"
import { iso, Name, resolveStream, TimeframeName } from "./params.ts"

export const SyncBody = Schema.Struct({
  symbol: Name,
  timeframe: Schema.optionalWith(TimeframeName, { default: () => "M1" }),
  full_sync: Schema.optionalWith(Schema.Boolean, { default: () => false }).annotations({ description: "ask the whole history again (from BACKFILL_FROM), not just from the watermark" })
})

const JobId = Schema.Struct({ id: Schema.UUID.annotations({ message: () => "a job id is a UUID" }) })


export const renderJob = (job: Job) => ({
  id: job.id,
  kind: job.kind,
  symbol: job.symbol,
  timeframe: job.timeframe,
  status: job.status,
  progress: job.progress,
  result: job.result,
  error: job.error,
  instance: job.instance,
  created_at: iso(job.createdAt),
  started_at: iso(job.startedAt),
  finished_at: iso(job.finishedAt)
})

/** An accepted job: where to follow it. */
export const accepted = (id: string) => ({ job: { id, status: "queued" as const, url: `/api/data/jobs/${id}` } })

/** `POST /api/data/sync` (202 with a job, run by the stream's owner) and `GET /api/data/jobs/:id`. */
export const jobRoutes = (api: Api<Jobs | AppConfig>) => {
  api.route(
    {
      method: "post",
      path: "/api/data/sync",
      tag: "streams",
      summary: "Sync a stream now (or, with full_sync, ask its whole history again); answered at once with a job",
      access: "write",
      body: SyncBody,
      responses: { 202: JobAcceptedAnswer, 400: "a bad body", 404: "unknown symbol, timeframe, or not a configured stream" }
    },
    ({ body }, c) =>
      Effect.gen(function* () {
        const { spec, timeframe } = yield* resolveStream(body.symbol, body.timeframe)
        const id = yield* Jobs.use((jobs) => jobs.sync({ symbol: spec.symbol, timeframe }, body.full_sync))
        return answer(c, JobAcceptedAnswer, accepted(id), 202)
      })
  )
  api.route(
    {
      method: "get",
      path: "/api/data/jobs/:id",
      tag: "streams",
      summary: "A job's progress and result",
      access: "read",
      params: JobId,
      responses: { 200: JobAnswer, 400: "not a job id", 404: "no such job" }
    },
    ({ params }, c) =>
      Effect.gen(function* () {
        const job = yield* Jobs.use((jobs) => jobs.get(params.id))
        if (Option.isNone(job)) return yield* new NotFound({ field: "id", message: `no job ${params.id}` })
        return answer(c, JobAnswer, renderJob(job.value))
      })
  )
}
