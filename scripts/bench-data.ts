import { Effect } from "effect"
import { writeFileSync } from "node:fs"
import { CandleStore } from "../src/store/candle-store.ts"
import type { Candle, CandlePage } from "../src/domain/candle.ts"
import { defaultSymbols } from "../src/domain/symbol.ts"

/** One symbol's bars over consecutive minutes, oldest first. */
export interface BenchStream {
  readonly symbol: string
  readonly ticker: string
  readonly candles: ReadonlyArray<Candle>
}

/** Starting prices and per-minute volatility; crypto bars carry vwap and trades as Massive sends them. */
const instruments = [
  { symbol: "EURUSD", price: 1.22, step: 0.00012, withFlow: false },
  { symbol: "GBPUSD", price: 1.36, step: 0.00015, withFlow: false },
  { symbol: "USDJPY", price: 103.2, step: 0.011, withFlow: false },
  { symbol: "XAUUSD", price: 1890, step: 0.45, withFlow: false },
  { symbol: "BTCUSD", price: 23_400, step: 18, withFlow: true }
] as const

/** First bar's open time: Monday 2021-01-04 00:00 UTC. */
const firstMinute = Date.UTC(2021, 0, 4)
const minute = 60_000

/** sfc32: a small seeded generator, so every run writes the same bars. */
const seeded = (seed: number) => {
  let a = 0x9e3779b9
  let b = 0x243f6a88
  let c = 0xb7e15162
  let d = seed >>> 0
  const next = () => {
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0
    const t = (a + b + d) >>> 0
    d = (d + 1) >>> 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) >>> 0
    c = (c << 21) | (c >>> 11)
    c = (c + t) >>> 0
    return t / 4294967296
  }
  for (let i = 0; i < 12; i++) next()
  return next
}


/**
 * `bars` M1 bars spread evenly over five default symbols, each a gentle random walk over consecutive minutes,
 * quoted at the symbol's digits (USDJPY 103.212, BTCUSD 23400.17). Rounding is monotonic, so high and low still
 * enclose open and close, and no move comes near the spike rule's limit.
 */
export const generateStreams = (bars: number, seed = 20210104, symbols: number = instruments.length): ReadonlyArray<BenchStream> => {
  const random = seeded(seed)
  const gaussian = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())
  const chosen = instruments.slice(0, symbols)
  return chosen.map((instrument, index) => {
    const spec = defaultSymbols.find((s) => s.symbol === instrument.symbol)
    if (spec === undefined) throw new Error(`bench symbol ${instrument.symbol} is not among the default symbols`)
    const scale = 10 ** spec.digits
    const quote = (price: number) => Math.round(price * scale) / scale
    const count = Math.floor(bars / chosen.length) + (index < bars % chosen.length ? 1 : 0)
    const candles: Array<Candle> = new Array(count)
    let price: number = instrument.price
    for (let i = 0; i < count; i++) {
      const open = quote(price)
      const close = quote(Math.max(open + gaussian() * instrument.step, instrument.step))
      const high = quote(Math.max(open, close) + Math.abs(gaussian()) * instrument.step * 0.5)
      const low = quote(Math.max(Math.min(open, close) - Math.abs(gaussian()) * instrument.step * 0.5, instrument.step / 2))
      const volume = 1 + Math.floor(random() * 2_000)
      candles[i] = {
        ts: firstMinute + i * minute,
        open,
        high,
        low,
        close,
        volume,
        vwap: instrument.withFlow ? quote(low + (high - low) * random()) : null,
        trades: instrument.withFlow ? 1 + Math.floor(volume / (1 + random() * 9)) : null
      }
      price = close
    }
    return { symbol: spec.symbol, ticker: spec.ticker, candles }
  })
}

/** The streams cut into pages of at most `size` bars, symbol by symbol, oldest page first. */
export const toPages = (streams: ReadonlyArray<BenchStream>, size: number): ReadonlyArray<CandlePage> =>
  streams.flatMap((stream) => {
    const pages: Array<CandlePage> = []
    for (let at = 0; at < stream.candles.length; at += size) {
      pages.push({ symbol: stream.symbol, timeframe: "M1", source: "import", candles: stream.candles.slice(at, at + size) })
    }
    return pages
  })

/** The columns `csvLine` writes, in order: the `candles` table minus `ingested_at`. */
export const csvColumns = ["symbol", "timeframe", "ts", "open", "high", "low", "close", "volume", "vwap", "trades", "source"] as const

/** Writes the bars as CSV (no header, empty = NULL) for `COPY ... (FORMAT csv)`. */
export const writeCsv = (streams: ReadonlyArray<BenchStream>, path: string): void => {
  const lines: Array<string> = []
  for (const stream of streams) {
    for (const bar of stream.candles) {
      lines.push(
        `${stream.symbol},M1,${new Date(bar.ts).toISOString()},${bar.open},${bar.high},${bar.low},${bar.close},${bar.volume},${bar.vwap ?? ""},${bar.trades ?? ""},import`
      )
    }
  }
  writeFileSync(path, lines.join("\n") + "\n")
}

/** Upserts the pages in order through `CandleStore.upsertPage`; only the upserts are timed. */
export const timedUpserts = (pages: ReadonlyArray<CandlePage>) =>
  Effect.gen(function* () {
    const store = yield* CandleStore
    let stored = 0
    const start = performance.now()
    for (const page of pages) {
      const report = yield* store.upsertPage(page)
      stored += report.inserted + report.updated
    }
    return { stored, seconds: (performance.now() - start) / 1000 }
  })
