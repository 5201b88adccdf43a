import { Schema } from "effect"
import { ByteWriter, ParquetWriter } from "hyparquet-writer"
import type { ServedBar } from "../domain/fill.ts"
import { isoDay } from "../domain/trading-day.ts"

export const ExportFormat = Schema.Literal("csv", "jsonl", "parquet")
export type ExportFormat = typeof ExportFormat.Type

export const exportContentType: Record<ExportFormat, string> = {
  csv: "text/csv; charset=utf-8",
  jsonl: "application/x-ndjson",
  parquet: "application/vnd.apache.parquet"
}

/** What the file says about itself: the Parquet key/value metadata (CSV and JSONL carry the same in their name). */
export interface ExportDescription {
  readonly symbols: ReadonlyArray<string>
  readonly timeframe: string
  readonly boundary: string
  readonly from: number
  readonly to: number
  readonly fill: string
  readonly version: string
  /** With a fill: `filled` and `gap_status` columns. */
  readonly filledColumns: boolean
  /** A `session` column: the trading day (its D1 bar on the boundary). */
  readonly sessionColumn: boolean
}

/** One page of one symbol, with what the export adds per bar. */
export interface ExportPage {
  readonly symbol: string
  readonly bars: ReadonlyArray<ServedBar>
  /** Per bar: the gap a stand-in sits in (`detected`, `unfillable`, … or `unrecorded`), null for a stored bar. */
  readonly gapStatus: ReadonlyArray<string | null> | null
  /** Per bar: the trading day, days since 1970-01-01. */
  readonly session: ReadonlyArray<number> | null
}

/** Bytes at the start, per page and at the end; memory is one page whatever the export's length. */
export interface ExportEncoder {
  readonly start: () => Uint8Array
  readonly page: (page: ExportPage) => Uint8Array
  readonly finish: () => Uint8Array
}

const encoder = new TextEncoder()
const empty = new Uint8Array(0)
const number = (x: number | null | undefined) => (x === null || x === undefined ? "" : String(x))
const json = (x: number | null | undefined) => (x === null || x === undefined ? "null" : String(x))

export const csvColumns = (description: ExportDescription) =>
  [
    "symbol", "ts", "open", "high", "low", "close", "volume", "trades", "vwap",
    ...(description.filledColumns ? ["filled", "gap_status"] : []),
    ...(description.sessionColumn ? ["session"] : [])
  ]

/** RFC 4180 lines: numbers in their shortest exact form (as PostgreSQL prints a float8), a missing price empty. */
const csvEncoder = (description: ExportDescription): ExportEncoder => ({
  start: () => encoder.encode(`${csvColumns(description).join(",")}\n`),
  page: ({ symbol, bars, gapStatus, session }) => {
    let text = ""
    for (let i = 0; i < bars.length; i++) {
      const bar = bars[i]!
      text += `${symbol},${new Date(bar.ts).toISOString()},${number(bar.open)},${number(bar.high)},${number(bar.low)},${number(bar.close)},${bar.volume},${number(bar.trades)},${number(bar.vwap)}`
      if (gapStatus) text += `,${bar.filled},${gapStatus[i] ?? ""}`
      if (session) text += `,${isoDay(session[i]!)}`
      text += "\n"
    }
    return encoder.encode(text)
  },
  finish: () => empty
})

/** One JSON object a line, the same columns; a missing price is null. */
const jsonlEncoder = (): ExportEncoder => ({
  start: () => empty,
  page: ({ symbol, bars, gapStatus, session }) => {
    const name = JSON.stringify(symbol)
    let text = ""
    for (let i = 0; i < bars.length; i++) {
      const bar = bars[i]!
      text += `{"symbol":${name},"ts":"${new Date(bar.ts).toISOString()}","open":${json(bar.open)},"high":${json(bar.high)},"low":${json(bar.low)},"close":${json(bar.close)},"volume":${bar.volume},"trades":${json(bar.trades)},"vwap":${json(bar.vwap)}`
      if (gapStatus) text += `,"filled":${bar.filled},"gap_status":${gapStatus[i] === null ? "null" : `"${gapStatus[i]}"`}`
      if (session) text += `,"session":"${isoDay(session[i]!)}"`
      text += "}\n"
    }
    return encoder.encode(text)
  },
  finish: () => empty
})

/**
 * Parquet through hyparquet-writer's incremental writer: one row group per page (one symbol each), flushed as
 * soon as it is written, so the file streams; the footer (row-group index and key/value metadata) comes last.
 */
const parquetEncoder = (description: ExportDescription): ExportEncoder => {
  const writer = new ByteWriter(1 << 20)
  const optional = "OPTIONAL" as const
  const required = "REQUIRED" as const
  const schema = [
    { name: "root", num_children: 9 + (description.filledColumns ? 2 : 0) + (description.sessionColumn ? 1 : 0) },
    { name: "symbol", type: "BYTE_ARRAY" as const, converted_type: "UTF8" as const, repetition_type: required },
    {
      name: "ts", type: "INT64" as const, converted_type: "TIMESTAMP_MILLIS" as const, repetition_type: required,
      logical_type: { type: "TIMESTAMP" as const, isAdjustedToUTC: true, unit: "MILLIS" as const }
    },
    { name: "open", type: "DOUBLE" as const, repetition_type: optional },
    { name: "high", type: "DOUBLE" as const, repetition_type: optional },
    { name: "low", type: "DOUBLE" as const, repetition_type: optional },
    { name: "close", type: "DOUBLE" as const, repetition_type: optional },
    { name: "volume", type: "DOUBLE" as const, repetition_type: required },
    { name: "trades", type: "INT64" as const, repetition_type: optional },
    { name: "vwap", type: "DOUBLE" as const, repetition_type: optional },
    ...(description.filledColumns
      ? [
          { name: "filled", type: "BOOLEAN" as const, repetition_type: required },
          { name: "gap_status", type: "BYTE_ARRAY" as const, converted_type: "UTF8" as const, repetition_type: optional }
        ]
      : []),
    ...(description.sessionColumn ? [{ name: "session", type: "INT32" as const, converted_type: "DATE" as const, repetition_type: required }] : [])
  ]
  const take = () => {
    const bytes = writer.getBytes().slice()
    writer.index = 0
    return bytes
  }
  let parquet: ParquetWriter | null = null
  return {
    start: () => {
      parquet = new ParquetWriter({
        writer,
        schema,
        createdBy: `candlekeep version ${description.version}`,
        kvMetadata: [
          { key: "source", value: "candlekeep" },
          { key: "symbols", value: description.symbols.join(",") },
          { key: "timeframe", value: description.timeframe },
          { key: "day_boundary", value: description.boundary },
          { key: "from", value: new Date(description.from).toISOString() },
          { key: "to", value: new Date(description.to).toISOString() },
          { key: "fill", value: description.fill },
          { key: "version", value: description.version }
        ]
      })
      return take()
    },
    page: ({ symbol, bars, gapStatus, session }) => {
      if (bars.length === 0 || parquet === null) return empty
      const column = <A>(pick: (bar: ServedBar) => A) => bars.map(pick)
      const result = parquet.write({
        rowGroupSize: bars.length,
        columnData: [
          { name: "symbol", data: new Array<string>(bars.length).fill(symbol), encoding: "RLE_DICTIONARY" },
          { name: "ts", data: column((b) => b.ts) },
          { name: "open", data: column((b) => b.open) },
          { name: "high", data: column((b) => b.high) },
          { name: "low", data: column((b) => b.low) },
          { name: "close", data: column((b) => b.close) },
          { name: "volume", data: column((b) => b.volume) },
          { name: "trades", data: column((b) => (b.trades === null || b.trades === undefined ? null : BigInt(b.trades))) },
          { name: "vwap", data: column((b) => b.vwap ?? null) },
          ...(gapStatus ? [{ name: "filled", data: column((b) => b.filled) }, { name: "gap_status", data: [...gapStatus] }] : []),
          ...(session ? [{ name: "session", data: [...session] }] : [])
        ]
      })
      if (result instanceof Promise) throw new Error("the Parquet writer flushed asynchronously")
      return take()
    },
    finish: () => {
      const result = parquet?.finish()
      if (result instanceof Promise) throw new Error("the Parquet writer finished asynchronously")
      return take()
    }
  }
}

export const makeExportEncoder = (format: ExportFormat, description: ExportDescription): ExportEncoder =>
  format === "csv" ? csvEncoder(description) : format === "jsonl" ? jsonlEncoder() : parquetEncoder(description)
