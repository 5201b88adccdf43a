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
import type { Answer } from "./contract.ts"
import { BadRequest } from "./errors.ts"
import { Instant, resolveSymbol, resolveTimeframe, TimeframeName } from "./params.ts"

const maxRangeMillis = maxRangeYears * 366 * 86_400_000

const exportHeaders = { "Content-Disposition": { description: 'attachment; filename="SYMBOLS_TF_FROM_TO.FORMAT"', type: "string" as const } }

/** The three files, as the contract describes them (the bytes are the export command's). */
const ExportCsv: Answer<string, string> = {
  schema: Schema.String.annotations({
    identifier: "ExportCsv",
    description: "With format=csv: a header row `symbol,ts,open,high,low,close,volume,trades,vwap` (plus `,filled,gap_status` with a fill, `,session` with sessions=true), then one bar per line, oldest first, symbol after symbol; ts ISO 8601 UTC, an empty field for a missing value"
  }),
  contentType: "text/csv",
  description: "the range as one CSV file",
  headers: exportHeaders,
  example: "symbol,ts,open,high,low,close,volume,trades,vwap\nEURUSD,2021-01-04T10:00:00.000Z,1.22503,1.2251,1.22495,1.22507,31,,\n"
}
const ExportJsonl: Answer<string, string> = {
  schema: Schema.String.annotations({
    identifier: "ExportJsonl",
    description: "With format=jsonl: one JSON object a line with the CSV's columns; a missing value is null"
  }),
  contentType: exportContentType.jsonl,
  description: "the range as JSON Lines",
  headers: exportHeaders,
  example: '{"symbol":"EURUSD","ts":"2021-01-04T10:00:00.000Z","open":1.22503,"high":1.2251,"low":1.22495,"close":1.22507,"volume":31,"trades":null,"vwap":null}\n'
}
const ExportParquet: Answer<string, string> = {
  schema: Schema.String.annotations({
    identifier: "ExportParquet",
    description: "With format=parquet: typed columns (ts a UTC TIMESTAMP(MILLIS), prices DOUBLE, trades INT64, symbol a dictionary-encoded string), one row group per page, key/value metadata source, symbols, timeframe, day_boundary, from, to, fill, version",
    jsonSchema: { type: "string", format: "binary" }
  }),
  contentType: exportContentType.parquet,
  description: "the range as one Parquet file",
  headers: exportHeaders,
  example: "PAR1…"
}

export const ExportQuery = Schema.Struct({
  symbol: Schema.String.pipe(
    Schema.maxLength(200, { message: () => "at most 200 characters" }),
    Schema.pattern(/^[A-Za-z0-9._:-]+(,[A-Za-z0-9._:-]+)*$/, { message: () => "one symbol or several separated by commas, e.g. EURUSD,XAUUSD" })
  ).annotations({ description: "configured symbols, comma-separated: EURUSD or EURUSD,XAUUSD" }),
  timeframe: TimeframeName,
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
      responses: { 200: [ExportCsv, ExportJsonl, ExportParquet], 400: "a bad parameter, or start not before end", 404: "unknown symbol or timeframe" }
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
