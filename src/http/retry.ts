import { Effect, Option, Schema } from "effect"
import { streamName } from "../domain/stream.ts"
import { SyncRepo } from "../store/sync-repo.ts"
import { Jobs, NotAStream } from "../supervisor/jobs.ts"
import { AppConfig, configuredStreams } from "../config.ts"
import type { Api } from "./api.ts"
import { answer, RetryAnswer } from "./contract.ts"
import { Conflict } from "./errors.ts"
import { Name, resolveStream, TimeframeName } from "./params.ts"

export const RetryBody = Schema.Struct({
  symbol: Name,
  timeframe: Schema.optionalWith(TimeframeName, { default: () => "M1" })
})

/**
 * `POST /api/data/retry`: a `failed` stream starts again (it waits for this after a permanent failure). Any
 * other state is a 409 naming it: a degraded stream already retries by itself, a live one has nothing to retry.
 */
export const retryRoutes = (api: Api<Jobs | SyncRepo | AppConfig>) =>
  api.route(
    {
      method: "post",
      path: "/api/data/retry",
      tag: "streams",
      summary: "Start a failed stream again; answers with its new state",
      access: "write",
      body: RetryBody,
      responses: { 200: RetryAnswer, 400: "a bad body", 404: "unknown symbol, timeframe, or not a configured stream", 409: "the stream is not failed", 503: "the stream's owner could not be reached" }
    },
    ({ body }, c) =>
      Effect.gen(function* () {
        const { spec, timeframe } = yield* resolveStream(body.symbol, body.timeframe)
        const name = streamName({ symbol: spec.symbol, timeframe })
        const streams = configuredStreams(yield* AppConfig).map(streamName)
        if (!streams.includes(name)) return yield* new NotAStream({ stream: name, streams })
        const state = yield* SyncRepo.use((r) => r.state(spec.symbol, timeframe))
        const status = Option.match(state, { onNone: () => "not_started", onSome: (s) => s.status })
        if (status !== "failed") return yield* new Conflict({ field: "symbol", message: `${name} is ${status}, not failed: only a failed stream waits for a retry` })
        const next = yield* Jobs.use((jobs) => jobs.retry({ symbol: spec.symbol, timeframe }))
        return answer(c, RetryAnswer, { stream: name, state: next })
      })
  )
