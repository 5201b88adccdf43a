import { SqlClient } from "@effect/sql"
import { Clock, Effect, Ref } from "effect"
import type { Candle, CandleSource } from "../domain/candle.ts"
import type { SymbolSpec } from "../domain/symbol.ts"
import { timeframeMillis, type Timeframe } from "../domain/timeframe.ts"
import { initialSpikeState, validatePage, type SpikeState } from "../domain/validation.ts"
import { CandleStore } from "../store/candle-store.ts"
import { QuarantineRepo } from "../store/quarantine-repo.ts"
import { SyncRepo, type FetchPurpose } from "../store/sync-repo.ts"

/** One page as it came from a source, with what is needed to log it and move the watermark. */
export interface PageInput {
  readonly spec: SymbolSpec
  readonly timeframe: Timeframe
  readonly source: CandleSource
  readonly purpose: FetchPurpose
  /** The range asked of the source, [from, to) in Unix ms. */
  readonly range: { readonly from: number; readonly to: number }
  readonly candles: ReadonlyArray<Candle>
  readonly requestId: string | null
  readonly httpStatus: number | null
  /** Where the stream's watermark may move once this page is stored; null leaves it alone (gap fills, imports). */
  readonly advanceTo: number | null
}

export interface PageReport {
  readonly received: number
  readonly inserted: number
  readonly updated: number
  readonly unchanged: number
  readonly rejected: number
  /** Bars still forming (their minute has not closed): not stored, and the watermark stays before them. */
  readonly forming: number
  readonly digitsTooLow: number
}

/** How many stored bars the outlier rule looks back on when a stream (re)starts. */
const spikeHistory = 50

/**
 * A page is the unit of work: validated, then written in one transaction with its quarantine, its
 * fetch_log entry and the stream's watermark; the rollups are refreshed after the commit.
 */
export class Ingest extends Effect.Service<Ingest>()("Pipeline/Ingest", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const store = yield* CandleStore
    const quarantine = yield* QuarantineRepo
    const syncRepo = yield* SyncRepo
    // The outlier rule's memory per stream, seeded from the store the first time a stream writes.
    const spikeStates = yield* Ref.make(new Map<string, SpikeState>())

    const spikeStateFor = (spec: SymbolSpec, timeframe: Timeframe, before: number) =>
      Effect.gen(function* () {
        const known = (yield* Ref.get(spikeStates)).get(`${spec.symbol}:${timeframe}`)
        if (known) return known
        const history = yield* store.barsBefore(spec.symbol, timeframe, before, spikeHistory)
        return initialSpikeState(history)
      })

    const writePage = (input: PageInput) =>
      Effect.gen(function* () {
        const { spec, timeframe } = input
        const now = yield* Clock.currentTimeMillis
        const first = input.candles.reduce((min, c) => Math.min(min, c.ts), input.range.from)
        const state = yield* spikeStateFor(spec, timeframe, first)
        const checked = validatePage({ spec, timeframe, candles: input.candles, now, state })
        // The watermark never passes a bar that is still forming.
        const firstForming = checked.forming.reduce((min, c) => Math.min(min, c.ts), Number.POSITIVE_INFINITY)
        const advanceTo = input.advanceTo === null ? null : Math.min(input.advanceTo, firstForming)

        const written = yield* sql.withTransaction(
          Effect.gen(function* () {
            const upsert = yield* store.upsertPage({ symbol: spec.symbol, timeframe, source: input.source, candles: checked.accepted })
            yield* quarantine.quarantine(spec.symbol, timeframe, input.source, checked.rejected)
            yield* syncRepo.logFetch({
              symbol: spec.symbol,
              timeframe,
              purpose: input.purpose,
              from: input.range.from,
              to: input.range.to,
              barsReceived: input.candles.length,
              requestId: input.requestId,
              status: input.candles.length === 0 ? "empty" : "ok",
              httpStatus: input.httpStatus,
              error: null
            })
            if (advanceTo !== null) {
              yield* syncRepo.advance({ symbol: spec.symbol, timeframe, watermark: advanceTo, barsStored: upsert.inserted })
            }
            return upsert
          })
        )
        yield* Ref.update(spikeStates, (map) => new Map(map).set(`${spec.symbol}:${timeframe}`, checked.state))

        if (timeframe === "M1" && checked.accepted.length > 0) {
          const touched = checked.accepted.map((c) => c.ts)
          yield* store.refreshAggregates(spec.symbol, {
            from: Math.min(...touched),
            to: Math.max(...touched) + timeframeMillis.M1
          })
        }
        return {
          received: input.candles.length,
          inserted: written.inserted,
          updated: written.updated,
          unchanged: written.unchanged,
          rejected: checked.rejected.length,
          forming: checked.forming.length,
          digitsTooLow: checked.digitsTooLow
        } satisfies PageReport
      }).pipe(
        Effect.withSpan("Ingest.writePage", {
          attributes: { symbol: input.spec.symbol, timeframe: input.timeframe, bars: input.candles.length }
        })
      )

    /** A failed request is evidence too: it is logged, and the stream's failure count goes up. */
    const recordFailedFetch = (input: {
      readonly symbol: string
      readonly timeframe: Timeframe
      readonly purpose: FetchPurpose
      readonly range: { readonly from: number; readonly to: number }
      readonly requestId: string | null
      readonly httpStatus: number | null
      readonly error: string
    }) =>
      sql.withTransaction(
        Effect.zipRight(
          syncRepo.logFetch({
            symbol: input.symbol,
            timeframe: input.timeframe,
            purpose: input.purpose,
            from: input.range.from,
            to: input.range.to,
            barsReceived: 0,
            requestId: input.requestId,
            status: "error",
            httpStatus: input.httpStatus,
            error: input.error
          }),
          syncRepo.recordFailure(input.symbol, input.timeframe, input.error)
        )
      )

    return { writePage, recordFailedFetch } as const
  })
}) {}
