import { SqlClient } from "@effect/sql"
import { Cause, Clock, Data, Effect, Fiber, Metric, Option, Ref } from "effect"
import { barsRejected, barsStored } from "../metrics.ts"
import type { Candle, CandleSource } from "../domain/candle.ts"
import type { SymbolSpec } from "../domain/symbol.ts"
import type { Timeframe } from "../domain/timeframe.ts"
import { initialSpikeState, validatePage, type SpikeState } from "../domain/validation.ts"
import { CandleStore } from "../store/candle-store.ts"
import { QuarantineRepo } from "../store/quarantine-repo.ts"
import { Rollups } from "../store/rollups.ts"
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
  /** The runner whose stream loop writes the page: refused if another runner has claimed the stream since (see NotStreamOwner). */
  readonly owner?: string
}

/**
 * A stream loop's page refused because another runner now runs the stream (`sync_state.owner`): this loop lost its
 * shard (a freeze, a partition) and has not been stopped yet. Nothing of the page is written.
 */
export class NotStreamOwner extends Data.TaggedError("NotStreamOwner")<{ readonly stream: string; readonly owner: string; readonly claimedBy: string }> {
  override get message() {
    return `${this.stream} now runs on ${this.claimedBy}, not on ${this.owner}: this loop's page is refused`
  }
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

/**
 * How often a long run starts paying the rollups it owes: readers of H1 do not wait for its end, and the refresh runs
 * beside the writes instead of after them (a 1 M-bar TimescaleDB backfill: 8.5 s paying every 5 s, 7.1 s every 1 s).
 */
const payEveryMillis = 1_000

/** How many stored bars the outlier rule looks back on when a stream (re)starts. */
const spikeHistory = 50
/** How old a reference bar may be for the outlier rule (a long weekend is 4 days; months-old prices are no reference). */
const spikeMemory = 7 * 24 * 3_600_000

/**
 * A page is the unit of work: validated, then written in one transaction with its quarantine, its
 * fetch_log entry, the stream's watermark and the rollup hours it makes owed (paid by the run that wrote it,
 * see Rollups.pay, or by whoever pays next if that run is stopped first).
 */
export class Ingest extends Effect.Service<Ingest>()("Pipeline/Ingest", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const store = yield* CandleStore
    const quarantine = yield* QuarantineRepo
    const syncRepo = yield* SyncRepo
    const rollups = yield* Rollups
    // The outlier rule's memory per stream, seeded from the store the first time a stream writes.
    const spikeStates = yield* Ref.make(new Map<string, SpikeState>())

    /**
     * The outlier rule's state for a page starting at `first`: the stream's running state when the page carries
     * on from it, else one seeded from the bars stored just before the page — an import or gap fill of older
     * history is judged against its own neighbours, not against today's price. `live` says whether to keep it.
     */
    const spikeStateFor = (spec: SymbolSpec, timeframe: Timeframe, first: number) =>
      Effect.gen(function* () {
        const known = (yield* Ref.get(spikeStates)).get(`${spec.symbol}:${timeframe}`)
        const continues = known !== undefined && (known.anchor === null || (first >= known.anchor.ts && first - known.anchor.ts <= spikeMemory))
        if (continues) return { state: known, live: true }
        // Bars older than a week say nothing about today's moves: after a long pause the rule starts afresh.
        const history = (yield* store.barsBefore(spec.symbol, timeframe, first, spikeHistory)).filter((bar) => first - bar.ts <= spikeMemory)
        return { state: initialSpikeState(history), live: known === undefined || first >= (known.anchor?.ts ?? 0) }
      })

    const writePage = (input: PageInput) =>
      Effect.gen(function* () {
        const { spec, timeframe } = input
        const now = yield* Clock.currentTimeMillis
        // The page's own first bar, not its window's start: the second page of a window carries on from the first
        // (the running state), instead of being judged against the bars stored before the window.
        const first = input.candles.length === 0 ? input.range.from : input.candles.reduce((min, c) => Math.min(min, c.ts), Number.POSITIVE_INFINITY)
        const spike = yield* spikeStateFor(spec, timeframe, first)
        const checked = validatePage({ spec, timeframe, candles: input.candles, now, state: spike.state })
        // The watermark never passes a bar that is still forming.
        const firstForming = checked.forming.reduce((min, c) => Math.min(min, c.ts), Number.POSITIVE_INFINITY)
        const advanceTo = input.advanceTo === null ? null : Math.min(input.advanceTo, firstForming)

        const written = yield* sql.withTransaction(
          Effect.gen(function* () {
            // The ownership check and the write are one transaction: a runner claiming the stream waits for it, or comes first.
            if (input.owner !== undefined) {
              const claimedBy = yield* syncRepo.claimedBy(spec.symbol, timeframe)
              if (claimedBy !== null && claimedBy !== input.owner) {
                return yield* new NotStreamOwner({ stream: `${spec.symbol}:${timeframe}`, owner: input.owner, claimedBy })
              }
            }
            const upsert = yield* store.upsertPage({ symbol: spec.symbol, timeframe, source: input.source, candles: checked.accepted })
            yield* quarantine.quarantine(spec.symbol, timeframe, input.source, checked.rejected)
            // Spikes of an earlier page that this page's bars confirmed as a real move are stored now (in `accepted`).
            yield* quarantine.releaseSpikes(spec.symbol, timeframe, checked.released.map((bar) => bar.ts))
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
        yield* Metric.incrementBy(barsStored, written.inserted + written.updated)
        yield* Metric.incrementBy(barsRejected, checked.rejected.length)
        if (spike.live) yield* Ref.update(spikeStates, (map) => new Map(map).set(`${spec.symbol}:${timeframe}`, checked.state))

        // A page leaves tens of MB of garbage (JSON text, parsed bars, SQL array text); collecting it now keeps a
        // long backfill or import at one page's worth of memory instead of whatever the engine lets pile up.
        yield* Effect.sync(() => Bun.gc(true))
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

    /**
     * Runs a writer of many pages and pays the rollups it owes. `payAsWeGo`, called after each page, starts a
     * payment in the background when `payEveryMillis` have passed since the last one began (never two at once), so
     * PostgreSQL rebuilds rollups while the next pages are fetched and written. The run returns once the last
     * payment is done, whether it succeeded or failed part-way: a command that wrote bars returns once their
     * rollups are right. Interrupted (a stop), it leaves them owed to the next payer.
     */
    const payingRollups = <A, E, R>(run: (payAsWeGo: Effect.Effect<void>) => Effect.Effect<A, E, R>) =>
      Effect.gen(function* () {
        const scope = yield* Effect.scope
        const lastStarted = yield* Ref.make(yield* Clock.currentTimeMillis)
        const inFlight = yield* Ref.make<Option.Option<Fiber.RuntimeFiber<void>>>(Option.none())
        const payAsWeGo = Effect.gen(function* () {
          const now = yield* Clock.currentTimeMillis
          if (now - (yield* Ref.get(lastStarted)) < payEveryMillis) return
          if (Option.exists(yield* Ref.get(inFlight), (fiber) => fiber.unsafePoll() === null)) return
          yield* Ref.set(lastStarted, now)
          // A failed payment leaves its debts owed: the next one (at the latest the run's last) pays them.
          yield* Ref.set(inFlight, Option.some(yield* Effect.forkIn(Effect.ignoreLogged(rollups.pay), scope)))
        })
        const settle = Effect.flatMap(Ref.get(inFlight), Option.match({ onNone: () => Effect.void, onSome: Fiber.join }))
        return yield* run(payAsWeGo).pipe(
          Effect.onError((cause) => (Cause.isInterruptedOnly(cause) ? Effect.void : Effect.zipRight(settle, Effect.ignoreLogged(rollups.pay)))),
          Effect.tap(() => Effect.zipRight(settle, rollups.pay))
        )
      }).pipe(Effect.scoped)

    return { writePage, recordFailedFetch, payingRollups } as const
  })
}) {}
