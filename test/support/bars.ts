import type { Candle } from "../../src/domain/candle.ts"

const minute = 60_000

/** Flat, valid minute bars from `from`: for tests about flow (pages, watermarks, owners), not about prices. */
export const quietBars = (from: number, count: number, volume = 2): ReadonlyArray<Candle> =>
  Array.from({ length: count }, (_, i) => ({ ts: from + i * minute, open: 1.2, high: 1.2002, low: 1.1999, close: 1.2001, volume, vwap: null, trades: null }))

/** A deterministic random walk of minute bars with varying volume: for tests about prices and rollups. */
export const walk = (symbol: string, start: number, count: number): ReadonlyArray<Candle> => {
  let price = symbol === "XAUUSD" ? 1850 : 1.2
  let seed = 7
  const next = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5
  return Array.from({ length: count }, (_, i) => {
    const open = price
    const close = Number((open + next() * 0.0004).toFixed(5))
    price = close
    return {
      ts: start + i * minute,
      open,
      high: Number((Math.max(open, close) + 0.0001).toFixed(5)),
      low: Number((Math.min(open, close) - 0.0001).toFixed(5)),
      close,
      volume: 10 + (i % 7),
      vwap: null,
      trades: i % 3 === 0 ? null : 5
    }
  })
}

