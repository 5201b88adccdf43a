import { Effect, Option, Stream } from "effect"
import type { DayBoundary } from "../config.ts"
import type { FillMode } from "../domain/fill.ts"
import type { SymbolSpec } from "../domain/symbol.ts"
import type { Timeframe } from "../domain/timeframe.ts"
import { tradingDays } from "../domain/trading-day.ts"
import { CandleStore } from "../store/candle-store.ts"
import { GapRepo } from "../store/gap-repo.ts"
import { readCandlePage } from "./candle-pages.ts"
import { type ExportFormat, type ExportPage, makeExportEncoder } from "./export-formats.ts"

export interface ExportRequest {
  readonly specs: ReadonlyArray<SymbolSpec>
  readonly timeframe: Timeframe
  readonly from: number
  readonly to: number
  readonly format: ExportFormat
  readonly fill: FillMode
  readonly boundary: DayBoundary
  readonly sessions: boolean
  readonly version: string
  /** Bars read (and one Parquet row group written) at a time. */
  readonly pageBars?: number
  /** Who writes plain CSV lines (no fill, no sessions): the database (default, several times faster) or the app, as for every other export. */
  readonly csvRenderer?: "database" | "app"
}

/** A piece of the file, with how many rows (and stand-ins among them) it holds. */
export interface ExportChunk {
  readonly bytes: Uint8Array
  readonly rows: number
  readonly filled: number
}

export const defaultExportPageBars = 50_000

/** A stand-in's gap: the recorded gap that holds its minute, or `unrecorded` (shorter than GAP_MIN_BARS, or not detected yet). */
const gapStatuses = (page: ExportPage["bars"], gaps: ReadonlyArray<{ readonly start: number; readonly end: number; readonly status: string }>) => {
  let at = 0
  return page.map((bar) => {
    if (!bar.filled) return null
    while (at < gaps.length && gaps[at]!.end < bar.ts) at++
    const gap = gaps[at]
    return gap !== undefined && gap.start <= bar.ts ? gap.status : "unrecorded"
  })
}

/**
 * An export as bytes: each symbol's range page by page through the same read path as the HTTP API (fill
 * included), encoded as it is read. Nothing but one page is ever held, whatever the range.
 */
export const exportStream = (request: ExportRequest): Stream.Stream<ExportChunk, unknown, CandleStore | GapRepo> =>
  Stream.suspend(() => {
    const filledColumns = request.fill !== "none"
    const encoder = makeExportEncoder(request.format, {
      symbols: request.specs.map((s) => s.symbol),
      timeframe: request.timeframe,
      boundary: request.boundary,
      from: request.from,
      to: request.to,
      fill: request.fill,
      version: request.version,
      filledColumns,
      sessionColumn: request.sessions
    })
    const day = tradingDays(request.boundary)
    const limit = request.pageBars ?? defaultExportPageBars
    const databaseCsv = request.format === "csv" && !filledColumns && !request.sessions && request.csvRenderer !== "app"
    const pages = Stream.fromIterable(request.specs).pipe(
      Stream.flatMap((spec) =>
        databaseCsv
          ? Stream.paginateEffect(request.from, (from) =>
              CandleStore.use((store) =>
                // Lines from the database are a few bytes each and no objects: pages four times as long cost little memory.
                store.rangeCsv({ symbol: spec.symbol, timeframe: request.timeframe, from, to: request.to, limit: limit * 4, dayBoundary: request.boundary })
              ).pipe(Effect.map((page) => [{ bytes: page.lines, rows: page.count, filled: 0 } satisfies ExportChunk, Option.fromNullable(page.next)] as const))
            )
          : Stream.paginateEffect(request.from, (from) =>
          Effect.gen(function* () {
            const page = yield* readCandlePage({ spec, timeframe: request.timeframe, from, to: request.to, limit, fill: request.fill, boundary: request.boundary })
            let filled = 0
            for (const bar of page.bars) if (bar.filled) filled++
            const gaps = filled > 0
              ? yield* GapRepo.use((repo) => repo.overlapping(spec.symbol, request.timeframe, page.bars[0]!.ts, page.bars[page.bars.length - 1]!.ts + 1))
              : []
            const bytes = encoder.page({
              symbol: spec.symbol,
              bars: page.bars,
              gapStatus: filledColumns ? gapStatuses(page.bars, gaps) : null,
              session: request.sessions ? page.bars.map((bar) => day(bar.ts)) : null
            })
            return [{ bytes, rows: page.bars.length, filled } satisfies ExportChunk, Option.fromNullable(page.next)] as const
          })
        )
      )
    )
    return Stream.sync(() => ({ bytes: encoder.start(), rows: 0, filled: 0 })).pipe(
      Stream.concat(pages),
      Stream.concat(Stream.sync(() => ({ bytes: encoder.finish(), rows: 0, filled: 0 }))),
      Stream.filter((chunk) => chunk.bytes.length > 0)
    )
  })

/** The file name an export is offered under: `EURUSD-XAUUSD_M1_2021-01-04_2021-01-05.csv`. */
export const exportFileName = (request: Pick<ExportRequest, "specs" | "timeframe" | "from" | "to" | "format">) => {
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 10)
  return `${request.specs.map((s) => s.symbol).join("-")}_${request.timeframe}_${day(request.from)}_${day(request.to)}.${request.format}`
}
