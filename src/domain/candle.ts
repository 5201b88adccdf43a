import { Schema } from "effect"
import { Timeframe } from "./timeframe.ts"

/** One OHLCV bar; `ts` is the bar's open time in Unix milliseconds, UTC. */
export const Candle = Schema.Struct({
  ts: Schema.Number,
  open: Schema.Number,
  high: Schema.Number,
  low: Schema.Number,
  close: Schema.Number,
  volume: Schema.Number,
  vwap: Schema.NullOr(Schema.Number),
  trades: Schema.NullOr(Schema.Number)
})
export type Candle = typeof Candle.Type

/** Where a stored bar came from. */
export const CandleSource = Schema.Literal("massive", "import", "metaapi")
export type CandleSource = typeof CandleSource.Type

/** A page of bars for one stream: the unit of work of every write. */
export interface CandlePage {
  readonly symbol: string
  readonly timeframe: Timeframe
  readonly source: CandleSource
  readonly candles: ReadonlyArray<Candle>
}

/** A bar as read back from the store; derived timeframes carry how many M1 bars they were built from. */
export interface StoredBar {
  readonly ts: number
  readonly open: number
  readonly high: number
  readonly low: number
  readonly close: number
  readonly volume: number
  readonly bars: number
  /** The vendor's volume-weighted price and trade count, where it sends them (null for rollups and imports without them). */
  readonly vwap?: number | null
  readonly trades?: number | null
}
