import { Effect, Option, Schema } from "effect"
import { AppConfig } from "../config.ts"
import { Gaps } from "../pipeline/gaps.ts"
import { GapRepo, type GapStatus } from "../store/gap-repo.ts"
import { Jobs } from "../supervisor/jobs.ts"
import type { Api } from "./api.ts"
import { BadRequest, Unavailable } from "./errors.ts"
import { accepted } from "./jobs.ts"
import { answer, GapsAnswer, GapsDetectedAnswer, JobAcceptedAnswer, QualityAnswer } from "./contract.ts"
import { Instant, InstantMillis, iso, Name, resolveStream, resolveSymbol, resolveTimeframe, TimeframeName } from "./params.ts"

const gapStatuses: ReadonlyArray<GapStatus> = ["detected", "filling", "filled", "partially_filled", "unfillable"]

/** `detected` or `detected,partially_filled`. */
const StatusList = Schema.String.pipe(
  Schema.filter((text) => text.split(",").every((s) => (gapStatuses as ReadonlyArray<string>).includes(s.trim())), {
    message: () => `expected one or more of ${gapStatuses.join(", ")}, separated by commas`
  })
).annotations({ description: `one or more of ${gapStatuses.join(", ")}, separated by commas` })

const SymbolParam = Schema.Struct({ symbol: Name })

const GapsQuery = Schema.Struct({
  timeframe: Schema.optional(TimeframeName),
  status: Schema.optional(StatusList),
  from: Schema.optional(Instant),
  to: Schema.optional(Instant)
})

export const GapRangeBody = Schema.Struct({
  symbol: Name,
  timeframe: Schema.optionalWith(TimeframeName, { default: () => "M1" }),
  from: Schema.optional(Schema.Union(InstantMillis, Instant)).annotations({ description: "default: the first stored bar" }),
  to: Schema.optional(Schema.Union(InstantMillis, Instant)).annotations({ description: "default: the watermark" })
})

const QualityQuery = Schema.Struct({
  timeframe: Schema.optionalWith(TimeframeName, { default: () => "M1" }),
  from: Schema.optional(Instant),
  to: Schema.optional(Instant)
})


const checkRange = (from: number | undefined, to: number | undefined) =>
  from !== undefined && to !== undefined && from >= to ? Effect.fail(new BadRequest({ field: "from", message: "from must be before to" })) : Effect.void

const rangeOf = (body: typeof GapRangeBody.Type) =>
  Effect.gen(function* () {
    const { spec, timeframe } = yield* resolveStream(body.symbol, body.timeframe)
    yield* checkRange(body.from, body.to)
    return { symbol: spec.symbol, timeframe, ...(body.from === undefined ? {} : { from: body.from }), ...(body.to === undefined ? {} : { to: body.to }) }
  })

/** Stored gaps, detection, refilling (a job) and the completeness report. */
export const gapRoutes = (api: Api<AppConfig | Gaps | GapRepo | Jobs>) => {
  api.route(
    {
      method: "get",
      path: "/api/data/gaps/:symbol",
      tag: "gaps",
      summary: "Stored gaps of a symbol, optionally of one timeframe and status",
      access: "read",
      params: SymbolParam,
      query: GapsQuery,
      responses: { 200: GapsAnswer, 400: "a bad parameter", 404: "unknown symbol or timeframe" }
    },
    ({ params, query }, c) =>
      Effect.gen(function* () {
        const spec = yield* resolveSymbol(params.symbol)
        const timeframe = query.timeframe === undefined ? null : yield* resolveTimeframe(query.timeframe)
        yield* checkRange(query.from, query.to)
        const statuses = query.status === undefined ? null : (query.status.split(",").map((s) => s.trim()) as Array<GapStatus>)
        const gaps = yield* GapRepo.use((r) => r.list(spec.symbol, timeframe, statuses, query.from, query.to))
        return answer(c, GapsAnswer, {
          symbol: spec.symbol,
          count: gaps.length,
          gaps: gaps.map((g) => ({
            id: g.id,
            timeframe: g.timeframe,
            gap_start: iso(g.start),
            gap_end: iso(g.end),
            missing_bars: g.missingBars,
            status: g.status,
            attempts: g.attempts,
            evidence: g.evidence
          }))
        })
      })
  )
  api.route(
    {
      method: "post",
      path: "/api/data/gaps/detect",
      tag: "gaps",
      summary: "Find runs of missing bars inside open sessions in a range (default all history) and record them",
      access: "write",
      body: GapRangeBody,
      responses: { 200: GapsDetectedAnswer, 400: "a bad body", 404: "unknown symbol or timeframe" }
    },
    ({ body }, c) =>
      Effect.gen(function* () {
        const range = yield* rangeOf(body)
        const found = yield* Gaps.use((g) => g.detect(range))
        return answer(c, GapsDetectedAnswer, {
          symbol: range.symbol,
          timeframe: range.timeframe,
          from: iso(found.from),
          to: iso(found.to),
          count: found.gaps.length,
          recorded: found.recorded,
          gaps: found.gaps.map((g) => ({ gap_start: iso(g.start), gap_end: iso(g.end), missing_bars: g.missingBars }))
        })
      })
  )
  api.route(
    {
      method: "post",
      path: "/api/data/gaps/fill",
      tag: "gaps",
      summary: "Ask the vendor again for the open gaps of a range; answered at once with a job",
      access: "write",
      body: GapRangeBody,
      responses: { 202: JobAcceptedAnswer, 400: "a bad body", 404: "unknown symbol or timeframe", 503: "no vendor key configured" }
    },
    ({ body }, c) =>
      Effect.gen(function* () {
        const range = yield* rangeOf(body)
        const config = yield* AppConfig
        if (Option.isNone(config.massive.apiKey)) return yield* new Unavailable({ message: "MASSIVE_API_KEY is not set: gaps cannot be asked of the vendor" })
        const id = yield* Jobs.use((jobs) => jobs.fillGaps(range))
        return answer(c, JobAcceptedAnswer, accepted(id), 202)
      })
  )
  api.route(
    {
      method: "get",
      path: "/api/data/quality/:symbol",
      tag: "gaps",
      summary: "Completeness per month: expected bars (market calendar), present bars, gaps by status, rejected bars by rule",
      access: "read",
      params: SymbolParam,
      query: QualityQuery,
      responses: { 200: QualityAnswer, 400: "a bad parameter", 404: "unknown symbol or timeframe" }
    },
    ({ params, query }, c) =>
      Effect.gen(function* () {
        const { spec, timeframe } = yield* resolveStream(params.symbol, query.timeframe)
        yield* checkRange(query.from, query.to)
        const report = yield* Gaps.use((g) =>
          g.report({ symbol: spec.symbol, timeframe, ...(query.from === undefined ? {} : { from: query.from }), ...(query.to === undefined ? {} : { to: query.to }) })
        )
        return answer(c, QualityAnswer, {
          symbol: report.symbol,
          timeframe: report.timeframe,
          from: iso(report.from),
          to: iso(report.to),
          months: report.months.map((m) => ({
            month: m.month,
            expected: m.expected,
            present: m.present,
            completeness_pct: m.completeness,
            gaps_open: m.gapsOpen,
            gaps_filled: m.gapsFilled,
            gaps_unfillable: m.gapsUnfillable,
            rejected: m.rejected
          }))
        })
      })
  )
}
