import { Effect } from "effect"
import { AppConfig, configuredStreams } from "../config.ts"
import { pipSize } from "../domain/symbol.ts"
import type { Api } from "./api.ts"
import { answer, SymbolsAnswer } from "./contract.ts"

/** `GET /api/data/symbols`: what is configured, and which timeframes have a stream of their own. */
export const symbolRoutes = (api: Api<AppConfig>) =>
  api.route(
    { method: "get", path: "/api/data/symbols", tag: "symbols", summary: "Configured symbols with vendor ticker, instrument class, digits and streams", access: "read", responses: { 200: SymbolsAnswer } },
    (_, c) =>
      Effect.map(AppConfig, (config) =>
        answer(c, SymbolsAnswer, {
          symbols: config.symbols.map((s) => ({
            symbol: s.symbol,
            ticker: s.ticker,
            instrument_class: s.instrumentClass,
            digits: s.digits,
            pip_size: pipSize(s),
            streams: configuredStreams(config).filter((stream) => stream.symbol === s.symbol).map((stream) => stream.timeframe)
          }))
        })
      )
  )
