import { Clock, Effect, Runtime, Schema } from "effect"
import type { Context } from "hono"
import { AppConfig, DayBoundary } from "../config.ts"
import type { ServedBar } from "../domain/fill.ts"
import { timeframeMillis } from "../domain/timeframe.ts"
import { type CandlePage, pieceBars, readCandlePage } from "../pipeline/candle-pages.ts"
import { CandleStore } from "../store/candle-store.ts"
import type { Api } from "./api.ts"
import { BadRequest } from "./errors.ts"
import { CandlesCsv, CandlesJson, csvHeaderRow } from "./contract.ts"
import { asHeavyRead } from "./heavy-reads.ts"
import { Instant, IntParam, Name, resolveStream, TimeframeName } from "./params.ts"

export const maxLimit = 50_000
/**
 * Pages longer than this are read from the database and written a chunk at a time, each chunk only when the client
 * has taken the one before: a reader that stalls holds one chunk (~0.2 MB), not its 50,000-bar page.
 */
export const streamChunkBars = pieceBars
/** The longest range one request may name; a cursor walks longer histories page by page. */
export const maxRangeYears = 25
const maxRangeMillis = maxRangeYears * 366 * 86_400_000

export const CandlesQuery = Schema.Struct({
  symbol: Name.annotations({ description: "a configured symbol, e.g. EURUSD" }),
  timeframe: TimeframeName,
  start: Schema.optional(Instant.annotations({ description: "first bar's open time, inclusive (default: `limit` bar slots before end)" })),
  end: Schema.optional(Instant.annotations({ description: "exclusive (default: now)" })),
  limit: Schema.optionalWith(IntParam(1, maxLimit, "bars per page (default 1000)"), { default: () => 1000 }),
  fill: Schema.optionalWith(Schema.Literal("none", "null", "prev").annotations({ description: "missing bars inside open sessions: none, null prices, or the previous close (marked filled)" }), {
    default: () => "none" as const
  }),
  format: Schema.optionalWith(Schema.Literal("json", "csv"), { default: () => "json" as const }),
  boundary: Schema.optional(DayBoundary.annotations({ description: "day boundary of H4/D1 (default DAY_BOUNDARY)" }))
})


const csvHeader = (filled: boolean) => `${csvHeaderRow}${filled ? ",filled" : ""}\n`
const csvLine = (bar: ServedBar, filled: boolean) =>
  `${new Date(bar.ts).toISOString()},${bar.open ?? ""},${bar.high ?? ""},${bar.low ?? ""},${bar.close ?? ""},${bar.volume}${filled ? `,${bar.filled}` : ""}\n`

/** CSV in chunks of a thousand lines, so a 50,000-bar page starts arriving at once. */
const csvBody = (page: CandlePage, filled: boolean) => {
  let index = 0
  const encoder = new TextEncoder()
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (index === 0) controller.enqueue(encoder.encode(csvHeader(filled)))
      let chunk = ""
      for (const end = Math.min(page.bars.length, index + 1000); index < end; index++) chunk += csvLine(page.bars[index]!, filled)
      if (chunk.length > 0) controller.enqueue(encoder.encode(chunk))
      if (index >= page.bars.length) controller.close()
    }
  })
}

/** A filled page as JSON, 500 bars per chunk and each chunk only when the client has taken the last. */
const filledJsonBody = (symbol: string, timeframe: string, page: CandlePage) => {
  let index = 0
  const encoder = new TextEncoder()
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      let chunk = index === 0 ? `{"symbol":${JSON.stringify(symbol)},"timeframe":"${timeframe}","count":${page.bars.length},"candles":[` : ""
      for (const end = Math.min(page.bars.length, index + 500); index < end; index++) {
        const bar = page.bars[index]!
        // Written by hand: a finite number prints as JSON.stringify prints it, and null as null.
        chunk += `${index === 0 ? "" : ","}{"ts":"${new Date(bar.ts).toISOString()}","open":${bar.open},"high":${bar.high},"low":${bar.low},"close":${bar.close},"volume":${bar.volume},"filled":${bar.filled}}`
      }
      if (index >= page.bars.length) chunk += `],"next":${page.next}}`
      controller.enqueue(encoder.encode(chunk))
      if (index >= page.bars.length) controller.close()
    }
  })
}

/**
 * A long page as JSON, read from the database `streamChunkBars` at a time as the client takes it (the cursor is the
 * next bar's open time). `count` and `next` follow the bars here, as only the end of the read knows them.
 */
const streamedJsonBody = (
  head: string,
  read: (from: number, limit: number) => Promise<{ readonly count: number; readonly next: number | null; readonly bars: string }>,
  start: number,
  limit: number
) => {
  let cursor = start
  let count = 0
  const encoder = new TextEncoder()
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const chunk = await read(cursor, Math.min(streamChunkBars, limit - count))
      const first = count === 0
      count += chunk.count
      const done = chunk.next === null || count >= limit
      const bars = chunk.bars.slice(1, -1)
      let text = (first ? head : "") + (bars.length > 0 && !first ? "," : "") + bars
      if (done) text += `],"count":${count},"next":${chunk.next}}`
      controller.enqueue(encoder.encode(text))
      if (done) controller.close()
      else cursor = chunk.next!
    }
  })
}

/** `GET /api/data/candles`: bars in [start, end), oldest first, `limit` at a time with a cursor (`next` = the next page's start). */
export const candleRoutes = (api: Api<AppConfig | CandleStore>) =>
  api.route(
    {
      method: "get",
      path: "/api/data/candles",
      tag: "candles",
      summary: "Bars of one symbol and timeframe in [start, end); M1 and timeframes with their own stream from stored bars, the rest from the rollups",
      access: "read",
      query: CandlesQuery,
      responses: { 200: [CandlesJson, CandlesCsv], 400: "a bad parameter, or start not before end", 404: "unknown symbol or timeframe" }
    },
    ({ query }, c: Context) =>
      Effect.gen(function* () {
        const config = yield* AppConfig
        const store = yield* CandleStore
        const { spec, timeframe } = yield* resolveStream(query.symbol, query.timeframe)
        const barMillis = timeframeMillis[timeframe]
        const end = query.end ?? (yield* Clock.currentTimeMillis)
        const start = query.start ?? end - query.limit * barMillis
        if (start >= end) return yield* new BadRequest({ field: "start", message: `start (${new Date(start).toISOString()}) must be before end (${new Date(end).toISOString()})` })
        if (end - start > maxRangeMillis) return yield* new BadRequest({ field: "end", message: `the range is longer than ${maxRangeYears} years: page through it with the cursor` })
        const boundary = query.boundary ?? config.dayBoundary
        if (query.fill !== "none" && (timeframe === "H4" || timeframe === "D1") && boundary === "new-york") {
          return yield* new BadRequest({ field: "fill", message: "fill is not offered for H4/D1 bars on the new-york day boundary: ask with boundary=utc, or fill=none" })
        }
        if (query.fill === "none" && query.format === "json") {
          // The common case, rendered by the database: the page's bars arrive as one JSON text.
          if (query.limit > streamChunkBars) {
            const runPromise = Runtime.runPromise(yield* Effect.runtime<never>())
            // Each chunk takes a heavy-read place only while it is read, never while a client is slow to take it.
            const read = (from: number, limit: number) => runPromise(asHeavyRead(store.rangeJson({ symbol: spec.symbol, timeframe, from, to: end, limit, dayBoundary: boundary })))
            const head = `{"symbol":${JSON.stringify(spec.symbol)},"timeframe":"${timeframe}","candles":[`
            return c.body(streamedJsonBody(head, read, start, query.limit), 200, { "Content-Type": "application/json" })
          }
          const page = yield* store.rangeJson({ symbol: spec.symbol, timeframe, from: start, to: end, limit: query.limit, dayBoundary: boundary })
          // The contract test decodes this text with CandlesPage, so it cannot drift from the schema.
          return c.body(`{"symbol":${JSON.stringify(spec.symbol)},"timeframe":"${timeframe}","count":${page.count},"candles":${page.bars},"next":${page.next}}`, 200, {
            "Content-Type": CandlesJson.contentType
          })
        }
        const read = readCandlePage({ spec, timeframe, from: start, to: end, limit: query.limit, fill: query.fill, boundary })
        const page: CandlePage = yield* (query.limit > streamChunkBars ? asHeavyRead(read) : read)

        const filled = query.fill !== "none"
        if (query.format === "csv") {
          return c.body(csvBody(page, filled), 200, {
            "Content-Type": `${CandlesCsv.contentType}; charset=utf-8`,
            "Content-Disposition": `inline; filename="${spec.symbol}_${timeframe}.csv"`,
            ...(page.next === null ? {} : { "X-Next": String(page.next) })
          })
        }
        // Unfilled JSON was answered above: what is left is a filled page.
        return c.body(filledJsonBody(spec.symbol, timeframe, page), 200, { "Content-Type": CandlesJson.contentType })
      })
  )
