import { SqlClient } from "@effect/sql"
import { Clock, Data, Effect, Option } from "effect"
import { AppConfig, configuredStreams } from "../config.ts"
import { expectedBars } from "../domain/calendar.ts"
import { gapsInHole, type Gap } from "../domain/gaps.ts"
import { floorTo, timeframeMillis, type Timeframe } from "../domain/timeframe.ts"
import { GapRepo, type GapStatus, type StoredGap } from "../store/gap-repo.ts"
import { SyncRepo } from "../store/sync-repo.ts"
import { Backfill, PlanLacksAsset, StreamFetchFailed, UnknownStreamSymbol } from "./backfill.ts"

/**
 * A failure every other gap would meet too — the key refused, the endpoint or symbol unknown, the plan without the
 * asset — so a fill stops at once. One about a range (an answer that does not decode, history the plan does not
 * cover) or a transient one leaves the next gap to be tried.
 */
const failsEveryGap = (error: unknown): boolean =>
  error instanceof PlanLacksAsset ||
  error instanceof UnknownStreamSymbol ||
  (error instanceof StreamFetchFailed && (error.cause._tag === "Unauthorized" || error.cause._tag === "NotFound" || error.cause._tag === "UnknownSymbol"))

/** Gaps and quality are judged on stored bars only, so a timeframe answered from M1's rollups has none of its own. */
export class DerivedTimeframe extends Data.TaggedError("DerivedTimeframe")<{ readonly symbol: string; readonly timeframe: Timeframe }> {
  override get message() {
    return `${this.symbol} ${this.timeframe} is derived from its M1 bars (no ${this.symbol}:${this.timeframe} stream in STREAMS): ` +
      `its gaps are M1's gaps, ask for timeframe M1`
  }
}

/** A range to judge; it is always clamped to the stored history: [first stored bar, watermark). */
export interface GapRange {
  readonly symbol: string
  readonly timeframe: Timeframe
  /** Default: the first stored bar. */
  readonly from?: number
  /** Default: the stream's watermark (what has been asked for so far), else the end of its last stored bar. */
  readonly to?: number
}

export interface MonthQuality {
  /** `2021-01`, UTC. */
  readonly month: string
  /** Bars an uninterrupted feed would have, from the market calendar. */
  readonly expected: number
  readonly present: number
  /** present / expected in percent; null for a month with no open session. */
  readonly completeness: number | null
  readonly gapsOpen: number
  readonly gapsFilled: number
  readonly gapsUnfillable: number
  readonly rejected: Readonly<Record<string, number>>
}

export interface FillReport {
  readonly attempted: number
  readonly filled: number
  readonly partiallyFilled: number
  readonly unfillable: number
  readonly failed: number
  readonly barsRecovered: number
}

/**
 * Gap detection against the market calendar, and refilling from the vendor: a gap's exact range is asked
 * again through the normal page path; what the vendor answers with nothing is `unfillable`, with the
 * fetch_log rows as evidence. Nothing is ever invented.
 */
export class Gaps extends Effect.Service<Gaps>()("Pipeline/Gaps", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const sql = yield* SqlClient.SqlClient
    const repo = yield* GapRepo
    const syncRepo = yield* SyncRepo
    const backfill = yield* Backfill

    /**
     * The range to judge: the one asked, clamped to the stored history — from the first stored bar to the watermark
     * (or, for bars never synced, such as an import, the end of the last one). History never stored, never asked
     * for or not yet happened is not a gap: a timeframe without bars has none, whatever range is asked.
     */
    const resolveRange = (range: GapRange) =>
      Effect.gen(function* () {
        const spec = yield* backfill.specFor(range.symbol)
        const ownStream = configuredStreams(config).some((s) => s.symbol === range.symbol && s.timeframe === range.timeframe)
        if (range.timeframe !== "M1" && !ownStream) return yield* new DerivedTimeframe({ symbol: range.symbol, timeframe: range.timeframe })
        const barMillis = timeframeMillis[range.timeframe]
        const [bounds] = yield* sql<{ first: Date | null; last: Date | null }>`
          SELECT min(ts) AS first, max(ts) AS last FROM candles WHERE symbol = ${range.symbol} AND timeframe = ${range.timeframe}`
        if (!bounds?.first || !bounds.last) {
          const at = floorTo(range.from ?? 0, range.timeframe)
          return { spec, barMillis, from: at, to: at }
        }
        const first = bounds.first.getTime()
        const watermark = Option.flatMap(yield* syncRepo.state(range.symbol, range.timeframe), (s) => Option.fromNullable(s.watermark))
        const end = Option.getOrElse(watermark, () => bounds.last!.getTime() + barMillis)
        const from = floorTo(Math.max(range.from ?? first, first), range.timeframe)
        return { spec, barMillis, from, to: Math.max(from, Math.min(range.to ?? end, end)) }
      })

    /** Every gap in the range, from holes the database finds; records new ones and returns them all. */
    const detect = (range: GapRange) =>
      Effect.gen(function* () {
        const { spec, barMillis, from, to } = yield* resolveRange(range)
        if (to <= from) return { from, to, gaps: [] as ReadonlyArray<Gap>, recorded: 0 }
        const holes = yield* repo.holes(range.symbol, range.timeframe, from, to, barMillis)
        const gaps = holes.flatMap((hole) => gapsInHole(spec.instrumentClass, hole, barMillis, config.gaps.minBars))
        const recorded = yield* repo.record(range.symbol, range.timeframe, gaps)
        return { from, to, gaps, recorded }
      }).pipe(Effect.withSpan("Gaps.detect"))

    /** What is still missing of a gap: all missing bars inside sessions, whatever their number. */
    const stillMissing = (gap: StoredGap, instrumentClass: Parameters<typeof gapsInHole>[0], barMillis: number) =>
      Effect.map(repo.holes(gap.symbol, gap.timeframe, gap.start, gap.end + barMillis, barMillis), (holes) =>
        holes.flatMap((hole) => gapsInHole(instrumentClass, hole, barMillis, 0))
      )

    const fillOne = (gap: StoredGap, instrumentClass: Parameters<typeof gapsInHole>[0], barMillis: number) =>
      Effect.gen(function* () {
        // Another fill has it, or its attempts ran out meanwhile: leave it.
        if (!(yield* repo.claim(gap.id, config.gaps.maxAttempts))) return { outcome: "skipped" as const, recovered: 0 }
        const asked = yield* Effect.either(
          backfill.run({ symbol: gap.symbol, timeframe: gap.timeframe, from: gap.start, to: gap.end + barMillis, purpose: "gap_fill", refetch: true })
        )
        const at = new Date(yield* Clock.currentTimeMillis).toISOString()
        if (asked._tag === "Left") {
          // The vendor or the store failed: nothing was learned about the range, so the gap stays open as it was, with
          // the reason; once its attempts reach GAP_FILL_MAX_ATTEMPTS, `fill` leaves it alone.
          const status: GapStatus = gap.status === "partially_filled" ? "partially_filled" : "detected"
          yield* repo.settle(gap.id, { status, remaining: null, evidence: { at, error: asked.left.message } })
          return { outcome: "failed" as const, recovered: 0, error: asked.left }
        }
        const remaining = yield* stillMissing(gap, instrumentClass, barMillis)
        const missing = remaining.reduce((n, g) => n + g.missingBars, 0)
        const recovered = gap.missingBars - missing
        const evidence = { at, asked: { from: new Date(gap.start).toISOString(), to: new Date(gap.end + barMillis).toISOString() }, vendorBars: asked.right.fetched, requests: asked.right.requests }
        if (missing === 0) {
          yield* repo.settle(gap.id, { status: "filled", remaining: null, evidence })
          return { outcome: "filled" as const, recovered }
        }
        const shrunk: Gap = { start: remaining[0]!.start, end: remaining.at(-1)!.end, missingBars: missing }
        // Nothing came back for the exact range: the vendor has no bars there (fetch_log holds the requests).
        if (asked.right.fetched === 0 || recovered === 0) {
          yield* repo.settle(gap.id, { status: "unfillable", remaining: shrunk, evidence })
          return { outcome: "unfillable" as const, recovered }
        }
        yield* repo.settle(gap.id, { status: "partially_filled", remaining: shrunk, evidence })
        return { outcome: "partially_filled" as const, recovered }
      })

    /** Asks the vendor again for every open gap in the range whose attempts are not used up. */
    const fill = (range: GapRange) =>
      Effect.gen(function* () {
        const spec = yield* backfill.specFor(range.symbol)
        const barMillis = timeframeMillis[range.timeframe]
        const open = yield* repo.list(range.symbol, range.timeframe, ["detected", "partially_filled", "filling"], range.from, range.to)
        const report = { attempted: 0, filled: 0, partiallyFilled: 0, unfillable: 0, failed: 0, barsRecovered: 0 }
        for (const gap of open.filter((g) => g.attempts < config.gaps.maxAttempts)) {
          const result = yield* fillOne(gap, spec.instrumentClass, barMillis)
          if (result.outcome === "skipped") continue
          // A refused key, an unknown endpoint or symbol: every other gap would get the same answer, so the fill
          // stops here and fails with the vendor's reason.
          if (result.outcome === "failed" && failsEveryGap(result.error)) return yield* Effect.fail(result.error)
          report.attempted += 1
          report.barsRecovered += result.recovered
          if (result.outcome === "filled") report.filled += 1
          else if (result.outcome === "partially_filled") report.partiallyFilled += 1
          else if (result.outcome === "unfillable") report.unfillable += 1
          else report.failed += 1
        }
        return report satisfies FillReport
      }).pipe(Effect.withSpan("Gaps.fill"))

    /**
     * Completeness per month: bars the calendar expects, bars stored, gaps by status and rejected bars by rule —
     * what a researcher checks before trusting a month.
     */
    const report = (range: GapRange) =>
      Effect.gen(function* () {
        const { spec, barMillis, from, to } = yield* resolveRange(range)
        const present = yield* sql<{ month: string; n: number }>`
          SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM') AS month, count(*)::int AS n FROM candles
          WHERE symbol = ${range.symbol} AND timeframe = ${range.timeframe} AND ts >= ${new Date(from)} AND ts < ${new Date(to)}
          GROUP BY 1`
        const gaps = yield* sql<{ month: string; status: GapStatus; n: number }>`
          SELECT to_char(gap_start AT TIME ZONE 'UTC', 'YYYY-MM') AS month, status, count(*)::int AS n FROM data_gaps
          WHERE symbol = ${range.symbol} AND timeframe = ${range.timeframe} AND gap_start >= ${new Date(from)} AND gap_start < ${new Date(to)}
          GROUP BY 1, 2`
        const rejected = yield* sql<{ month: string; rule: string; n: number }>`
          SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM') AS month, rule, count(*)::int AS n FROM rejected_candles
          WHERE symbol = ${range.symbol} AND timeframe = ${range.timeframe} AND ts >= ${new Date(from)} AND ts < ${new Date(to)}
          GROUP BY 1, 2`
        const months: Array<MonthQuality> = []
        for (let cursor = new Date(from); cursor.getTime() < to; ) {
          const monthStart = Date.UTC(cursor.getUTCFullYear(), cursor.getUTCMonth(), 1)
          const monthEnd = Date.UTC(cursor.getUTCFullYear(), cursor.getUTCMonth() + 1, 1)
          const month = new Date(monthStart).toISOString().slice(0, 7)
          const expected = expectedBars(spec.instrumentClass, Math.max(from, monthStart), Math.min(to, monthEnd), barMillis)
          const stored = present.find((p) => p.month === month)?.n ?? 0
          const gapCount = (statuses: ReadonlyArray<GapStatus>) =>
            gaps.filter((g) => g.month === month && statuses.includes(g.status)).reduce((n, g) => n + g.n, 0)
          months.push({
            month,
            expected,
            present: stored,
            completeness: expected === 0 ? null : Math.round((stored / expected) * 10_000) / 100,
            gapsOpen: gapCount(["detected", "filling", "partially_filled"]),
            gapsFilled: gapCount(["filled"]),
            gapsUnfillable: gapCount(["unfillable"]),
            rejected: Object.fromEntries(rejected.filter((r) => r.month === month).map((r) => [r.rule, r.n]))
          })
          cursor = new Date(monthEnd)
        }
        return { symbol: range.symbol, timeframe: range.timeframe, from, to, months }
      }).pipe(Effect.withSpan("Gaps.report"))

    /** Gives the open gaps whose attempts ran out (GAP_FILL_MAX_ATTEMPTS) their attempts back, e.g. after an outage; returns how many. */
    const resetAttempts = (symbol: string, timeframe: Timeframe | null) =>
      Effect.flatMap(backfill.specFor(symbol), (spec) => repo.resetAttempts(spec.symbol, timeframe, config.gaps.maxAttempts))

    return { detect, fill, report, resetAttempts } as const
  })
}) {}
