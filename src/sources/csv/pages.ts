import { Either } from "effect"
import type { Candle } from "../../domain/candle.ts"
import type { SourceClock } from "./clock.ts"
import { type FileLine, maxLineBytes } from "./file-lines.ts"
import { headerParser, jsonlParser, type RowParser } from "./header.ts"
import { cleanLine, type CsvFormat, CsvLineError, type FixedFormat, formats, parseLine } from "./line.ts"

export interface CsvReadOptions {
  /** Any format but `parquet`, which is not read line by line (see parquet-pages.ts). */
  readonly format: Exclude<CsvFormat, "parquet">
  /** The symbol imported: rows of a file with a symbol column (candlekeep's exports) naming another are skipped. */
  readonly symbol?: string
  readonly clock: SourceClock
  /** Most bars in one page. */
  readonly pageSize?: number
  /** Drop bars with open = high = low = close and volume 0: filler for closed periods. Default: Dukascopy only (HistData's volume is always 0). */
  readonly dropFlatZeroVolume?: boolean
  /** How many line errors the summary keeps, in file order; all are counted. */
  readonly keepErrors?: number
}

/** What a read has seen so far. `lines` are data lines (no header, no blank lines) = bars + droppedFlatBars + skipped + badLines. */
export interface CsvSummary {
  readonly lines: number
  readonly bars: number
  /** Rows that are deliberately not bars: a fill's stand-ins (`filled` true) and other symbols' rows in candlekeep's exports. */
  readonly skipped: number
  readonly droppedFlatBars: number
  readonly blankLines: number
  readonly badLines: number
  readonly firstErrors: ReadonlyArray<CsvLineError>
}

/** A page of bars, in file order, and the summary up to its last line; the `final` page (maybe empty) ends the read. */
export interface CsvPage {
  readonly candles: ReadonlyArray<Candle>
  readonly summary: CsvSummary
  readonly final: boolean
  /** The file line the page ends on (header and blank lines counted). */
  readonly lastLine: number
}

export const defaultPageSize = 50_000

const isFlatZeroVolume = (bar: Candle) =>
  bar.volume === 0 && bar.open === bar.high && bar.open === bar.low && bar.open === bar.close

/** A fixed layout's line parser, in the shape every format's parser has. */
const fixedParser = (format: FixedFormat, clock: SourceClock): RowParser => {
  const parse = parseLine(format, clock)
  return (text, line) => Either.map(parse(text, line), (bar) => ({ _tag: "bar" as const, bar }))
}

/** Reads an export line by line and yields pages of at most `pageSize` bars; memory stays one page. */
export async function* csvPages(
  lines: AsyncIterable<FileLine> | Iterable<FileLine>,
  options: CsvReadOptions
): AsyncGenerator<CsvPage, void, undefined> {
  const { format, clock, pageSize = defaultPageSize, dropFlatZeroVolume = format === "dukascopy", keepErrors = 10 } =
    options
  const headed = format === "csv" || format === "mt5"
  const header = headed || format === "jsonl" ? null : formats[format].header
  // A headed format's parser is built from its first line.
  let parse: RowParser = format === "jsonl" ? jsonlParser(clock, options.symbol) : headed ? () => Either.right({ _tag: "skip" }) : fixedParser(format, clock)
  const counts = { lines: 0, bars: 0, skipped: 0, droppedFlatBars: 0, blankLines: 0, badLines: 0 }
  const firstErrors: Array<CsvLineError> = []
  const summary = (): CsvSummary => ({ ...counts, firstErrors: [...firstErrors] })
  const report = (error: CsvLineError) => {
    counts.badLines++
    if (firstErrors.length < keepErrors) firstErrors.push(error)
  }
  let page: Array<Candle> = []
  let lineNumber = 0
  for await (const raw of lines) {
    lineNumber++
    if (typeof raw !== "string") {
      counts.lines++
      report(new CsvLineError({ line: lineNumber, reason: `longer than ${maxLineBytes.toLocaleString("en")} bytes (${raw.bytes.toLocaleString("en")}): not read`, text: "" }))
      continue
    }
    const text = cleanLine(raw)
    if (lineNumber === 1 && headed) {
      // A header says where each column is; without a readable one, every line is reported bad with its reason.
      const built = headerParser(text, clock, options.symbol)
      parse = Either.isRight(built) ? built.right : (_, line) => Either.left(new CsvLineError({ line, reason: built.left, text: "" }))
      if (Either.isRight(built)) continue
    }
    if (lineNumber === 1 && header !== null) {
      if (text === header) continue
      counts.lines++
      report(new CsvLineError({ line: 1, reason: `expected the header "${header}"`, text: text.slice(0, 200) }))
      continue
    }
    if (text.trim() === "") {
      counts.blankLines++
      continue
    }
    counts.lines++
    const row = parse(text, lineNumber)
    if (Either.isLeft(row)) {
      report(row.left)
    } else if (row.right._tag === "skip") {
      counts.skipped++
    } else if (dropFlatZeroVolume && isFlatZeroVolume(row.right.bar)) {
      counts.droppedFlatBars++
    } else {
      counts.bars++
      page.push(row.right.bar)
      if (page.length >= pageSize) {
        yield { candles: page, summary: summary(), final: false, lastLine: lineNumber }
        page = []
      }
    }
  }
  yield { candles: page, summary: summary(), final: true, lastLine: lineNumber }
}
