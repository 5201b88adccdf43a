import { ParseResult, Schema } from "effect"

/** An ISO 8601 instant as MetaApi writes it (`2024-03-07T14:31:05.123Z`), read as Unix ms. */
const Instant = Schema.transformOrFail(Schema.String, Schema.Number, {
  strict: true,
  decode: (text, _, ast) => {
    const ms = Date.parse(text)
    return /^\d{4}-\d{2}-\d{2}T/.test(text) && !Number.isNaN(ms)
      ? ParseResult.succeed(ms)
      : ParseResult.fail(new ParseResult.Type(ast, text, `not an ISO 8601 instant: ${JSON.stringify(text)}`))
  },
  encode: (ms) => ParseResult.succeed(new Date(ms).toISOString())
})

/** `GET …/symbols/{symbol}/current-price`: the broker's bid and ask now; `time` UTC, `brokerTime` the server's wall clock. */
export const WirePrice = Schema.Struct({
  symbol: Schema.String,
  bid: Schema.Number,
  ask: Schema.Number,
  profitTickValue: Schema.optional(Schema.Number),
  lossTickValue: Schema.optional(Schema.Number),
  time: Instant,
  brokerTime: Schema.String
})
export type WirePrice = typeof WirePrice.Type

/** One candle of `GET …/timeframes/{tf}/candles`; MT4 builds it from bid prices. `tickVolume` counts ticks, not volume. */
export const WireCandle = Schema.Struct({
  symbol: Schema.optional(Schema.String),
  timeframe: Schema.optional(Schema.String),
  time: Instant,
  brokerTime: Schema.optional(Schema.String),
  open: Schema.Number,
  high: Schema.Number,
  low: Schema.Number,
  close: Schema.Number,
  tickVolume: Schema.optional(Schema.Number),
  spread: Schema.optional(Schema.Number),
  volume: Schema.optional(Schema.Number)
})
export type WireCandle = typeof WireCandle.Type

export const WireCandles = Schema.Array(WireCandle)

/** Any non-2xx JSON body: `{ id, error: "UnauthorizedError" | …, message, metadata: { recommendedRetryTime } }`. */
export const ErrorBody = Schema.Struct({
  id: Schema.optional(Schema.Number),
  error: Schema.optional(Schema.String),
  message: Schema.optional(Schema.String),
  metadata: Schema.optional(Schema.Struct({ recommendedRetryTime: Schema.optional(Schema.String) }))
})
export type ErrorBody = typeof ErrorBody.Type
