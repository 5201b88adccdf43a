import { api, ApiError } from "./api.ts"
import { element } from "./format.ts"

interface QualityAnswer {
  readonly months: ReadonlyArray<{ month: string; expected: number; present: number; completeness_pct: number | null; gaps_open: number; gaps_filled: number; gaps_unfillable: number }>
}

/** Red below 90 %, through amber, to green at 100 %. */
const hue = (pct: number) => Math.round(Math.max(0, Math.min(1, (pct - 90) / 10)) * 120)

/**
 * The monthly completeness of a symbol's M1 bars as a heat map (a year per row, a month per column); each
 * cell links the chart to that month.
 */
export const showQuality = async (target: HTMLElement, symbol: string, timeframe: string) => {
  target.replaceChildren(element("p", { text: "loading…" }))
  try {
    const { body } = await api<QualityAnswer>(`/api/data/quality/${encodeURIComponent(symbol)}?timeframe=M1`)
    if (body.months.length === 0) return target.replaceChildren(element("p", { text: "no M1 bars stored for this symbol yet" }))
    const years = [...new Set(body.months.map((m) => m.month.slice(0, 4)))].sort()
    const byMonth = new Map(body.months.map((m) => [m.month, m]))
    const head = element("tr", {}, element("th", { text: "year" }), ...Array.from({ length: 12 }, (_, i) => element("th", { text: String(i + 1).padStart(2, "0") })))
    const rows = years.map((year) =>
      element(
        "tr",
        {},
        element("th", { text: year }),
        ...Array.from({ length: 12 }, (_, i) => {
          const key = `${year}-${String(i + 1).padStart(2, "0")}`
          const month = byMonth.get(key)
          const cell = element("td")
          if (month === undefined || month.completeness_pct === null) return cell
          const from = `${key}-01`
          const next = new Date(Date.UTC(Number(year), i + 1, 1)).toISOString().slice(0, 10)
          const link = element("a", { text: month.completeness_pct.toFixed(1) })
          link.href = `/?${new URLSearchParams({ symbol, timeframe, from, to: next })}`
          link.className = "cell"
          link.style.setProperty("--hue", String(hue(month.completeness_pct)))
          link.setAttribute(
            "aria-label",
            `${key}: ${month.completeness_pct}% complete, ${month.present} of ${month.expected} bars, ${month.gaps_open} open, ${month.gaps_filled} filled, ${month.gaps_unfillable} unfillable gaps`
          )
          link.title = link.getAttribute("aria-label")!
          cell.append(link)
          return cell
        })
      )
    )
    target.replaceChildren(element("table", { className: "heat" }, element("thead", {}, head), element("tbody", {}, ...rows)))
  } catch (error) {
    target.replaceChildren(element("p", { text: `no report: ${error instanceof ApiError ? error.message : (error as Error).message}` }))
  }
}
