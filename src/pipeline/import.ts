import { Data, Effect, Stream } from "effect"
import { CsvFileBroken, csvFileLines } from "../sources/csv/file-lines.ts"
import type { SourceClock } from "../sources/csv/clock.ts"
import type { CsvFormat } from "../sources/csv/line.ts"
import { csvPages, type CsvSummary } from "../sources/csv/pages.ts"
import { parquetPages } from "../sources/csv/parquet-pages.ts"
import { Backfill } from "./backfill.ts"
import { Ingest } from "./ingest.ts"

/**
 * The file broke off (a truncated archive, a read error): where, and what of it is stored — whole pages only, every line
 * before `storedThroughLine`. The whole file is read once before a bar is written, so a file broken from the start stores
 * nothing; one that breaks while it is written (changed or cut under the import) keeps its whole pages.
 */
export class ImportFailed extends Data.TaggedError("ImportFailed")<{
  readonly file: string
  readonly reason: string
  /** The line being read when the file broke. */
  readonly line: number
  readonly stored: number
  readonly pages: number
  /** The last line of the last page written; 0 when none was. */
  readonly storedThroughLine: number
}> {
  override get message() {
    if (this.pages === 0) return `${this.file}: ${this.reason} at line ${this.line.toLocaleString("en")}; nothing stored: importing the repaired file is safe`
    return `${this.file}: ${this.reason} at line ${this.line.toLocaleString("en")}; ${this.stored.toLocaleString("en")} bars stored ` +
      `in ${this.pages} whole page${this.pages === 1 ? "" : "s"} (lines 1 to ${this.storedThroughLine.toLocaleString("en")}), nothing after: ` +
      `importing the repaired file again is safe`
  }
}

/** A file that is not what its format says: no line parses, or more than 1 % are bad. Nothing of it is stored. */
export class ImportRefused extends Data.TaggedError("ImportRefused")<{
  readonly file: string
  readonly format: CsvFormat
  readonly summary: CsvSummary
}> {
  override get message() {
    const { lines, badLines, bars } = this.summary
    return bars === 0
      ? `no line of ${this.file} reads as ${this.format} (${lines} lines, ${badLines} bad)`
      : `${badLines} of ${lines} lines of ${this.file} are not ${this.format} (more than ${maxBadShare * 100} %)`
  }
}

/** The share of bad lines above which a file is taken for the wrong format (or a broken one) and refused whole. */
export const maxBadShare = 0.01

/** Whether a whole read says the file is not its format: nothing parsed, or too many bad lines. */
export const refusesImport = (summary: CsvSummary) =>
  summary.bars + summary.droppedFlatBars + summary.skipped === 0 || summary.badLines > summary.lines * maxBadShare

/** The pages of a file in its format: line by line, or a Parquet file row group by row group. */
const filePages = (request: ImportRequest) =>
  request.format === "parquet"
    ? parquetPages(request.file, { symbol: request.symbol })
    : csvPages(csvFileLines(request.file), {
        format: request.format,
        clock: request.clock,
        symbol: request.symbol,
        ...(request.keepFlat === undefined ? {} : { dropFlatZeroVolume: !request.keepFlat })
      })

/** Reads the whole file once without storing anything: a refused file must leave no bar behind. */
const checkFile = (request: ImportRequest) =>
  Effect.tryPromise({
    try: async () => {
      let last: CsvSummary | null = null
      for await (const page of filePages(request)) last = page.summary
      return last!
    },
    catch: (cause) =>
      cause instanceof CsvFileBroken
        ? new ImportFailed({ file: request.file, reason: cause.reason, line: cause.line, stored: 0, pages: 0, storedThroughLine: 0 })
        : new ImportFailed({ file: request.file, reason: cause instanceof Error ? cause.message : String(cause), line: 0, stored: 0, pages: 0, storedThroughLine: 0 })
  }).pipe(Effect.flatMap((summary) => (refusesImport(summary) ? Effect.fail(new ImportRefused({ file: request.file, format: request.format, summary })) : Effect.void)))

export interface ImportRequest {
  readonly file: string
  readonly format: CsvFormat
  readonly symbol: string
  /** The exporter's clock: how the file's wall-clock times become UTC. */
  readonly clock: SourceClock
  /** Keep flat zero-volume bars (Dukascopy fills closed periods with them; dropped by default). */
  readonly keepFlat?: boolean
  readonly onPage?: (summary: CsvSummary & { readonly stored: number; readonly rejected: number }) => Effect.Effect<void>
}

export interface ImportReport extends CsvSummary {
  readonly stored: number
  readonly unchanged: number
  readonly rejected: number
  readonly pages: number
}

/**
 * A CSV export of M1 bars into the store through the same page path as the vendor's bars (validation,
 * quarantine, fetch_log, rollups), `source = 'import'`. It never moves a stream's watermark: an import
 * is not evidence of what the vendor has. Memory holds one page.
 */
export class Importer extends Effect.Service<Importer>()("Pipeline/Importer", {
  effect: Effect.gen(function* () {
    const ingest = yield* Ingest
    const backfill = yield* Backfill

    const run = (request: ImportRequest) =>
      ingest.payingRollups((payAsWeGo) => Effect.gen(function* () {
        const spec = yield* backfill.specFor(request.symbol)
        const totals = { stored: 0, unchanged: 0, rejected: 0, pages: 0 }
        yield* checkFile(request)
        let summary: CsvSummary = { lines: 0, bars: 0, skipped: 0, droppedFlatBars: 0, blankLines: 0, badLines: 0, firstErrors: [] }
        const pages = Stream.fromAsyncIterable(
          filePages(request),
          (cause) => cause instanceof CsvFileBroken ? cause : new CsvFileBroken({ file: request.file, line: 0, reason: cause instanceof Error ? cause.message : String(cause) })
        )
        let storedThroughLine = 0
        yield* Stream.runForEach(pages, (page) =>
          Effect.gen(function* () {
            summary = page.summary
            if (page.candles.length === 0) return
            const first = page.candles.reduce((min, c) => Math.min(min, c.ts), Number.POSITIVE_INFINITY)
            const last = page.candles.reduce((max, c) => Math.max(max, c.ts), Number.NEGATIVE_INFINITY)
            const written = yield* ingest.writePage({
              spec,
              timeframe: "M1",
              source: "import",
              purpose: "import",
              range: { from: first, to: last + 60_000 },
              candles: page.candles,
              requestId: null,
              httpStatus: null,
              advanceTo: null
            })
            totals.pages += 1
            totals.stored += written.inserted + written.updated
            totals.unchanged += written.unchanged
            totals.rejected += written.rejected
            storedThroughLine = page.lastLine
            if (request.onPage) yield* request.onPage({ ...summary, stored: totals.stored, rejected: totals.rejected })
            yield* payAsWeGo
          })
        ).pipe(
          Effect.catchTag("CsvFileBroken", (broken) =>
            new ImportFailed({ file: request.file, reason: broken.reason, line: broken.line, stored: totals.stored, pages: totals.pages, storedThroughLine })
          )
        )
        return { ...summary, ...totals } satisfies ImportReport
      })).pipe(Effect.withSpan("Importer.run"))

    return { run } as const
  })
}) {}
