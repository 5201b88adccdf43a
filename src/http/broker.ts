import { Clock, Effect, Schema } from "effect"
import { Broker } from "../pipeline/broker.ts"
import type { Api } from "./api.ts"
import { answer, BrokerComparisonAnswer, BrokerHistoryAnswer, BrokerOffsetAnswer, BrokerQuotesAnswer } from "./contract.ts"
import { BadRequest } from "./errors.ts"
import { Instant, IntParam, Name } from "./params.ts"

const dayMillis = 86_400_000

const Stream = {
  symbol: Name.annotations({ description: "our symbol, e.g. XAUUSD (BROKER_SYMBOLS maps it to the broker's)" }),
  account: Schema.optional(Name.annotations({ description: "a MetaApi account id of METAAPI_ACCOUNT_ID (default: the only one configured)" }))
}

const CompareQuery = Schema.Struct({
  ...Stream,
  window_minutes: Schema.optional(IntParam(1, 10_080, "minutes of M1 bars compared (default BROKER_COMPARE_WINDOW_MINUTES)")),
  end: Schema.optional(Instant.annotations({ description: "the window's end, exclusive (default: the last closed minute)" }))
})
const OffsetQuery = Schema.Struct({ ...Stream, samples: Schema.optional(IntParam(1, 100_000, "the newest sampled quotes to use (default: a compare window's worth)")) })
const RangeQuery = Schema.Struct({
  ...Stream,
  start: Schema.optional(Instant.annotations({ description: "default: a day before end" })),
  end: Schema.optional(Instant.annotations({ description: "exclusive (default: now)" })),
  limit: Schema.optionalWith(IntParam(1, 50_000, "rows at most (default 10000)"), { default: () => 10_000 })
})

/** The only configured account when the client names none; else what it named (checked by the service). */
const streamRef = (broker: Broker, input: { readonly symbol: string; readonly account?: string | undefined }) => {
  const accounts = [...new Set(broker.streams.map((s) => s.account))]
  const account = input.account ?? (accounts.length === 1 ? accounts[0]! : undefined)
  return account === undefined
    ? Effect.fail(new BadRequest({ field: "account", message: `several accounts are configured: name one of ${accounts.join(", ")}` }))
    : Effect.succeed({ account, symbol: input.symbol })
}

const rangeOf = (query: { readonly start?: number | undefined; readonly end?: number | undefined }) =>
  Effect.gen(function* () {
    const end = query.end ?? (yield* Clock.currentTimeMillis)
    const start = query.start ?? end - dayMillis
    if (start >= end) return yield* new BadRequest({ field: "start", message: "start must be before end" })
    if (end - start > 366 * dayMillis) return yield* new BadRequest({ field: "end", message: "the range is longer than a year" })
    return { from: start, to: end }
  })

/** The broker side: vendor vs broker comparison, the broker's offset, sampled quotes and the stored comparisons. */
export const brokerRoutes = (api: Api<Broker>) => {
  const notConfigured = { 404: "not a configured broker stream (`valid` lists them)", 503: "broker features are off (MetaApi not configured), with the reason" }
  api.route(
    {
      method: "get",
      path: "/api/data/broker/compare",
      tag: "broker",
      summary: "Broker M1 candles vs the vendor's stored M1 bars, minute by minute in UTC, over a window; with the latest vendor close beside the broker's bid/ask",
      access: "read",
      query: CompareQuery,
      responses: { 200: BrokerComparisonAnswer, 400: "a bad parameter", ...notConfigured, 502: "MetaApi failed" }
    },
    ({ query }, c) =>
      Effect.gen(function* () {
        const broker = yield* Broker
        const ref = yield* streamRef(broker, query)
        return answer(
          c,
          BrokerComparisonAnswer,
          yield* broker.compare({
            ...ref,
            ...(query.window_minutes === undefined ? {} : { windowMinutes: query.window_minutes }),
            ...(query.end === undefined ? {} : { end: query.end })
          })
        )
      })
  )
  api.route(
    {
      method: "get",
      path: "/api/data/broker/offset",
      tag: "broker",
      summary: "Mean and standard deviation of broker mid − vendor close over the sampled quotes, with a recommendation {use_offset, offset}",
      access: "read",
      query: OffsetQuery,
      responses: { 200: BrokerOffsetAnswer, 400: "a bad parameter", ...notConfigured }
    },
    ({ query }, c) =>
      Effect.gen(function* () {
        const broker = yield* Broker
        const ref = yield* streamRef(broker, query)
        return answer(c, BrokerOffsetAnswer, yield* broker.offset({ ...ref, ...(query.samples === undefined ? {} : { samples: query.samples }) }))
      })
  )
  api.route(
    {
      method: "get",
      path: "/api/data/broker/quotes",
      tag: "broker",
      summary: "Sampled broker quotes (bid, ask, broker time) in [start, end)",
      access: "read",
      query: RangeQuery,
      responses: { 200: BrokerQuotesAnswer, 400: "a bad parameter", ...notConfigured }
    },
    ({ query }, c) =>
      Effect.gen(function* () {
        const broker = yield* Broker
        const ref = yield* streamRef(broker, query)
        const range = yield* rangeOf(query)
        const quotes = yield* broker.quotes({ ...ref, ...range, limit: query.limit })
        return answer(c, BrokerQuotesAnswer, { account: ref.account, symbol: ref.symbol.toUpperCase(), count: quotes.length, quotes })
      })
  )
  api.route(
    {
      method: "get",
      path: "/api/data/broker/history",
      tag: "broker",
      summary: "The scheduled comparisons stored in [start, end): the drift between broker and vendor over days",
      access: "read",
      query: RangeQuery,
      responses: { 200: BrokerHistoryAnswer, 400: "a bad parameter", ...notConfigured }
    },
    ({ query }, c) =>
      Effect.gen(function* () {
        const broker = yield* Broker
        const ref = yield* streamRef(broker, query)
        const range = yield* rangeOf(query)
        const comparisons = yield* broker.history({ ...ref, ...range, limit: query.limit })
        return answer(c, BrokerHistoryAnswer, { account: ref.account, symbol: ref.symbol.toUpperCase(), count: comparisons.length, comparisons })
      })
  )
}
