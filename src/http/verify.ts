import { Effect, Option, Schema } from "effect"
import type { AppConfig } from "../config.ts"
import { rollupLevels, type RollupTimeframe } from "../store/rollups.ts"
import { Jobs } from "../supervisor/jobs.ts"
import type { Api } from "./api.ts"
import { BadRequest, NotFound } from "./errors.ts"
import { answer, JobAcceptedAnswer } from "./contract.ts"
import { accepted } from "./jobs.ts"
import { Instant, InstantMillis, Name, resolveSymbol } from "./params.ts"

const rollupTimeframes: ReadonlyArray<RollupTimeframe> = rollupLevels.map((level) => level.timeframe)

export const VerifyBody = Schema.Struct({
  symbol: Name,
  timeframe: Schema.optional(Name).annotations({ description: `one of ${rollupTimeframes.join(", ")}; default: every level (H4 and D1 are built from H1)` }),
  from: Schema.optional(Schema.Union(InstantMillis, Instant)).annotations({ description: "default: 1970-01-01" }),
  to: Schema.optional(Schema.Union(InstantMillis, Instant)).annotations({ description: "default: now" })
})

/** `POST /api/data/verify`: compare every rollup bucket with a fresh aggregation of the M1 bars, rebuild what differs (a job). */
export const verifyRoutes = (api: Api<Jobs | AppConfig>) => {
  api.route(
    {
      method: "post",
      path: "/api/data/verify",
      tag: "service",
      summary: "Compare a symbol's rollups (M5…H1) with a fresh aggregation of its M1 bars and rebuild the buckets that differ; answered at once with a job",
      access: "write",
      body: VerifyBody,
      responses: { 202: { ...JobAcceptedAnswer, description: "accepted; the job's result lists, per level, buckets, missing, extra, differing, rebuilt" }, 400: "a bad body", 404: "unknown symbol or timeframe" }
    },
    ({ body }, c) =>
      Effect.gen(function* () {
        const spec = yield* resolveSymbol(body.symbol)
        const timeframe = body.timeframe?.toUpperCase()
        if (timeframe !== undefined && !rollupTimeframes.includes(timeframe as RollupTimeframe)) {
          return yield* new NotFound({ field: "timeframe", message: `${body.timeframe} is not a rollup: verify checks ${rollupTimeframes.join(", ")}`, valid: rollupTimeframes })
        }
        const from = body.from ?? 0
        const to = body.to ?? Date.now()
        if (from >= to) return yield* new BadRequest({ field: "from", message: "from must be before to" })
        const id = yield* Jobs.use((jobs) =>
          jobs.verify({ symbol: spec.symbol, timeframe: Option.fromNullable(timeframe as RollupTimeframe | undefined), from, to })
        )
        return answer(c, JobAcceptedAnswer, accepted(id), 202)
      })
  )
}
