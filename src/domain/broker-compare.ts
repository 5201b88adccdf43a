/**
 * Comparing a broker's prices with the vendor's: minute-by-minute alignment in UTC, the statistics of the
 * close difference (broker − vendor), and the offset of the broker's quotes. Pure functions, no I/O.
 */

const minute = 60_000

/** A close at a time (Unix ms, UTC): a vendor bar, a broker candle. */
export interface ClosePoint {
  readonly ts: number
  readonly close: number
}

/** A broker quote sampled at `ts` (Unix ms, UTC). */
export interface QuotePoint {
  readonly ts: number
  readonly bid: number
  readonly ask: number
}

/** Mean, largest absolute value and sample standard deviation (n − 1; 0 for a single value). */
export interface Stats {
  readonly mean: number
  readonly maxAbs: number
  readonly std: number
}

/** The minute (open time of the M1 bar) holding `ms`. */
export const minuteOf = (ms: number): number => Math.floor(ms / minute) * minute

/** Statistics of a list of numbers; null when it is empty. */
export const stats = (values: ReadonlyArray<number>): Stats | null => {
  const n = values.length
  if (n === 0) return null
  let sum = 0
  let maxAbs = 0
  for (const v of values) {
    sum += v
    maxAbs = Math.max(maxAbs, Math.abs(v))
  }
  const mean = sum / n
  let squares = 0
  for (const v of values) squares += (v - mean) ** 2
  return { mean, maxAbs, std: n < 2 ? 0 : Math.sqrt(squares / (n - 1)) }
}

/** The same statistics in pips. */
export const inPips = (s: Stats, pip: number): Stats => ({ mean: s.mean / pip, maxAbs: s.maxAbs / pip, std: s.std / pip })

/** One minute present on both sides. */
export interface AlignedMinute {
  readonly ts: number
  readonly vendor: number
  readonly broker: number
  /** broker − vendor. */
  readonly diff: number
}

export interface Alignment {
  readonly pairs: ReadonlyArray<AlignedMinute>
  /** Minutes (open times) inside the window present on one side only, oldest first. */
  readonly vendorOnly: ReadonlyArray<number>
  readonly brokerOnly: ReadonlyArray<number>
}

const byMinute = (points: ReadonlyArray<ClosePoint>, from: number, to: number): Map<number, number> => {
  const map = new Map<number, number>()
  for (const p of points) {
    const ts = minuteOf(p.ts)
    if (ts >= from && ts < to) map.set(ts, p.close)
  }
  return map
}

/** Pairs the two sides minute by minute inside [from, to); a minute repeated on one side keeps its last close. */
export const alignByMinute = (
  vendor: ReadonlyArray<ClosePoint>,
  broker: ReadonlyArray<ClosePoint>,
  window: { readonly from: number; readonly to: number }
): Alignment => {
  const v = byMinute(vendor, window.from, window.to)
  const b = byMinute(broker, window.from, window.to)
  const pairs: Array<AlignedMinute> = []
  const vendorOnly: Array<number> = []
  for (const [ts, close] of v) {
    const other = b.get(ts)
    if (other === undefined) vendorOnly.push(ts)
    else pairs.push({ ts, vendor: close, broker: other, diff: other - close })
  }
  const brokerOnly = [...b.keys()].filter((ts) => !v.has(ts))
  const ascending = (x: number, y: number) => x - y
  return { pairs: pairs.sort((x, y) => x.ts - y.ts), vendorOnly: vendorOnly.sort(ascending), brokerOnly: brokerOnly.sort(ascending) }
}

export interface WindowComparison {
  /** Minutes present on both sides. */
  readonly samples: number
  readonly vendorMinutes: number
  readonly brokerMinutes: number
  readonly vendorOnly: number
  readonly brokerOnly: number
  /** (vendorOnly + brokerOnly) / minutes on either side; null when neither side has a minute. */
  readonly oneSidedShare: number | null
  /** broker − vendor close, in price; null without samples. */
  readonly diff: Stats | null
  readonly diffPips: Stats | null
}

/** The close difference over a window, in price and in pips, and how much of the window only one side has. */
export const compareWindow = (
  vendor: ReadonlyArray<ClosePoint>,
  broker: ReadonlyArray<ClosePoint>,
  window: { readonly from: number; readonly to: number },
  pip: number
): WindowComparison => {
  const aligned = alignByMinute(vendor, broker, window)
  const samples = aligned.pairs.length
  const union = samples + aligned.vendorOnly.length + aligned.brokerOnly.length
  const diff = stats(aligned.pairs.map((p) => p.diff))
  return {
    samples,
    vendorMinutes: samples + aligned.vendorOnly.length,
    brokerMinutes: samples + aligned.brokerOnly.length,
    vendorOnly: aligned.vendorOnly.length,
    brokerOnly: aligned.brokerOnly.length,
    oneSidedShare: union === 0 ? null : (aligned.vendorOnly.length + aligned.brokerOnly.length) / union,
    diff,
    diffPips: diff === null ? null : inPips(diff, pip)
  }
}

export interface QuoteOffset {
  /** Quotes considered. */
  readonly quotes: number
  /** Quotes with a vendor bar of the same minute: the ones measured. */
  readonly matched: number
  /** Of broker mid − vendor close; null when nothing matched. */
  readonly mean: number | null
  readonly std: number | null
  readonly meanPips: number | null
  readonly stdPips: number | null
  /** `offset` (price units, to add to the vendor's price) is the mean when |mean| exceeds the threshold, else 0; null when nothing matched. */
  readonly recommendation: { readonly useOffset: boolean; readonly offset: number | null }
}

/**
 * The broker's offset from the vendor: broker mid ((bid + ask) / 2) minus the close of the vendor bar of the
 * same UTC minute, over the quotes; applying it is recommended when |mean| exceeds `thresholdPips`.
 */
export const quoteOffset = (
  quotes: ReadonlyArray<QuotePoint>,
  vendor: ReadonlyArray<ClosePoint>,
  pip: number,
  thresholdPips: number
): QuoteOffset => {
  const closes = new Map(vendor.map((bar) => [minuteOf(bar.ts), bar.close]))
  const diffs: Array<number> = []
  for (const quote of quotes) {
    const close = closes.get(minuteOf(quote.ts))
    if (close !== undefined) diffs.push((quote.bid + quote.ask) / 2 - close)
  }
  const s = stats(diffs)
  const useOffset = s !== null && Math.abs(s.mean) > thresholdPips * pip
  return {
    quotes: quotes.length,
    matched: diffs.length,
    mean: s?.mean ?? null,
    std: s?.std ?? null,
    meanPips: s === null ? null : s.mean / pip,
    stdPips: s === null ? null : s.std / pip,
    recommendation: { useOffset, offset: s === null ? null : useOffset ? s.mean : 0 }
  }
}
