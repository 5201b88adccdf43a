import {
  CandlestickSeries,
  createChart,
  HistogramSeries,
  type CandlestickData,
  type HistogramData,
  type IChartApi,
  type ISeriesApi,
  type Logical,
  type UTCTimestamp,
  type WhitespaceData
} from "lightweight-charts"
import { api } from "./api.ts"
import { chartTheme, element, onSchemeChange, themeColour, timeframeMillis, utc } from "./format.ts"

export interface Bar {
  readonly ts: number
  readonly open: number | null
  readonly high: number | null
  readonly low: number | null
  readonly close: number | null
  readonly volume: number
  readonly filled: boolean
}

/** A stored gap; `start` and `end` are the open times of its first and last missing bar (as the API gives them). */
export interface Gap {
  readonly id: number
  readonly timeframe: string
  readonly start: number
  readonly end: number
  readonly missingBars: number
  readonly status: string
  readonly attempts: number
  readonly evidence: unknown
}

interface CandlesAnswer {
  readonly candles: ReadonlyArray<{ ts: string; open: number | null; high: number | null; low: number | null; close: number | null; volume: number; filled?: boolean }>
  readonly next: number | null
}
interface GapsAnswer {
  readonly gaps: ReadonlyArray<{ id: number; timeframe: string; gap_start: string; gap_end: string; missing_bars: number; status: string; attempts: number; evidence: unknown }>
}

export interface View {
  readonly symbol: string
  readonly timeframe: string
  readonly from?: number
  readonly to?: number
  readonly fill: boolean
}

/** A run of bar slots the chart has no bar for: the band's class by the gap's status. */
const bandClass = (status: string) => (status === "filled" ? "filled" : status === "unfillable" ? "unfillable" : "open")

/** Whitespace slots are added for a gap only up to this many, so a years-long hole cannot flood the chart. */
const maxWhitespacePerGap = 20_000
/** An empty stretch this long before the oldest bar means the history starts there. */
const historyEndsAfterEmptyMillis = 12 * 86_400_000
/** Older pages are asked for when fewer than this many bars are left of the visible range. */
const loadWhenBarsLeft = 30
const seconds = (ms: number) => (ms / 1000) as UTCTimestamp

const lastAtOrBefore = (points: ReadonlyArray<{ readonly ts: number }>, t: number): number => {
  let lo = 0
  let hi = points.length - 1
  let found = -1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    if (points[mid]!.ts <= t) {
      found = mid
      lo = mid + 1
    } else hi = mid - 1
  }
  return found
}

/**
 * The candlestick + volume chart of one symbol and timeframe: loads the linked range, then older pages as the
 * user scrolls left (newer ones to the right, live ones from page events), draws stored gaps as bands over the
 * exact slots they cover (the missing slots are whitespace points, so a hole keeps its width) and, with fill
 * on, the previous-close stand-ins hollow.
 */
export class ChartView {
  readonly chart: IChartApi
  readonly candles: ISeriesApi<"Candlestick">
  readonly volume: ISeriesApi<"Histogram">
  private view: View = { symbol: "", timeframe: "H1", fill: false }
  private bars: Array<Bar> = []
  /** Exactly the series' points, in order: index i is logical position i. */
  private points: Array<{ readonly ts: number; readonly bar: Bar | null }> = []
  private gaps: Array<Gap> = []
  private oldestReached = false
  private newestReached = false
  private loadingOlder = false
  private loadingNewer = false
  /** A page event came while newer bars were being read: read again once that is done. */
  private liveAgain: string | null = null
  /** Increments on every new view, so answers for an old view are dropped. */
  private generation = 0
  private bandFrame = 0
  private urlTimer = 0

  constructor(
    private readonly container: HTMLElement,
    private readonly bandLayer: HTMLElement,
    private readonly status: HTMLElement,
    private readonly onGap: (gap: Gap) => void,
    private readonly onRange: (from: number, to: number) => void
  ) {
    this.chart = createChart(container, { autoSize: true, timeScale: { timeVisible: true, secondsVisible: false }, localization: { dateFormat: "yyyy-MM-dd" } })
    this.candles = this.chart.addSeries(CandlestickSeries, { priceLineVisible: false })
    this.volume = this.chart.addSeries(HistogramSeries, { priceScaleId: "volume", priceFormat: { type: "volume" }, lastValueVisible: false, priceLineVisible: false })
    this.chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } })
    this.candles.priceScale().applyOptions({ scaleMargins: { top: 0.05, bottom: 0.25 } })
    this.applyTheme()
    this.chart.timeScale().subscribeVisibleLogicalRangeChange((range) => {
      this.scheduleBands()
      if (range === null) return
      if (range.from < loadWhenBarsLeft) void this.loadOlder()
      if (range.to > this.points.length - loadWhenBarsLeft) void this.loadNewer()
      clearTimeout(this.urlTimer)
      this.urlTimer = window.setTimeout(() => {
        const visible = this.chart.timeScale().getVisibleRange()
        if (visible !== null) this.onRange(Number(visible.from) * 1000, Number(visible.to) * 1000)
      }, 300)
    })
    this.chart.timeScale().subscribeSizeChange(() => this.scheduleBands())
    this.chart.subscribeClick((param) => {
      if (param.point === undefined) return
      const x = param.point.x
      const hit = [...this.bandLayer.children].find((band) => {
        const el = band as HTMLElement
        return !el.hidden && x >= Number(el.dataset.left) && x <= Number(el.dataset.right)
      }) as HTMLElement | undefined
      const gap = hit === undefined ? undefined : this.gaps.find((g) => String(g.id) === hit.dataset.gapId)
      if (gap !== undefined) this.onGap(gap)
    })
    container.addEventListener("keydown", (event) => {
      const scale = this.chart.timeScale()
      const spacing = scale.options().barSpacing
      if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
        scale.scrollToPosition(scale.scrollPosition() + (event.key === "ArrowLeft" ? -10 : 10), false)
      } else if (event.key === "+" || event.key === "=" || event.key === "-") {
        scale.applyOptions({ barSpacing: Math.max(0.5, Math.min(50, spacing * (event.key === "-" ? 0.8 : 1.25))) })
      } else return
      event.preventDefault()
    })
    onSchemeChange(() => {
      this.applyTheme()
      this.render()
    })
  }

  private applyTheme() {
    this.chart.applyOptions(chartTheme())
    const up = themeColour("--up")
    const down = themeColour("--down")
    this.candles.applyOptions({ upColor: up, downColor: down, wickUpColor: up, wickDownColor: down, borderUpColor: up, borderDownColor: down })
  }

  /** Shows another symbol, timeframe, range or fill mode: starts again from the linked range (or the newest bars). */
  async show(view: View): Promise<void> {
    this.view = view
    const generation = ++this.generation
    this.bars = []
    this.points = []
    this.oldestReached = false
    this.newestReached = false
    this.loadingOlder = false
    this.loadingNewer = false
    this.liveAgain = null
    this.candles.setData([])
    this.volume.setData([])
    this.setStatus("loading…")
    const [gaps] = await Promise.all([this.fetchGaps(), view.from !== undefined && view.to !== undefined ? this.loadRange(view.from, view.to, generation) : this.loadOlder(true)])
    if (generation !== this.generation) return
    this.gaps = gaps
    this.render()
    if (view.from !== undefined && view.to !== undefined) this.chart.timeScale().setVisibleRange({ from: seconds(view.from), to: seconds(view.to) })
    else {
      this.newestReached = true
      this.chart.timeScale().scrollToRealTime()
    }
    this.setStatus(this.bars.length === 0 ? "no bars in the last 12 days of this symbol and timeframe: pick a month in the quality map, or link a range" : "")
  }

  private setStatus(text: string) {
    this.status.textContent = text
  }

  private get barMillis() {
    return timeframeMillis[this.view.timeframe] ?? 3_600_000
  }

  private candlesPath(params: Record<string, string | number>) {
    const query = new URLSearchParams({ symbol: this.view.symbol, timeframe: this.view.timeframe, ...(this.view.fill ? { fill: "prev" } : {}) })
    for (const [key, value] of Object.entries(params)) query.set(key, String(value))
    return `/api/data/candles?${query}`
  }

  private async fetchPage(params: Record<string, string | number>): Promise<{ readonly bars: Array<Bar>; readonly next: number | null }> {
    const { body } = await api<CandlesAnswer>(this.candlesPath(params))
    return {
      bars: body.candles.map((c) => ({ ts: Date.parse(c.ts), open: c.open, high: c.high, low: c.low, close: c.close, volume: c.volume, filled: c.filled === true })),
      next: body.next
    }
  }

  private async fetchGaps(): Promise<Array<Gap>> {
    try {
      const { body } = await api<GapsAnswer>(`/api/data/gaps/${encodeURIComponent(this.view.symbol)}`)
      return body.gaps.map((g) => ({
        id: g.id,
        timeframe: g.timeframe,
        start: Date.parse(g.gap_start),
        end: Date.parse(g.gap_end),
        missingBars: g.missing_bars,
        status: g.status,
        attempts: g.attempts,
        evidence: g.evidence
      }))
    } catch {
      return []
    }
  }

  /** Reloads the stored gaps (after a gap job) and redraws their bands. */
  async refreshGaps() {
    const generation = this.generation
    const gaps = await this.fetchGaps()
    if (generation !== this.generation) return
    this.gaps = gaps
    this.render()
  }

  gapList(): ReadonlyArray<Gap> {
    return this.gaps
  }

  /**
   * The linked range and half its width again on either side (so the view does not start at an edge that
   * loads more at once), walked with the cursor: at most 50,000 bars; the rest comes as the user scrolls.
   */
  private async loadRange(from: number, to: number, generation: number) {
    const margin = Math.max(this.barMillis * 20, Math.round((to - from) / 2))
    to += margin
    let start: number | null = from - margin
    const loaded: Array<Bar> = []
    while (start !== null && loaded.length < 50_000) {
      const page = await this.fetchPage({ start, end: to, limit: 5_000 })
      if (generation !== this.generation) return
      loaded.push(...page.bars)
      start = page.next
    }
    this.merge(loaded)
  }

  /** One page of older bars; empty stretches (weekends, closures) are stepped over until the history ends. */
  private async loadOlder(initial = false): Promise<void> {
    if (this.loadingOlder || this.oldestReached || (!initial && this.bars.length === 0)) return
    this.loadingOlder = true
    const generation = this.generation
    try {
      const slots = this.view.timeframe === "M1" ? 1_440 : 1_000
      let end = this.bars[0]?.ts ?? this.view.to ?? Date.now()
      let empty = 0
      for (;;) {
        const start = Math.max(0, end - slots * this.barMillis)
        const page = await this.fetchPage({ start, end, limit: slots + 10 })
        if (generation !== this.generation) return
        if (page.bars.length > 0) {
          this.merge(page.bars)
          if (!initial) this.render(true)
          return
        }
        empty += end - start
        end = start
        if (empty >= Math.max(historyEndsAfterEmptyMillis, this.barMillis * slots) || start === 0) {
          this.oldestReached = true
          return
        }
      }
    } catch (error) {
      this.setStatus(`older bars could not be loaded: ${(error as Error).message}`)
    } finally {
      if (generation === this.generation) this.loadingOlder = false
    }
  }

  /** Newer bars after the last one, up to now; once none are left, live pages extend the chart. */
  private async loadNewer(): Promise<void> {
    const last = this.bars.at(-1)
    if (this.loadingNewer || this.newestReached || last === undefined) return
    this.loadingNewer = true
    const generation = this.generation
    try {
      const page = await this.fetchPage({ start: last.ts + 1, limit: 2_000 })
      if (generation !== this.generation) return
      if (page.bars.length === 0 || page.next === null) this.newestReached = true
      if (page.bars.length > 0) {
        this.merge(page.bars)
        this.render()
      }
    } catch (error) {
      this.setStatus(`newer bars could not be loaded: ${(error as Error).message}`)
    } finally {
      if (generation === this.generation) this.finishNewer()
    }
  }

  /** A page was stored for this symbol: when the chart shows the newest bars, the last bar and any new ones are asked again. */
  async live(stream: string) {
    const last = this.bars.at(-1)
    if (!stream.startsWith(`${this.view.symbol}:`) || !this.newestReached || last === undefined) return
    if (this.loadingNewer) {
      this.liveAgain = stream
      return
    }
    this.loadingNewer = true
    const generation = this.generation
    try {
      const page = await this.fetchPage({ start: last.ts, limit: 2_000 })
      if (generation !== this.generation || page.bars.length === 0) return
      this.merge(page.bars)
      this.render()
    } catch {
      // the next page event asks again
    } finally {
      if (generation === this.generation) this.finishNewer()
    }
  }

  private finishNewer() {
    const again = this.liveAgain
    this.loadingNewer = false
    this.liveAgain = null
    if (again !== null) void this.live(again)
  }

  private merge(incoming: ReadonlyArray<Bar>) {
    if (incoming.length === 0) return
    const byTime = new Map(this.bars.map((bar) => [bar.ts, bar]))
    for (const bar of incoming) byTime.set(bar.ts, bar)
    this.bars = [...byTime.values()].sort((a, b) => a.ts - b.ts)
  }

  /** The series' points: the bars, plus a whitespace point for each missing slot of a stored gap (UTC-aligned timeframes). */
  private buildPoints() {
    const first = this.bars[0]?.ts
    const last = this.bars.at(-1)?.ts
    const points = this.bars.map((bar) => ({ ts: bar.ts, bar: bar as Bar | null }))
    const B = this.barMillis
    if (first !== undefined && last !== undefined && B <= 3_600_000) {
      const present = new Set(this.bars.map((bar) => bar.ts))
      for (const gap of this.gaps) {
        if (gap.end < first || gap.start > last) continue
        const from = Math.max(first, Math.floor(gap.start / B) * B)
        const to = Math.min(last, gap.end)
        if ((to - from) / B > maxWhitespacePerGap) continue
        for (let t = from; t <= to; t += B) if (!present.has(t)) points.push({ ts: t, bar: null })
      }
      points.sort((a, b) => a.ts - b.ts)
    }
    return points
  }

  /** Hands the points to the chart; with `keepView`, the visible bars stay where they were after older ones arrive. */
  private render(keepView = false) {
    const scale = this.chart.timeScale()
    const before = keepView ? scale.getVisibleLogicalRange() : null
    const firstBefore = this.points[0]?.ts
    this.points = this.buildPoints()
    const hollow = themeColour("--hollow")
    const up = themeColour("--up-volume")
    const down = themeColour("--down-volume")
    this.candles.setData(
      this.points.map(({ ts, bar }): CandlestickData | WhitespaceData => {
        const time = seconds(ts)
        if (bar === null || bar.open === null || bar.high === null || bar.low === null || bar.close === null) return { time }
        const candle = { time, open: bar.open, high: bar.high, low: bar.low, close: bar.close }
        return bar.filled ? { ...candle, color: "rgba(0,0,0,0)", borderColor: hollow, wickColor: hollow } : candle
      })
    )
    this.volume.setData(
      this.points.map(({ ts, bar }): HistogramData | WhitespaceData =>
        bar === null || bar.filled ? { time: seconds(ts) } : { time: seconds(ts), value: bar.volume, color: (bar.close ?? 0) >= (bar.open ?? 0) ? up : down }
      )
    )
    if (before !== null && firstBefore !== undefined) {
      const added = this.points.findIndex((p) => p.ts === firstBefore)
      if (added > 0) scale.setVisibleLogicalRange({ from: (before.from + added) as Logical, to: (before.to + added) as Logical })
    }
    this.container.dataset.bars = String(this.bars.length)
    this.scheduleBands()
  }

  private scheduleBands() {
    if (this.bandFrame !== 0) return
    this.bandFrame = requestAnimationFrame(() => {
      this.bandFrame = 0
      this.drawBands()
    })
  }

  /** Each stored gap as a band from its first missing slot to its last, in the chart's own coordinates. */
  private drawBands() {
    const scale = this.chart.timeScale()
    const pane = this.chart.paneSize(0)
    this.bandLayer.style.width = `${pane.width}px`
    this.bandLayer.style.height = `${pane.height}px`
    const existing = new Map([...this.bandLayer.children].map((el) => [(el as HTMLElement).dataset.gapId, el as HTMLElement]))
    for (const gap of this.gaps) {
      let band = existing.get(String(gap.id))
      existing.delete(String(gap.id))
      if (band === undefined) {
        band = element("div", { className: "gap-band" })
        band.dataset.gapId = String(gap.id)
        this.bandLayer.append(band)
      }
      band.className = `gap-band ${bandClass(gap.status)}`
      band.dataset.status = gap.status
      const loadedFrom = this.points[0]?.ts ?? 0
      const loadedTo = (this.points.at(-1)?.ts ?? 0) + this.barMillis
      const first = Math.max(0, lastAtOrBefore(this.points, gap.start))
      const last = lastAtOrBefore(this.points, gap.end)
      const x0 = scale.logicalToCoordinate(first as Logical)
      const x1 = scale.logicalToCoordinate(last as Logical)
      const next = scale.logicalToCoordinate((last + 1) as Logical)
      if (gap.end < loadedFrom || gap.start >= loadedTo || last < 0 || this.points.length === 0 || x0 === null || x1 === null || next === null) {
        band.hidden = true
        continue
      }
      const half = Math.abs(next - x1) / 2
      const left = Math.max(0, x0 - half)
      const right = Math.min(pane.width, x1 + half)
      band.hidden = right <= 0 || left >= pane.width || right <= left
      band.style.left = `${left}px`
      band.style.width = `${Math.max(2, right - left)}px`
      band.dataset.left = String(left)
      band.dataset.right = String(right)
      band.title = `${gap.status} gap ${utc(gap.start)} – ${utc(gap.end)} UTC (first and last missing bar)`
    }
    for (const stale of existing.values()) stale.remove()
  }
}
