import type { Candle } from "../../src/domain/candle.ts"

const minute = 60_000

/** Flat, valid minute bars from `from`: for tests about flow (pages, watermarks, owners), not about prices. */
export const quietBars = (from: number, count: number, volume = 2): ReadonlyArray<Candle> =>
  Array.from({ length: count }, (_, i) => ({ ts: from + i * minute, open: 1.2, high: 1.2002, low: 1.1999, close: 1.2001, volume, vwap: null, trades: null }))
