import type { Candle, StoredBar } from "../../src/domain/candle.ts"

/** An independent OHLCV aggregation in plain JS, to check the database's rollups against (which carry no vwap or trade count). */
export const aggregate = (candles: ReadonlyArray<Candle>, bucketOf: (ts: number) => number): ReadonlyArray<StoredBar> => {
  const buckets = new Map<number, { ts: number; open: number; high: number; low: number; close: number; volume: number; bars: number }>()
  for (const c of [...candles].sort((a, b) => a.ts - b.ts)) {
    const key = bucketOf(c.ts)
    const b = buckets.get(key)
    if (!b) buckets.set(key, { ts: key, open: c.open, high: c.high, low: c.low, close: c.close, volume: c.volume, bars: 1 })
    else {
      b.high = Math.max(b.high, c.high)
      b.low = Math.min(b.low, c.low)
      b.close = c.close
      b.volume += c.volume
      b.bars += 1
    }
  }
  return [...buckets.values()].sort((a, b) => a.ts - b.ts).map((b) => ({ ...b, vwap: null, trades: null }))
}

const newYorkParts = new Intl.DateTimeFormat("en-US", {
  timeZone: "America/New_York",
  hourCycle: "h23",
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit"
})

/** New York wall clock of an instant, as {date, hour, minute}. */
export const newYorkClock = (ms: number) => {
  const parts = Object.fromEntries(newYorkParts.formatToParts(new Date(ms)).map((p) => [p.type, p.value]))
  return { date: `${parts.year}-${parts.month}-${parts.day}`, hour: Number(parts.hour), minute: Number(parts.minute) }
}

/** The MT4 trading day of an instant: the New York date seven hours later (the day starts at 17:00 New York). */
export const newYorkTradingDay = (ms: number): string => newYorkClock(ms + 7 * 3_600_000).date

export const utcBucket = (width: number) => (ms: number) => ms - (ms % width)
