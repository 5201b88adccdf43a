import { Schema } from "effect"
import { Candle } from "./candle.ts"
import { InstrumentClass, type SymbolSpec } from "./symbol.ts"
import { type Timeframe, timeframeMillis } from "./timeframe.ts"

/**
 * Checks and normalisation of one page of vendor bars, before they are written.
 *
 * Every bar ends in exactly one of three lists: `accepted` (store it), `forming` (valid, but its
 * period has not ended at `now`: the vendor will send it again, finished — the caller chooses
 * whether to store it now) or `rejected` (quarantine it under the name of the first rule it broke).
 * Rules run in the order of `RuleName`; a bar is judged against the spike rule only when it passed
 * all the others.
 */

/** The quarantine's rule names; stable, because `rejected_candles.rule` stores them. */
export const RuleName = Schema.Literal(
  "non_finite_price",
  "non_positive_price",
  "high_below_open_close",
  "low_above_open_close",
  "negative_volume",
  "misaligned_ts",
  "out_of_range",
  "future_ts",
  "price_spike"
)
export type RuleName = typeof RuleName.Type

/**
 * How many typical moves a bar may jump from the previous accepted close, per instrument class.
 * Tuned on the real files in ../shared/data (EURUSD and XAUUSD Jan–May 2021, BTCUSD March 2023,
 * which holds the SVB week): the largest one-minute jumps there, measured in median bar ranges,
 * were 36.6 (EURUSD, 2021-05-12 12:30 US CPI), 41.8 (XAUUSD, 2021-01-08 08:00) and
 * 32.9 (BTCUSD, 2023-03-03 01:31). The defaults leave about 40 % headroom over those and still
 * put a typical EURUSD minute's limit near 0.5 %, so a 2 % bad print is caught.
 */
export const SpikeThresholds = Schema.Record({ key: InstrumentClass, value: Schema.Number.pipe(Schema.positive()) })
export type SpikeThresholds = typeof SpikeThresholds.Type

export const defaultSpikeThresholds: Record<InstrumentClass, number> = { forex: 50, metal: 60, crypto: 50 }

/** The typical move is the median range (high − low) of this many last accepted bars. */
const windowBars = 50
/** Below this many ranges the median means little, so spikes are not judged yet (seed with `initialSpikeState`). */
const warmupBars = 10
/** The limit is never under 0.1 % of the price, so a flat, quiet market (median range 0) rejects nothing real. */
const floorFraction = 0.001
/**
 * After a hole of n bars the limit grows by √n (prices diffuse), capped at 30 (≈ 15 h of M1 bars):
 * a weekend, or gold's daily pause, widens the limit instead of quarantining the first bar after it.
 */
const timeFactorCap = 30
/**
 * A run of this many consecutive spikes that agree with each other is a real move, not a bad
 * print (a flash crash, a central-bank surprise): the whole run is accepted (its earlier bars released
 * from the quarantine, whichever page held them) and its last bar becomes the new anchor, so a genuine
 * fast move leaves no hole and one jump never locks a stream out forever.
 */
const levelShiftBars = 3

/**
 * What the spike rule remembers between pages; the caller keeps it with the stream's checkpoint.
 * A plain schema so it can be stored as JSON.
 */
export const SpikeState = Schema.Struct({
  /** The last accepted bar: spikes are measured from its close. */
  anchor: Schema.NullOr(Schema.Struct({ ts: Schema.Number, close: Schema.Number })),
  /** Ranges (high − low) of the last accepted bars, oldest first, at most 50. */
  ranges: Schema.Array(Schema.Number),
  /**
   * Consecutive spikes so far that agree with each other: a possible real level shift. `held` are those bars,
   * normalised, as quarantined: released if the run reaches its confirmation.
   */
  shift: Schema.NullOr(Schema.Struct({ ts: Schema.Number, close: Schema.Number, bars: Schema.Number, held: Schema.Array(Candle) }))
})
export type SpikeState = typeof SpikeState.Type

/** A fresh state, optionally seeded from the stream's last stored bars (oldest first) so a restart judges its first page. */
export const initialSpikeState = (
  recentBars: ReadonlyArray<Pick<Candle, "ts" | "high" | "low" | "close">> = []
): SpikeState => {
  const last = recentBars.at(-1)
  return {
    anchor: last === undefined ? null : { ts: last.ts, close: last.close },
    ranges: recentBars.slice(-windowBars).map((bar) => bar.high - bar.low),
    shift: null
  }
}

/**
 * A price rounded to the symbol's digits when the difference is float noise (1.2239400000000001 →
 * 1.22394). A price with more real decimals than `digits` (1.223945 on a 5-digit symbol) is kept
 * as sent and flagged: losing a vendor's digit is worse than a too-low `digits` setting.
 * Noise means within 1e-9 of the price and within a thousandth of the last digit; inside that
 * band no price sits near a rounding midpoint, so `toFixed`'s binary view of 1.005 cannot bite.
 */
/**
 * `Number(price.toFixed(digits))`, without the string on the common path (4 of them per bar were a tenth of a
 * backfill's CPU): a price within a thousandth of a step of a whole number of steps is that number of steps
 * divided by 10^digits — two exact integers, so the quotient is the double nearest the decimal, as `Number()` of
 * the string is. Anything else (a price with more digits, huge values) takes the string path.
 */
export const roundTo = (price: number, digits: number): number => {
  const scale = 10 ** digits
  const scaled = price * scale
  const steps = Math.round(scaled)
  return digits <= 15 && Math.abs(scaled) < 2 ** 40 && Math.abs(scaled - steps) < 1e-3 ? steps / scale : Number(price.toFixed(digits))
}

export const normalisePrice = (price: number, digits: number): { readonly price: number; readonly extraDigits: boolean } => {
  if (!Number.isFinite(price)) return { price, extraDigits: false }
  const rounded = roundTo(price, digits)
  const noise = Math.min(1e-9 * Math.abs(price), 10 ** -(digits + 3))
  return Math.abs(price - rounded) <= noise ? { price: rounded, extraDigits: false } : { price, extraDigits: true }
}

export interface Rejection {
  /** The bar as the vendor sent it (before rounding): what the quarantine keeps as `raw`. */
  readonly candle: Candle
  readonly rule: RuleName
  /** One line with the numbers, e.g. "high 1.2 < close 1.3". */
  readonly detail: string
}

export interface ValidatedPage {
  /** Finished, valid bars, rounded to the symbol's digits, sorted by `ts`. */
  readonly accepted: ReadonlyArray<Candle>
  readonly rejected: ReadonlyArray<Rejection>
  /**
   * Bars quarantined as `price_spike` (in this page or an earlier one) that the bars after them confirmed as a real
   * move: they are in `accepted` too, and the caller removes them from the quarantine.
   */
  readonly released: ReadonlyArray<Candle>
  /** Valid bars still forming at `now` (open ≤ now < open + bar length); they do not move the spike state. */
  readonly forming: ReadonlyArray<Candle>
  /** The spike state after this page: pass it with the next page of the same stream. */
  readonly state: SpikeState
  /** Bars carrying more decimals than `spec.digits`: the symbol's digits look too low. */
  readonly digitsTooLow: number
  /** Bars dropped because a later bar in the page had the same `ts` (the later one wins). */
  readonly duplicates: number
}

export interface ValidatePageInput {
  readonly spec: SymbolSpec
  readonly timeframe: Timeframe
  readonly candles: ReadonlyArray<Candle>
  /**
   * The current time, Unix ms: a bar opening after it is `future_ts` (more than one bar after it, or before 1970:
   * `out_of_range`); one open across it is forming.
   */
  readonly now: number
  readonly state: SpikeState
  readonly thresholds?: SpikeThresholds
}

const hour = 3_600_000
/** The largest instant a JavaScript Date holds; a vendor's nonsense `ts` beyond it is printed as a number. */
const maxDate = 8.64e15
const iso = (ms: number): string => (Number.isFinite(ms) && Math.abs(ms) <= maxDate ? new Date(ms).toISOString() : String(ms))
const short = (x: number): string => x.toPrecision(3)

/** Vendors start H4 and D1 bars at New York boundaries (17:00 local), so those only need whole hours. */
const alignmentMillis = (timeframe: Timeframe): number =>
  timeframe === "H4" || timeframe === "D1" ? hour : timeframeMillis[timeframe]

/** The first structural rule the bar breaks, or undefined. Prices are already normalised. */
const structuralFault = (
  bar: Candle,
  timeframe: Timeframe,
  now: number
): { readonly rule: RuleName; readonly detail: string } | undefined => {
  // The common case first, without allocating: a bar that breaks no rule (a million of them per backfill).
  const { open, high, low, close, volume, ts } = bar
  if (
    open > 0 && high > 0 && low > 0 && close > 0 && high < Infinity && low < Infinity && open < Infinity && close < Infinity &&
    high >= open && high >= close && low <= open && low <= close && volume >= 0 && volume < Infinity &&
    Number.isInteger(ts) && ts % alignmentMillis(timeframe) === 0 && ts >= 0 && ts <= now
  ) return undefined
  const prices = [["open", bar.open], ["high", bar.high], ["low", bar.low], ["close", bar.close]] as const
  const nonFinite = prices.find(([, price]) => !Number.isFinite(price))
  if (nonFinite) return { rule: "non_finite_price", detail: `${nonFinite[0]} ${nonFinite[1]} is not a finite number` }
  const nonPositive = prices.find(([, price]) => price <= 0)
  if (nonPositive) return { rule: "non_positive_price", detail: `${nonPositive[0]} ${nonPositive[1]} ≤ 0` }
  const top = bar.open >= bar.close ? "open" : "close"
  if (bar.high < bar[top]) return { rule: "high_below_open_close", detail: `high ${bar.high} < ${top} ${bar[top]}` }
  const bottom = bar.open <= bar.close ? "open" : "close"
  if (bar.low > bar[bottom]) return { rule: "low_above_open_close", detail: `low ${bar.low} > ${bottom} ${bar[bottom]}` }
  if (!Number.isFinite(bar.volume) || bar.volume < 0) {
    return { rule: "negative_volume", detail: `volume ${bar.volume} is not a finite number ≥ 0` }
  }
  const unit = alignmentMillis(timeframe)
  if (!Number.isInteger(bar.ts) || bar.ts % unit !== 0) {
    return { rule: "misaligned_ts", detail: `ts ${iso(bar.ts)} is not on a ${unit / 60_000}-minute UTC boundary (${timeframe})` }
  }
  // A bar from before 1970 or far in the future is a broken date (an import line dated 10000101), not history:
  // stored, it would make gap detection see centuries of "missing" bars.
  if (bar.ts < 0) return { rule: "out_of_range", detail: `ts ${iso(bar.ts)} is before 1970-01-01` }
  const barMillis = timeframeMillis[timeframe]
  if (bar.ts > now + barMillis) {
    return { rule: "out_of_range", detail: `ts ${iso(bar.ts)} is more than one ${timeframe} bar after now ${iso(now)}` }
  }
  if (bar.ts > now) return { rule: "future_ts", detail: `ts ${iso(bar.ts)} opens after now ${iso(now)}` }
  return undefined
}

/** The median of values already sorted ascending. */
const medianOfSorted = (sorted: ReadonlyArray<number>): number => {
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

interface SpikeCheck {
  readonly limit: number
  readonly jump: number
  readonly side: "high" | "low"
  /** Only read when the bar is rejected: building it for every bar costs more than the check. */
  readonly explain: () => string
}

const isSpike = (check: SpikeCheck): boolean => check.jump > check.limit

/** Index of the first value ≥ x in an ascending array. */
const lowerBound = (sorted: ReadonlyArray<number>, x: number): number => {
  let lo = 0
  let hi = sorted.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (sorted[mid]! < x) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** How far the bar's extremes reach from `from.close`, and how far they may, given the typical move and elapsed time. */
const measureJump = (
  bar: Candle,
  from: { readonly ts: number; readonly close: number },
  typical: number,
  k: number,
  barMillis: number
): SpikeCheck => {
  const elapsedBars = Math.max(1, Math.abs(bar.ts - from.ts) / barMillis)
  const timeFactor = Math.min(Math.sqrt(elapsedBars), timeFactorCap)
  const base = Math.max(k * typical, floorFraction * from.close)
  const up = bar.high - from.close
  const down = from.close - bar.low
  const [side, jump] = up >= down ? (["high", up] as const) : (["low", down] as const)
  const explain = () => {
    const basis = k * typical >= floorFraction * from.close
      ? `${k} × median range ${short(typical)}`
      : `floor ${floorFraction * 100}% of ${from.close}`
    return `${basis} × time factor ${timeFactor.toFixed(1)}`
  }
  return { limit: base * timeFactor, jump, side, explain }
}

/**
 * Validates and normalises one page of one stream. Bars are sorted by `ts`; when the page holds the
 * same `ts` twice the later bar in the page wins (vendors correct a bar by sending it again).
 * `price_spike` compares each bar's high and low with the previous accepted close (never with a
 * rejected one, so one bad print does not poison the next bar), against k × the median range of
 * the last 50 accepted bars (at least 0.1 % of the price), widened by √(bars elapsed) after a hole.
 */
export const validatePage = (input: ValidatePageInput): ValidatedPage => {
  const { spec, timeframe, now } = input
  const k = (input.thresholds ?? defaultSpikeThresholds)[spec.instrumentClass]
  const barMillis = timeframeMillis[timeframe]

  const byTs = new Map<number, Candle>()
  for (const bar of input.candles) byTs.set(bar.ts, bar)
  const sortKey = (bar: Candle): number => (Number.isNaN(bar.ts) ? Infinity : bar.ts)
  const page = [...byTs.values()].sort((a, b) => sortKey(a) - sortKey(b))

  const accepted: Array<Candle> = []
  const rejected: Array<Rejection> = []
  const released: Array<Candle> = []
  const forming: Array<Candle> = []
  let digitsTooLow = 0
  let { anchor, shift } = input.state
  const ranges = [...input.state.ranges]
  // The same ranges kept sorted, so each bar reads the median instead of sorting 50 numbers.
  const sortedRanges = [...ranges].sort((a, b) => a - b)

  for (const raw of page) {
    const open = normalisePrice(raw.open, spec.digits)
    const high = normalisePrice(raw.high, spec.digits)
    const low = normalisePrice(raw.low, spec.digits)
    const close = normalisePrice(raw.close, spec.digits)
    if (open.extraDigits || high.extraDigits || low.extraDigits || close.extraDigits) digitsTooLow++
    const bar: Candle = { ...raw, open: open.price, high: high.price, low: low.price, close: close.price }

    const fault = structuralFault(bar, timeframe, now)
    if (fault) {
      rejected.push({ candle: raw, ...fault })
      continue
    }
    const isForming = now < bar.ts + barMillis

    if (anchor !== null && ranges.length >= warmupBars) {
      const typical = medianOfSorted(sortedRanges)
      const check = measureJump(bar, anchor, typical, k, barMillis)
      if (isSpike(check)) {
        const run = shift !== null && !isSpike(measureJump(bar, shift, typical, k, barMillis)) ? shift.bars + 1 : 1
        if (isForming || run < levelShiftBars) {
          rejected.push({
            candle: raw,
            rule: "price_spike",
            detail: `${check.side} ${bar[check.side]} is ${short(check.jump)} from the previous accepted close ${anchor.close} ` +
              `(${iso(anchor.ts)}); limit ${short(check.limit)} = ${check.explain()}`
          })
          if (!isForming) shift = { ts: bar.ts, close: bar.close, bars: run, held: run === 1 ? [bar] : [...shift!.held, bar] }
          continue
        }
        // The run is confirmed: its earlier bars were a real move, not bad prints.
        for (const held of shift!.held) {
          released.push(held)
          accept(held)
        }
      }
    }

    if (isForming) {
      forming.push(bar)
      continue
    }
    accept(bar)
  }

  function accept(bar: Candle) {
    accepted.push(bar)
    shift = null
    // Bars with no news leave the state alone: a re-sent older bar (an overlap, a gap fill) must not move
    // the anchor backwards, and a flat no-volume filler at the anchor's price (exports that fill closed
    // markets) must not restart the clock of the weekend it fills nor count as a zero range.
    const filler = anchor !== null && bar.volume === 0 && bar.high === bar.low && bar.close === anchor.close
    if (anchor === null || (bar.ts > anchor.ts && !filler)) {
      anchor = { ts: bar.ts, close: bar.close }
      const range = bar.high - bar.low
      ranges.push(range)
      sortedRanges.splice(lowerBound(sortedRanges, range), 0, range)
      if (ranges.length > windowBars) sortedRanges.splice(lowerBound(sortedRanges, ranges.shift()!), 1)
    }
  }

  // A released bar of this page is no longer a rejection; one of an earlier page leaves the quarantine in the caller.
  const releasedTs = new Set(released.map((bar) => bar.ts))
  const stillRejected = rejected.filter((r) => r.rule !== "price_spike" || !releasedTs.has(r.candle.ts))

  return {
    accepted,
    rejected: stillRejected,
    released,
    forming,
    state: { anchor, ranges, shift },
    digitsTooLow,
    duplicates: input.candles.length - byTs.size
  }
}
