import { Schema } from "effect"
import type { Candle } from "../../domain/candle.ts"

/** One bar as Massive sends it; `t` is the open time in Unix ms, `vw` and `n` may be missing. */
export const WireBar = Schema.Struct({
  t: Schema.Number,
  o: Schema.Number,
  h: Schema.Number,
  l: Schema.Number,
  c: Schema.Number,
  v: Schema.Number,
  // Documented as "may be missing"; a null is read the same way rather than failing a whole page.
  vw: Schema.optional(Schema.NullOr(Schema.Number)),
  n: Schema.optional(Schema.NullOr(Schema.Number))
})
export type WireBar = typeof WireBar.Type

/** A 200 from `/v2/aggs/ticker/…/range/…`: `results` is absent (not empty) when there are no bars. */
export const AggregatesResponse = Schema.Struct({
  ticker: Schema.optional(Schema.String),
  // DELAYED is what plans with delayed data get: still a success.
  status: Schema.Literal("OK", "DELAYED"),
  request_id: Schema.optional(Schema.String),
  queryCount: Schema.optional(Schema.Number),
  resultsCount: Schema.optional(Schema.Number),
  count: Schema.optional(Schema.Number),
  adjusted: Schema.optional(Schema.Boolean),
  results: Schema.optional(Schema.Array(WireBar)),
  // A whole URL with an opaque cursor and without the key; absent on the last page.
  next_url: Schema.optional(Schema.String)
})
export type AggregatesResponse = typeof AggregatesResponse.Type

/** Any non-2xx JSON body: a 403 names the problem in `message`, the others in `error`. */
export const ErrorBody = Schema.Struct({
  status: Schema.optional(Schema.String),
  request_id: Schema.optional(Schema.String),
  error: Schema.optional(Schema.String),
  message: Schema.optional(Schema.String)
})
export type ErrorBody = typeof ErrorBody.Type

export const wireBarToCandle = (bar: WireBar): Candle => ({
  ts: bar.t,
  open: bar.o,
  high: bar.h,
  low: bar.l,
  close: bar.c,
  volume: bar.v,
  vwap: bar.vw ?? null,
  trades: bar.n ?? null
})
