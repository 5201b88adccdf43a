import { Schema } from "effect"

export const InstrumentClass = Schema.Literal("forex", "metal", "crypto")
export type InstrumentClass = typeof InstrumentClass.Type

/** A configured instrument: our name, the vendor's ticker, how many decimals a price carries, which calendar it trades on. */
export const SymbolSpec = Schema.Struct({
  symbol: Schema.String.pipe(Schema.pattern(/^[A-Z0-9]{3,12}$/)),
  ticker: Schema.String,
  digits: Schema.Int.pipe(Schema.between(0, 10)),
  instrumentClass: InstrumentClass
})
export type SymbolSpec = typeof SymbolSpec.Type

export const defaultSymbols: ReadonlyArray<SymbolSpec> = [
  { symbol: "XAUUSD", ticker: "C:XAUUSD", digits: 3, instrumentClass: "metal" },
  { symbol: "EURUSD", ticker: "C:EURUSD", digits: 5, instrumentClass: "forex" },
  { symbol: "GBPUSD", ticker: "C:GBPUSD", digits: 5, instrumentClass: "forex" },
  { symbol: "USDJPY", ticker: "C:USDJPY", digits: 3, instrumentClass: "forex" },
  { symbol: "BTCUSD", ticker: "X:BTCUSD", digits: 2, instrumentClass: "crypto" }
]

/** Size of one pip in price units: 0.0001 for 5-digit pairs, 0.01 for 3-digit ones. */
export const pipSize = (spec: SymbolSpec): number => Math.pow(10, -Math.max(0, spec.digits - 1))
