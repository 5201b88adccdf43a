import { createChart, LineSeries, type ISeriesApi, type UTCTimestamp } from "lightweight-charts"
import { api, ApiError } from "./api.ts"
import { chartTheme, element, onSchemeChange, themeColour, utc } from "./format.ts"

interface OffsetAnswer {
  readonly mean_pips: number | null
  readonly std_pips: number | null
  readonly quotes: number
  readonly threshold_pips: number
  readonly recommendation: { readonly use_offset: boolean; readonly offset: number | null }
}
interface HistoryAnswer {
  readonly comparisons: ReadonlyArray<{ compared_at: string; status: string; samples: number; one_sided_share: number | null; diff_pips: { mean: number } | null }>
}

let line: ISeriesApi<"Line"> | null = null

/** Where a broker is configured for the symbol: the latest offset, the last comparison's one-sided share, and the offset's history as a line. */
export const showBroker = async (section: HTMLElement, summary: HTMLElement, chartBox: HTMLElement, symbol: string, streams: ReadonlyArray<{ readonly account: string; readonly symbol: string }>) => {
  const stream = streams.find((s) => s.symbol === symbol)
  section.hidden = stream === undefined
  if (stream === undefined) return
  const query = new URLSearchParams({ symbol, account: stream.account })
  try {
    const [offset, history] = await Promise.all([
      api<OffsetAnswer>(`/api/data/broker/offset?${query}`),
      api<HistoryAnswer>(`/api/data/broker/history?${query}&start=${new Date(Date.now() - 30 * 86_400_000).toISOString()}`)
    ])
    const latest = history.body.comparisons.at(-1)
    const fmt = (n: number | null | undefined, digits = 2) => (n === null || n === undefined ? "—" : n.toFixed(digits))
    summary.replaceChildren(
      element(
        "dl",
        {},
        element("dt", { text: "account" }), element("dd", { text: stream.account }),
        element("dt", { text: "offset (pips)" }), element("dd", { text: `${fmt(offset.body.mean_pips)} ± ${fmt(offset.body.std_pips)} over ${offset.body.quotes} quotes` }),
        element("dt", { text: "recommendation" }), element("dd", { text: offset.body.recommendation.use_offset ? `add ${offset.body.recommendation.offset}` : `none (under ${offset.body.threshold_pips} pips)` }),
        element("dt", { text: "last comparison" }), element("dd", { text: latest === undefined ? "—" : `${fmt(latest.diff_pips?.mean)} pips over ${latest.samples} minutes (${latest.status}, ${utc(latest.compared_at)})` }),
        element("dt", { text: "one-sided minutes" }), element("dd", { text: latest?.one_sided_share === null || latest === undefined ? "—" : `${(latest.one_sided_share * 100).toFixed(1)} % (${utc(latest.compared_at)})` })
      )
    )
    if (line === null) {
      const chart = createChart(chartBox, { autoSize: true, ...chartTheme() })
      const series = chart.addSeries(LineSeries, { lineWidth: 2, color: themeColour("--accent") })
      onSchemeChange(() => {
        chart.applyOptions(chartTheme())
        series.applyOptions({ color: themeColour("--accent") })
      })
      line = series
    }
    // One point per second at most, in time order, as the chart requires.
    const points = new Map<number, number>()
    for (const c of history.body.comparisons) if (c.diff_pips !== null) points.set(Math.floor(Date.parse(c.compared_at) / 1000), c.diff_pips.mean)
    line.setData([...points].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time: time as UTCTimestamp, value })))
  } catch (error) {
    summary.replaceChildren(element("p", { text: `broker comparison unavailable: ${error instanceof ApiError ? error.message : (error as Error).message}` }))
  }
}
