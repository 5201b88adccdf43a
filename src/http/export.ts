import { Effect, Schema, Stream } from "effect"
import type { Context } from "hono"
import { AppConfig, DayBoundary } from "../config.ts"
import type { SymbolSpec } from "../domain/symbol.ts"
import { exportFileName, exportStream } from "../pipeline/export.ts"
import { ExportFormat, exportContentType } from "../pipeline/export-formats.ts"
import type { CandleStore } from "../store/candle-store.ts"
import type { GapRepo } from "../store/gap-repo.ts"
import type { Api } from "./api.ts"
import { maxRangeYears } from "./candles.ts"
import { BadRequest } from "./errors.ts"
import { Instant, resolveSymbol, resolveTimeframe } from "./params.ts"

const maxRangeMillis = maxRangeYears * 366 * 86_400_000

export const ExportQuery = Schema.Struct({
  symbol: Schema.String.pipe(
    Schema.maxLength(200, { message: () => "at most 200 characters" }),
    Schema.pattern(/^[A-Za-z0-9._:-]+(,[A-Za-z0-9._:-]+)*$/, { message: () => "one symbol or several separated by commas, e.g. EURUSD,XAUUSD" })
  ).annotations({ description: "configured symbols, comma-separated: EURUSD or EURUSD,XAUUSD" }),
  timeframe: Schema.String.pipe(Schema.maxLength(32)).annotations({ description: "M1 M5 M15 M30 H1 H4 D1" }),
  start: Instant.annotations({ description: "first bar's open time, inclusive" }),
  end: Instant.annotations({ description: "exclusive" }),
  format: ExportFormat.annotations({ description: "csv, jsonl or parquet" }),
  fill: Schema.optionalWith(Schema.Literal("none", "null", "prev").annotations({ description: "stand-ins for missing bars inside open sessions, with filled and gap_status columns" }), {
    default: () => "none" as const
  }),
  sessions: Schema.optionalWith(Schema.Literal("true", "false").annotations({ description: "add a session column: the trading day of each bar" }), { default: () => "false" as const }),
  boundary: Schema.optional(DayBoundary.annotations({ description: "day boundary of H4/D1 and of the session column (default DAY_BOUNDARY)" }))
})

/** `GET /api/data/export`: the bytes of `bun src/main.ts export`, streamed page by page as an attachment. */
export const exportRoutes = (api: Api<AppConfig | CandleStore | GapRepo>, version: string) =>
  api.route(
    {
      method: "get",
      path: "/api/data/export",
      tag: "candles",
      summary: "A whole range of bars as one CSV, JSONL or Parquet file, streamed page by page (the export command's bytes)",
      access: "read",
      query: ExportQuery,
      responses: { 200: "the file, with a Content-Disposition file name", 400: "a bad parameter", 404: "unknown symbol or timeframe" },
      produces: [exportContentType.csv, exportContentType.jsonl, exportContentType.parquet]
    },
    ({ query }, c: Context) =>
      Effect.gen(function* () {
        const config = yield* AppConfig
        const specs: Array<SymbolSpec> = []
        for (const text of query.symbol.split(",")) {
          const spec = yield* resolveSymbol(text)
          if (!specs.includes(spec)) specs.push(spec)
        }
        const timeframe = yield* resolveTimeframe(query.timeframe)
        if (query.start >= query.end) {
          return yield* new BadRequest({ field: "start", message: `start (${new Date(query.start).toISOString()}) must be before end (${new Date(query.end).toISOString()})` })
        }
        if (query.end - query.start > maxRangeMillis) return yield* new BadRequest({ field: "end", message: `the range is longer than ${maxRangeYears} years: export it in parts` })
        const boundary = query.boundary ?? config.dayBoundary
        if (query.fill !== "none" && (timeframe === "H4" || timeframe === "D1") && boundary === "new-york") {
          return yield* new BadRequest({ field: "fill", message: "fill is not offered for H4/D1 bars on the new-york day boundary: ask with boundary=utc, or fill=none" })
        }
        const request = {
          specs, timeframe, from: query.start, to: query.end, format: query.format, fill: query.fill, boundary, sessions: query.sessions === "true", version
        } as const
        const runtime = yield* Effect.runtime<CandleStore | GapRepo>()
        const body = Stream.toReadableStreamRuntime(Stream.map(exportStream(request), (chunk) => chunk.bytes), runtime)
        return c.body(body, 200, {
          "Content-Type": exportContentType[query.format],
          "Content-Disposition": `attachment; filename="${exportFileName(request)}"`
        })
      })
  )
