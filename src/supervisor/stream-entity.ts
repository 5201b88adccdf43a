import { Entity } from "@effect/cluster"
import { Rpc } from "@effect/rpc"
import { Effect, Schema } from "effect"
import type { RunReport } from "../pipeline/backfill.ts"
import { runnerName } from "./cluster.ts"
import { sendToStream } from "./stream-loop.ts"

/** A stream's entity id is its singleton's name, so both hash to one shard and live on one runner. */
export const streamEntityId = (name: string): string => `stream/${name}`

export class StreamRequestError extends Schema.TaggedError<StreamRequestError>()("StreamRequestError", {
  stream: Schema.String,
  message: Schema.String
}) {}

export const RunSummary = Schema.Struct({
  symbol: Schema.String,
  timeframe: Schema.String,
  from: Schema.Number,
  to: Schema.Number,
  upToDate: Schema.Boolean,
  fetched: Schema.Number,
  stored: Schema.Number,
  unchanged: Schema.Number,
  changed: Schema.Number,
  rejected: Schema.Number,
  pages: Schema.Number,
  requests: Schema.Number,
  retries: Schema.Number,
  /** The instance that ran it: the stream's owner, whichever instance was asked. */
  runner: Schema.String
})

/**
 * Requests for a stream, answered by whichever instance runs it: `SyncNow`, `Backfill {from, to}` (asks the
 * range again, whatever the watermark) and `Retry` (after `failed`).
 */
export const StreamEntity = Entity.make("Stream", [
  Rpc.make("SyncNow", { success: RunSummary, error: StreamRequestError }),
  Rpc.make("Backfill", { payload: { from: Schema.Number, to: Schema.Number }, success: RunSummary, error: StreamRequestError }),
  Rpc.make("Retry", { success: Schema.String, error: StreamRequestError })
])


/** Hands each message to the stream's loop on this instance (the one the cluster placed it on). */
export const StreamEntityLive = StreamEntity.toLayer(
  Effect.gen(function* () {
    const address = yield* Entity.CurrentAddress
    const runner = yield* runnerName
    const name = address.entityId.replace(/^stream\//, "")
    const summary = (report: RunReport): typeof RunSummary.Type => ({ ...report, runner })
    const asRequestError = Effect.mapError((e: { readonly stream: string; readonly message: string }) => new StreamRequestError({ stream: e.stream, message: e.message }))
    return StreamEntity.of({
      SyncNow: () => sendToStream.syncNow(name).pipe(Effect.map(summary), asRequestError),
      Backfill: ({ payload }) => sendToStream.backfill(name, payload.from, payload.to).pipe(Effect.map(summary), asRequestError),
      Retry: () => sendToStream.retry(name).pipe(asRequestError)
    })
  }),
  // A long backfill must not hold up a Retry or a SyncNow queued behind it for long: the loop serialises anyway.
  { concurrency: "unbounded", maxIdleTime: "5 minutes" }
)
