import { Either } from "effect"
import type { Candle } from "../../domain/candle.ts"
import type { SourceClock } from "./clock.ts"
import { type FileLine, maxLineBytes } from "./file-lines.ts"
import { cleanLine, type CsvFormat, CsvLineError, formats, parseLine } from "./line.ts"

export interface CsvReadOptions {
  readonly format: CsvFormat
  readonly clock: SourceClock
  /** Most bars in one page. */
  readonly pageSize?: number
  /** Drop bars with open = high = low = close and volume 0: filler for closed periods. Default: Dukascopy only (HistData's volume is always 0). */
  readonly dropFlatZeroVolume?: boolean
  /** How many line errors the summary keeps, in file order; all are counted. */
  readonly keepErrors?: number
}

/** What a read has seen so far. `lines` are data lines (no header, no blank lines) = bars + droppedFlatBars + badLines. */
export interface CsvSummary {
  readonly lines: number
  readonly bars: number
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

/** Reads an export line by line and yields pages of at most `pageSize` bars; memory stays one page. */
export async function* csvPages(
  lines: AsyncIterable<FileLine> | Iterable<FileLine>,
  options: CsvReadOptions
): AsyncGenerator<CsvPage, void, undefined> {
  const { format, clock, pageSize = defaultPageSize, dropFlatZeroVolume = format === "dukascopy", keepErrors = 10 } =
    options
  const header = formats[format].header
  const parse = parseLine(format, clock)
  const counts = { lines: 0, bars: 0, droppedFlatBars: 0, blankLines: 0, badLines: 0 }
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
    const bar = parse(text, lineNumber)
    if (Either.isLeft(bar)) {
      report(bar.left)
    } else if (dropFlatZeroVolume && isFlatZeroVolume(bar.right)) {
      counts.droppedFlatBars++
    } else {
      counts.bars++
      page.push(bar.right)
      if (page.length >= pageSize) {
        yield { candles: page, summary: summary(), final: false, lastLine: lineNumber }
        page = []
      }
    }
  }
  yield { candles: page, summary: summary(), final: true, lastLine: lineNumber }
}
