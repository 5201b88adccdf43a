import { Effect } from "effect"
import { AppConfig, configuredStreams } from "../config.ts"
import { streamName } from "../domain/stream.ts"
import { Broker } from "../pipeline/broker.ts"
import { SyncRepo } from "../store/sync-repo.ts"
import type { Api } from "./api.ts"
import { iso } from "./params.ts"


/** `GET /api/data/status`: every configured stream, from the shared database, whichever instance runs it. */
export const statusRoutes = (api: Api<AppConfig | SyncRepo | Broker>) =>
  api.route(
    {
      method: "get",
      path: "/api/data/status",
      tag: "streams",
      summary: "Every stream: state, watermark, lag, last success, last error, bars stored, owner instance; and the broker streams",
      access: "read",
      responses: { 200: "`{streams:[…]}`" }
    },
    (_, c) =>
      Effect.gen(function* () {
        const config = yield* AppConfig
        const states = new Map((yield* SyncRepo.use((r) => r.states)).map((s) => [streamName(s), s]))
        const broker = yield* Broker.use((b) => b.states())
        const brokerStates = new Map(broker.streams.map((s) => [`${s.account}:${s.symbol}`, s]))
        return c.json({
          streams: configuredStreams(config).map((stream) => {
            const state = states.get(streamName(stream))
            return {
              stream: streamName(stream),
              symbol: stream.symbol,
              timeframe: stream.timeframe,
              state: state?.status ?? "not_started",
              watermark: iso(state?.watermark ?? null),
              lag_seconds: state?.lagSeconds === null || state?.lagSeconds === undefined ? null : Math.round(state.lagSeconds),
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
                state: state?.status ?? "not_started",
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
