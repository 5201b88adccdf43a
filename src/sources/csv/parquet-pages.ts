import { Either, ParseResult, Schema } from "effect"
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from "hyparquet"
import type { Candle } from "../../domain/candle.ts"
import { CsvLineError } from "./line.ts"
import type { CsvPage, CsvSummary } from "./pages.ts"

/** A row of candlekeep's Parquet export (or any file with these columns): `ts` a timestamp, prices doubles. */
const ParquetRow = Schema.Struct({
  ts: Schema.Union(Schema.DateFromSelf, Schema.Number, Schema.BigIntFromSelf),
  open: Schema.Number,
  high: Schema.Number,
  low: Schema.Number,
  close: Schema.Number,
  volume: Schema.optionalWith(Schema.NullOr(Schema.Number), { default: () => 0 }),
  vwap: Schema.optionalWith(Schema.NullOr(Schema.Number), { default: () => null }),
  trades: Schema.optionalWith(Schema.NullOr(Schema.Union(Schema.Number, Schema.BigIntFromSelf)), { default: () => null }),
  filled: Schema.optional(Schema.NullOr(Schema.Boolean)),
  symbol: Schema.optional(Schema.NullOr(Schema.String))
})
const decodeRow = Schema.decodeUnknownEither(ParquetRow)

const wanted = ["ts", "open", "high", "low", "close", "volume", "vwap", "trades", "filled", "symbol"]

/**
 * A Parquet file's bars, one row group at a time (candlekeep writes one per page), in the same pages and summary
 * as a CSV read: a row that does not decode is a bad "line" numbered from 2 (the header's place), stand-ins
 * (`filled`) and other symbols' rows are skipped. Memory holds one row group.
 */
export async function* parquetPages(path: string, options: { readonly symbol?: string; readonly keepErrors?: number }): AsyncGenerator<CsvPage, void, undefined> {
  const file = await asyncBufferFromFile(path)
  const metadata = await parquetMetadataAsync(file)
  const present = new Set(metadata.schema.slice(1).map((element) => element.name))
  const columns = wanted.filter((name) => present.has(name))
  const symbol = options.symbol?.toUpperCase()
  const keepErrors = options.keepErrors ?? 10
  const counts = { lines: 0, bars: 0, skipped: 0, droppedFlatBars: 0, blankLines: 0, badLines: 0 }
  const firstErrors: Array<CsvLineError> = []
  const summary = (): CsvSummary => ({ ...counts, firstErrors: [...firstErrors] })
  let rowStart = 0
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows)
    const rows = await parquetReadObjects({ file, metadata, columns, rowStart, rowEnd })
    const page: Array<Candle> = []
    rows.forEach((raw, index) => {
      counts.lines++
      // A stand-in is skipped before its null prices are decoded.
      if ((raw as { filled?: unknown }).filled === true) return void counts.skipped++
      const row = decodeRow(raw)
      if (Either.isLeft(row)) {
        counts.badLines++
        const issue = ParseResult.ArrayFormatter.formatErrorSync(row.left)[0]
        if (firstErrors.length < keepErrors) {
          firstErrors.push(new CsvLineError({
            line: rowStart + index + 2,
            reason: `${issue?.path.map(String).join(".") || "row"}: ${issue?.message ?? "unreadable"}`,
            text: JSON.stringify(raw, (_, v) => (typeof v === "bigint" ? Number(v) : v)).slice(0, 200)
          }))
        }
        return
      }
      const { ts, filled, symbol: rowSymbol, trades, volume, ...prices } = row.right
      if (filled === true || (symbol !== undefined && typeof rowSymbol === "string" && rowSymbol.toUpperCase() !== symbol)) {
        counts.skipped++
        return
      }
      counts.bars++
      page.push({ ...prices, ts: ts instanceof Date ? ts.getTime() : Number(ts), volume: volume ?? 0, trades: trades === null ? null : Number(trades) })
    })
    rowStart = rowEnd
    // A row stands for a line: where a broken file stopped, and what of it is stored, are counted in rows.
    yield { candles: page, summary: summary(), final: false, lastLine: rowEnd }
  }
  yield { candles: [], summary: summary(), final: true, lastLine: rowStart }
}
