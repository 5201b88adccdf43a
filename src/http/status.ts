import { Clock, Effect } from "effect"
import { AppConfig, configuredStreams, massiveDelayMinutes, type AppConfigShape } from "../config.ts"
import { lagSeconds } from "../domain/settle.ts"
import { streamName } from "../domain/stream.ts"
import { Broker } from "../pipeline/broker.ts"
import { SyncRepo, type StreamState } from "../store/sync-repo.ts"
import type { Api } from "./api.ts"
import { answer, StatusAnswer } from "./contract.ts"
import { iso } from "./params.ts"

/** The plan's delay a stream works with: as its last sync recorded it (the vendor may have said DELAYED), else the setting's. */
export const streamDelayMinutes = (config: AppConfigShape, state: StreamState | undefined): number =>
  state?.delayMinutes ?? massiveDelayMinutes(config.massive)

/** How far a stream trails what its plan can deliver (now minus the delay), in whole seconds of open market. */
export const streamLagSeconds = (config: AppConfigShape, state: StreamState | undefined, now: number): number | null => {
  const spec = config.symbols.find((s) => s.symbol === state?.symbol)
  if (state === undefined || spec === undefined) return null
  const lag = lagSeconds(spec.instrumentClass, state.watermark, now - streamDelayMinutes(config, state) * 60_000)
  return lag === null ? null : Math.round(lag)
}

/** `GET /api/data/status`: every configured stream, from the shared database, whichever instance runs it. */
export const statusRoutes = (api: Api<AppConfig | SyncRepo | Broker>) =>
  api.route(
    {
      method: "get",
      path: "/api/data/status",
      tag: "streams",
      summary: "Every stream: state, watermark, lag behind what the plan delivers, the plan's delay and first answered day, last success, last error, bars stored, owner instance; and the broker streams",
      access: "read",
      responses: { 200: StatusAnswer }
    },
    (_, c) =>
      Effect.gen(function* () {
        const config = yield* AppConfig
        const now = yield* Clock.currentTimeMillis
        const states = new Map((yield* SyncRepo.use((r) => r.states)).map((s) => [streamName(s), s]))
        const broker = yield* Broker.use((b) => b.states())
        const brokerStates = new Map(broker.streams.map((s) => [`${s.account}:${s.symbol}`, s]))
        return answer(c, StatusAnswer, {
          streams: configuredStreams(config).map((stream) => {
            const state = states.get(streamName(stream))
            return {
              stream: streamName(stream),
              symbol: stream.symbol,
              timeframe: stream.timeframe,
              state: state?.status ?? ("not_started" as const),
              watermark: iso(state?.watermark ?? null),
              // Measured from what the plan can deliver, over open market only.
              lag_seconds: streamLagSeconds(config, state, now),
              delay_minutes: streamDelayMinutes(config, state),
              history_from: iso(state?.historyFrom ?? null),
              last_success_at: iso(state?.lastSuccessAt ?? null),
              last_error: state?.lastError ?? null,
              consecutive_failures: state?.consecutiveFailures ?? 0,
              bars_stored: state?.barsStored ?? 0,
              owner: state?.owner ?? null
            }
          }),
          // Quote sampling per (account, symbol); `off` says why when MetaApi is not configured.
          broker: {
            off: broker.off,
            streams: (yield* Broker).streams.map((stream) => {
              const state = brokerStates.get(`${stream.account}:${stream.symbol}`)
              return {
                stream: `broker/${stream.account}:${stream.symbol}`,
                account: stream.account,
                symbol: stream.symbol,
                broker_symbol: stream.brokerSymbol,
                state: state?.status ?? ("not_started" as const),
                last_quote_at: iso(state?.lastQuoteAt ?? null),
                last_compare_at: iso(state?.lastCompareAt ?? null),
                last_compare_status: state?.lastCompareStatus ?? null,
                last_error: state?.lastError ?? null,
                consecutive_failures: state?.consecutiveFailures ?? 0,
                owner: state?.owner ?? null
              }
            })
          }
        })
      })
  )
