import { Schema } from "effect"
import type { Context } from "hono"
import type { ContentfulStatusCode } from "hono/utils/http-status"
import { InstrumentClass } from "../domain/symbol.ts"
import { Timeframe } from "../domain/timeframe.ts"

/**
 * What every route answers, as Schemas: `answer` encodes a route's value with them and /openapi.json is built
 * from them (the `identifier` names the component), so the document cannot say one thing and the code do another.
 */

/** An instant in an answer: ISO 8601 in UTC with milliseconds. */
const IsoTime = Schema.String.annotations({
  jsonSchema: { type: "string", format: "date-time", description: "ISO 8601 UTC, e.g. 2021-01-04T10:00:00.000Z" }
})
const Count = Schema.Number.annotations({ jsonSchema: { type: "integer", minimum: 0 } })
const Whole = Schema.Number.annotations({ jsonSchema: { type: "integer" } })
/** Free-form JSON whose shape belongs to another part (a job kind's report, a gap's evidence). */
const AnyJson = Schema.Unknown.annotations({ identifier: "JsonValue", description: "any JSON value" })
const UnixMillis = Schema.Number.annotations({ jsonSchema: { type: "integer", description: "Unix milliseconds" } })

/** One success (or error) answer: its schema, its content type, and what it means. */
export interface Answer<A = any, I = any> {
  readonly schema: Schema.Schema<A, I>
  readonly contentType: string
  readonly description: string
  /** Encoded with `schema` into the document: one example per answer, which cannot fail to match it. */
  readonly example: A
  /** Response headers worth documenting, by name: what each says. */
  readonly headers?: Readonly<Record<string, { readonly description: string; readonly type: "string" | "integer" }>>
}

const json = <A, I>(schema: Schema.Schema<A, I>, description: string, example: NoInfer<A>): Answer<A, I> => ({
  schema,
  contentType: "application/json",
  description,
  example
})

/** Renders a route's answer: the value encoded by the answer's schema (a mismatch is a bug: a logged 500), in its content type. */
export const answer = <A, I>(
  c: Context,
  spec: Answer<A, I>,
  value: NoInfer<A>,
  status: ContentfulStatusCode = 200,
  headers: Readonly<Record<string, string>> = {}
): Response => {
  const encoded = Schema.encodeSync(spec.schema)(value)
  return spec.contentType === "application/json"
    ? c.json(encoded as object, status, headers)
    : c.body(String(encoded), status, { ...headers, "Content-Type": spec.contentType })
}

// ---------------------------------------------------------------- errors

export const ErrorBody = Schema.Struct({
  error: Schema.String.annotations({
    description:
      "what went wrong, for a program: bad_request, not_found, unauthorized, conflict, payload_too_large, unavailable, broker_off, broker_failed, stream_unavailable, vendor_refused, vendor_failed, database_unavailable, not_ready, internal"
  }),
  field: Schema.optional(Schema.String.annotations({ description: "the parameter or body field at fault" })),
  message: Schema.String.annotations({ description: "what went wrong, for a person" }),
  valid: Schema.optional(Schema.Array(Schema.String).annotations({ description: "the valid values, for an unknown symbol or timeframe" })),
  request_id: Schema.optional(Schema.String.annotations({ description: "quote it to the operator: the failure is logged with it" }))
}).annotations({ identifier: "Error", description: "Every 4xx and 5xx answer" })
export type ErrorBody = typeof ErrorBody.Type

export const ErrorAnswer = json(ErrorBody, "an error", { error: "bad_request", field: "limit", message: "limit: expected a whole number from 1 to 50000, got \"0\"" })

// ---------------------------------------------------------------- candles

export const Candle = Schema.Struct({
  ts: IsoTime.annotations({ jsonSchema: { type: "string", format: "date-time", description: "the bar's open time, ISO 8601 UTC" } }),
  open: Schema.NullOr(Schema.Number),
  high: Schema.NullOr(Schema.Number),
  low: Schema.NullOr(Schema.Number),
  close: Schema.NullOr(Schema.Number).annotations({ description: "prices are null only for a bar filled with fill=null" }),
  volume: Schema.Number,
  filled: Schema.optional(Schema.Boolean.annotations({ description: "present with fill=null|prev: true for a bar the store does not have" }))
}).annotations({ identifier: "Candle", description: "One OHLCV bar" })

export const CandlesPage = Schema.Struct({
  symbol: Schema.String,
  timeframe: Timeframe,
  count: Count,
  candles: Schema.Array(Candle).annotations({ description: "oldest first" }),
  next: Schema.NullOr(UnixMillis).annotations({ description: "the next page's start (Unix milliseconds): pass it as `start`; null on the last page" })
}).annotations({ identifier: "CandlesPage", description: "One page of bars in [start, end)" })

const exampleBar = { ts: "2021-01-04T10:00:00.000Z", open: 1.22503, high: 1.2251, low: 1.22495, close: 1.22507, volume: 31 }

export const CandlesJson = json(CandlesPage, "a page of bars, oldest first, with the next page's start", {
  symbol: "EURUSD",
  timeframe: "M1",
  count: 1,
  candles: [exampleBar],
  next: 1609754460000
})

export const csvHeaderRow = "ts,open,high,low,close,volume"

export const CandlesCsv: Answer<string, string> = {
  schema: Schema.String.annotations({
    identifier: "CandlesCsv",
    description: `With format=csv: a header row \`${csvHeaderRow}\` (plus \`,filled\` with fill=null|prev), then one bar per line, ts in ISO 8601 UTC, an empty price for a null one; the next page's start (Unix milliseconds) is in the X-Next header`
  }),
  contentType: "text/csv",
  description: "the same page as CSV",
  headers: { "X-Next": { description: "the next page's start (Unix milliseconds); absent on the last page", type: "integer" } },
  example: `${csvHeaderRow}\n2021-01-04T10:00:00.000Z,1.22503,1.2251,1.22495,1.22507,31\n`
}

// ---------------------------------------------------------------- service

export const Health = Schema.Struct({
  status: Schema.Literal("ok"),
  service: Schema.String,
  uptime_s: Count,
  database: Schema.Struct({
    kind: Schema.Literal("embedded", "server"),
    flavour: Schema.Literal("timescale", "plain"),
    location: Schema.String.annotations({ description: "the data directory, or the server URL without its password" }),
    postgres_version: Schema.String,
    timescaledb_version: Schema.NullOr(Schema.String),
    migration_level: Schema.String
  })
}).annotations({ identifier: "Health" })

export const HealthAnswer = json(Health, "the database kind, versions and migration level", {
  status: "ok",
  service: "candlekeep",
  uptime_s: 3600,
  database: { kind: "embedded", flavour: "timescale", location: "./data", postgres_version: "17.5", timescaledb_version: "2.23.0", migration_level: "0009_jobs" }
})

export const Ready = Schema.Struct({
  status: Schema.Literal("ready", "not_ready"),
  error: Schema.optional(Schema.Literal("not_ready")),
  message: Schema.optional(Schema.String),
  reasons: Schema.optional(Schema.Array(Schema.String))
}).annotations({ identifier: "Ready", description: "ready, or not_ready with the reasons (an Error body as well)" })

export const ReadyAnswer = json(Ready, "ready", { status: "ready" })
export const NotReadyAnswer = json(Ready, "not ready, with the reasons", {
  status: "not_ready",
  error: "not_ready",
  message: "supervisor starting",
  reasons: ["supervisor starting"]
})

export const MetricsText: Answer<string, string> = {
  schema: Schema.String.annotations({ identifier: "MetricsText", description: "Prometheus text exposition format 0.0.4" }),
  contentType: "text/plain",
  description: "Prometheus text format 0.0.4",
  example: '# HELP candlekeep_stream_bars Bars each stream has stored (all instances, all time)\n# TYPE candlekeep_stream_bars gauge\ncandlekeep_stream_bars{stream="EURUSD:M1"} 7200\n'
}

export const EventStream: Answer<string, string> = {
  schema: Schema.String.annotations({
    identifier: "EventStream",
    description:
      "Server-Sent Events: `hello` first, then `state`, `page`, `restart` and `job` events, each `data:` one JSON object; a `: heartbeat` comment every 15 s"
  }),
  contentType: "text/event-stream",
  description: "an endless event stream",
  example: 'event: hello\ndata: {"at":"2021-01-04T10:00:00.000Z"}\n\n'
}

// ---------------------------------------------------------------- symbols and streams

export const Symbols = Schema.Struct({
  symbols: Schema.Array(
    Schema.Struct({
      symbol: Schema.String,
      ticker: Schema.String.annotations({ description: "the vendor's ticker, e.g. C:EURUSD" }),
      instrument_class: InstrumentClass,
      digits: Count,
      pip_size: Schema.Number,
      streams: Schema.Array(Timeframe).annotations({ description: "the timeframes with a stream of their own" })
    })
  )
}).annotations({ identifier: "Symbols" })

export const SymbolsAnswer = json(Symbols, "the configured symbols", {
  symbols: [{ symbol: "EURUSD", ticker: "C:EURUSD", instrument_class: "forex", digits: 5, pip_size: 0.0001, streams: ["M1"] }]
})

const StreamState = Schema.Literal("not_started", "starting", "backfilling", "live", "degraded", "failed", "stopped")
const BrokerStreamState = Schema.Literal("not_started", "starting", "live", "degraded", "failed", "off")
const ComparisonStatus = Schema.Literal("ok", "no_broker_data", "no_vendor_data", "error")

export const Status = Schema.Struct({
  streams: Schema.Array(
    Schema.Struct({
      stream: Schema.String.annotations({ description: "SYMBOL:TIMEFRAME" }),
      symbol: Schema.String,
      timeframe: Timeframe,
      state: StreamState,
      watermark: Schema.NullOr(IsoTime).annotations({ description: "every bar before it has been asked for after it settled" }),
      lag_seconds: Schema.NullOr(Whole).annotations({ description: "open-market seconds the watermark trails what the plan can deliver" }),
      delay_minutes: Count,
      history_from: Schema.NullOr(IsoTime),
      last_success_at: Schema.NullOr(IsoTime),
      last_error: Schema.NullOr(Schema.String),
      consecutive_failures: Count,
      bars_stored: Count,
      owner: Schema.NullOr(Schema.String).annotations({ description: "the instance running the stream (host:port)" })
    })
  ),
  broker: Schema.Struct({
    off: Schema.NullOr(Schema.String).annotations({ description: "why broker features are off; null when on" }),
    streams: Schema.Array(
      Schema.Struct({
        stream: Schema.String,
        account: Schema.String,
        symbol: Schema.String,
        broker_symbol: Schema.String,
        state: BrokerStreamState,
        last_quote_at: Schema.NullOr(IsoTime),
        last_compare_at: Schema.NullOr(IsoTime),
        last_compare_status: Schema.NullOr(ComparisonStatus),
        last_error: Schema.NullOr(Schema.String),
        consecutive_failures: Count,
        owner: Schema.NullOr(Schema.String)
      })
    )
  })
}).annotations({ identifier: "Status" })

export const StatusAnswer = json(Status, "every configured stream and broker stream", {
  streams: [
    {
      stream: "EURUSD:M1",
      symbol: "EURUSD",
      timeframe: "M1",
      state: "live",
      watermark: "2021-01-04T10:00:00.000Z",
      lag_seconds: 60,
      delay_minutes: 0,
      history_from: null,
      last_success_at: "2021-01-04T10:01:05.000Z",
      last_error: null,
      consecutive_failures: 0,
      bars_stored: 7200,
      owner: "10.0.0.5:34431"
    }
  ],
  broker: { off: "METAAPI_TOKEN is not set", streams: [] }
})

// ---------------------------------------------------------------- jobs

const JobStatus = Schema.Literal("queued", "running", "succeeded", "failed")

export const JobAccepted = Schema.Struct({
  job: Schema.Struct({
    id: Schema.UUID,
    status: Schema.Literal("queued"),
    url: Schema.String.annotations({ description: "GET it to follow the job" })
  })
}).annotations({ identifier: "JobAccepted" })

const exampleJobId = "3f9a1c2e-7b4d-4e8f-9a6b-1c2d3e4f5a6b"

export const JobAcceptedAnswer = json(JobAccepted, "accepted: where to follow the job", {
  job: { id: exampleJobId, status: "queued", url: `/api/data/jobs/${exampleJobId}` }
})

export const RetryAccepted = Schema.Struct({
  stream: Schema.String.annotations({ description: "SYMBOL:TIMEFRAME" }),
  state: Schema.String.annotations({ description: "the stream's state after the retry: starting" })
}).annotations({ identifier: "RetryAccepted" })

export const RetryAnswer = json(RetryAccepted, "the failed stream starts again", { stream: "EURUSD:M1", state: "starting" })

export const Job = Schema.Struct({
  id: Schema.UUID,
  kind: Schema.Literal("sync", "full_sync", "gap_fill", "verify"),
  symbol: Schema.String,
  timeframe: Schema.String,
  status: JobStatus,
  /** The kind's own progress object while running, and its report once succeeded. */
  progress: AnyJson,
  result: AnyJson,
  error: Schema.NullOr(Schema.String),
  instance: Schema.String,
  created_at: IsoTime,
  started_at: Schema.NullOr(IsoTime),
  finished_at: Schema.NullOr(IsoTime)
}).annotations({ identifier: "Job" })

export const JobAnswer = json(Job, "the job", {
  id: exampleJobId,
  kind: "sync",
  symbol: "EURUSD",
  timeframe: "M1",
  status: "succeeded",
  progress: null,
  result: { bars: 60 },
  error: null,
  instance: "10.0.0.5:34431",
  created_at: "2021-01-04T10:00:00.000Z",
  started_at: "2021-01-04T10:00:00.100Z",
  finished_at: "2021-01-04T10:00:01.300Z"
})

// ---------------------------------------------------------------- gaps and quality

const GapStatus = Schema.Literal("detected", "filling", "filled", "partially_filled", "unfillable")

export const Gaps = Schema.Struct({
  symbol: Schema.String,
  count: Count,
  gaps: Schema.Array(
    Schema.Struct({
      id: Whole,
      timeframe: Schema.String,
      gap_start: IsoTime,
      gap_end: IsoTime,
      missing_bars: Count,
      status: GapStatus,
      attempts: Count,
      /** What the vendor answered when asked again. */
      evidence: AnyJson
    })
  )
}).annotations({ identifier: "Gaps" })

export const GapsAnswer = json(Gaps, "the stored gaps", {
  symbol: "EURUSD",
  count: 1,
  gaps: [{ id: 1, timeframe: "M1", gap_start: "2021-01-05T10:00:00.000Z", gap_end: "2021-01-05T10:07:00.000Z", missing_bars: 7, status: "detected", attempts: 0, evidence: null }]
})

export const GapsDetected = Schema.Struct({
  symbol: Schema.String,
  timeframe: Schema.String,
  from: IsoTime,
  to: IsoTime,
  count: Count,
  recorded: Count.annotations({ jsonSchema: { type: "integer", minimum: 0, description: "gaps not recorded before" } }),
  gaps: Schema.Array(Schema.Struct({ gap_start: IsoTime, gap_end: IsoTime, missing_bars: Count }))
}).annotations({ identifier: "GapsDetected" })

export const GapsDetectedAnswer = json(GapsDetected, "the gaps found", {
  symbol: "EURUSD",
  timeframe: "M1",
  from: "2021-01-04T00:00:00.000Z",
  to: "2021-01-09T00:00:00.000Z",
  count: 1,
  recorded: 1,
  gaps: [{ gap_start: "2021-01-05T10:00:00.000Z", gap_end: "2021-01-05T10:07:00.000Z", missing_bars: 7 }]
})

export const Quality = Schema.Struct({
  symbol: Schema.String,
  timeframe: Schema.String,
  from: IsoTime,
  to: IsoTime,
  months: Schema.Array(
    Schema.Struct({
      month: Schema.String.annotations({ description: "YYYY-MM, UTC" }),
      expected: Count.annotations({ jsonSchema: { type: "integer", minimum: 0, description: "bars an uninterrupted feed would have (market calendar)" } }),
      present: Count,
      completeness_pct: Schema.NullOr(Schema.Number).annotations({ description: "present / expected in percent; null for a month without an open session" }),
      gaps_open: Count,
      gaps_filled: Count,
      gaps_unfillable: Count,
      rejected: Schema.Record({ key: Schema.String, value: Count }).annotations({ description: "rejected bars by rule" })
    })
  )
}).annotations({ identifier: "Quality" })

export const QualityAnswer = json(Quality, "completeness per month", {
  symbol: "EURUSD",
  timeframe: "M1",
  from: "2021-01-01T00:00:00.000Z",
  to: "2021-02-01T00:00:00.000Z",
  months: [{ month: "2021-01", expected: 30_000, present: 29_991, completeness_pct: 99.97, gaps_open: 1, gaps_filled: 0, gaps_unfillable: 0, rejected: { high_below_low: 1 } }]
})

// ---------------------------------------------------------------- broker

const DiffStats = Schema.Struct({ mean: Schema.Number, max_abs: Schema.Number, std: Schema.Number })
const WindowReport = Schema.Struct({ from: IsoTime, to: IsoTime, minutes: Count })
const comparisonStats = {
  samples: Count.annotations({ jsonSchema: { type: "integer", minimum: 0, description: "minutes present on both sides" } }),
  vendor_minutes: Count,
  broker_minutes: Count,
  vendor_only: Count,
  broker_only: Count,
  one_sided_share: Schema.NullOr(Schema.Number),
  diff: Schema.NullOr(DiffStats).annotations({ description: "broker close − vendor close, in price; null without samples" }),
  diff_pips: Schema.NullOr(DiffStats)
}

export const BrokerComparison = Schema.Struct({
  ...comparisonStats,
  account: Schema.String,
  symbol: Schema.String,
  broker_symbol: Schema.String,
  window: WindowReport,
  status: Schema.Literal("ok", "no_broker_data", "no_vendor_data"),
  pip_size: Schema.Number,
  vendor_only_minutes: Schema.Array(IsoTime),
  broker_only_minutes: Schema.Array(IsoTime),
  latest: Schema.Struct({
    vendor_close: Schema.NullOr(Schema.Number),
    vendor_ts: Schema.NullOr(IsoTime),
    bid: Schema.Number,
    ask: Schema.Number,
    broker_time: Schema.String.annotations({ description: "the broker server's wall clock" })
  })
}).annotations({ identifier: "BrokerComparison" })

const exampleDiff = { mean: 0.0003, max_abs: 0.0003, std: 0 }

export const BrokerComparisonAnswer = json(BrokerComparison, "the window's statistics, the one-sided minutes and the latest prices", {
  samples: 57,
  vendor_minutes: 60,
  broker_minutes: 57,
  vendor_only: 3,
  broker_only: 0,
  one_sided_share: 0.05,
  diff: exampleDiff,
  diff_pips: { mean: 3, max_abs: 3, std: 0 },
  account: "acc-1",
  symbol: "EURUSD",
  broker_symbol: "EURUSDm",
  window: { from: "2021-01-05T11:00:00.000Z", to: "2021-01-05T12:00:00.000Z", minutes: 60 },
  status: "ok",
  pip_size: 0.0001,
  vendor_only_minutes: ["2021-01-05T11:10:00.000Z", "2021-01-05T11:11:00.000Z", "2021-01-05T11:40:00.000Z"],
  broker_only_minutes: [],
  latest: { vendor_close: 1.22507, vendor_ts: "2021-01-05T11:59:00.000Z", bid: 1.22534, ask: 1.22541, broker_time: "2021-01-05 13:59:30.000" }
})

export const BrokerOffset = Schema.Struct({
  account: Schema.String,
  symbol: Schema.String,
  broker_symbol: Schema.String,
  quotes: Count,
  matched: Count,
  from: Schema.NullOr(IsoTime),
  to: Schema.NullOr(IsoTime),
  mean: Schema.NullOr(Schema.Number),
  std: Schema.NullOr(Schema.Number),
  mean_pips: Schema.NullOr(Schema.Number),
  std_pips: Schema.NullOr(Schema.Number),
  pip_size: Schema.Number,
  threshold_pips: Schema.Number,
  recommendation: Schema.Struct({ use_offset: Schema.Boolean, offset: Schema.NullOr(Schema.Number) })
}).annotations({ identifier: "BrokerOffset" })

export const BrokerOffsetAnswer = json(BrokerOffset, "the offset report", {
  account: "acc-1",
  symbol: "EURUSD",
  broker_symbol: "EURUSDm",
  quotes: 60,
  matched: 60,
  from: "2021-01-05T11:00:00.000Z",
  to: "2021-01-05T11:59:00.000Z",
  mean: 0.0003,
  std: 0,
  mean_pips: 3,
  std_pips: 0,
  pip_size: 0.0001,
  threshold_pips: 1,
  recommendation: { use_offset: true, offset: 0.0003 }
})

export const BrokerQuotes = Schema.Struct({
  account: Schema.String,
  symbol: Schema.String,
  count: Count,
  quotes: Schema.Array(Schema.Struct({ ts: IsoTime, bid: Schema.Number, ask: Schema.Number, broker_time: Schema.NullOr(Schema.String) }))
}).annotations({ identifier: "BrokerQuotes" })

export const BrokerQuotesAnswer = json(BrokerQuotes, "the sampled quotes", {
  account: "acc-1",
  symbol: "EURUSD",
  count: 1,
  quotes: [{ ts: "2021-01-05T11:00:12.000Z", bid: 1.22534, ask: 1.22541, broker_time: "2021-01-05 13:00:12.000" }]
})

export const BrokerHistory = Schema.Struct({
  account: Schema.String,
  symbol: Schema.String,
  count: Count,
  comparisons: Schema.Array(
    Schema.Struct({
      ...comparisonStats,
      id: Whole,
      account: Schema.String,
      symbol: Schema.String,
      broker_symbol: Schema.String,
      window: WindowReport,
      compared_at: IsoTime,
      status: ComparisonStatus,
      error: Schema.NullOr(Schema.String)
    })
  )
}).annotations({ identifier: "BrokerHistory" })

export const BrokerHistoryAnswer = json(BrokerHistory, "the stored comparisons", {
  account: "acc-1",
  symbol: "EURUSD",
  count: 1,
  comparisons: [
    {
      id: 1,
      account: "acc-1",
      symbol: "EURUSD",
      broker_symbol: "EURUSDm",
      window: { from: "2021-01-05T11:00:00.000Z", to: "2021-01-05T12:00:00.000Z", minutes: 60 },
      compared_at: "2021-01-05T12:00:05.000Z",
      status: "ok",
      error: null,
      samples: 57,
      vendor_minutes: 60,
      broker_minutes: 57,
      vendor_only: 3,
      broker_only: 0,
      one_sided_share: 0.05,
      diff: exampleDiff,
      diff_pips: { mean: 3, max_abs: 3, std: 0 }
    }
  ]
})
