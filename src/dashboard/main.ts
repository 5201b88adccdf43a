/**
 * The dashboard's entry point (bundled by src/dashboard/bundle.ts): reads the view from the URL, wires the chart,
 * the streams table, the quality heat map and the broker panel to the API and to the live event stream.
 */
import { api } from "./api.ts"
import { showBroker } from "./broker.ts"
import { ChartView, type Gap, type View } from "./chart.ts"
import { followEvents } from "./events.ts"
import { element, timeframeMillis, utc } from "./format.ts"
import { showQuality } from "./quality.ts"
import { StreamsTable, type StatusAnswer } from "./streams.ts"

interface SymbolsAnswer {
  readonly symbols: ReadonlyArray<{ readonly symbol: string }>
}

const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T

const symbolSelect = byId<HTMLSelectElement>("symbol")
const timeframeSelect = byId<HTMLSelectElement>("timeframe")
const fillBox = byId<HTMLInputElement>("fill")
const gapDetail = byId<HTMLElement>("gap-detail")

const parseInstant = (text: string | null): number | undefined => {
  if (text === null || text === "") return undefined
  const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text.length === 10 ? `${text}T00:00:00Z` : /Z|[+-]\d\d:\d\d$/.test(text) ? text : `${text}Z`)
  return Number.isFinite(ms) ? ms : undefined
}

/** The view the URL names; what it leaves out falls back to the first symbol and H1. */
const viewFromUrl = (symbols: ReadonlyArray<string>): View => {
  const params = new URLSearchParams(location.search)
  const symbol = (params.get("symbol") ?? "").toUpperCase()
  const timeframe = (params.get("timeframe") ?? "").toUpperCase()
  const from = parseInstant(params.get("from"))
  const to = parseInstant(params.get("to"))
  return {
    symbol: symbols.includes(symbol) ? symbol : (symbols[0] ?? ""),
    timeframe: timeframe in timeframeMillis ? timeframe : "H1",
    fill: params.get("fill") === "prev",
    ...(from !== undefined && to !== undefined && from < to ? { from, to } : {})
  }
}

const writeUrl = (view: View, mode: "push" | "replace") => {
  const params = new URLSearchParams({ symbol: view.symbol, timeframe: view.timeframe })
  if (view.from !== undefined && view.to !== undefined) {
    params.set("from", new Date(view.from).toISOString().slice(0, 19) + "Z")
    params.set("to", new Date(view.to).toISOString().slice(0, 19) + "Z")
  }
  if (view.fill) params.set("fill", "prev")
  const url = `/?${params}`
  if (mode === "push") history.pushState(null, "", url)
  else history.replaceState(null, "", url)
}

const showGap = (gap: Gap) => {
  const list = gapDetail.querySelector("dl")!
  const rows: Array<[string, string]> = [
    ["status", gap.status],
    ["timeframe", gap.timeframe],
    ["first missing bar", `${utc(gap.start)} UTC`],
    ["last missing bar", `${utc(gap.end)} UTC`],
    ["missing bars", String(gap.missingBars)],
    ["attempts", String(gap.attempts)]
  ]
  list.replaceChildren(...rows.flatMap(([term, value]) => [element("dt", { text: term }), element("dd", { text: value })]))
  gapDetail.querySelector("pre")!.textContent = gap.evidence === null || gap.evidence === undefined ? "no evidence recorded yet (not asked of the vendor again)" : JSON.stringify(gap.evidence, null, 2)
  gapDetail.dataset.gapId = String(gap.id)
  gapDetail.hidden = false
  byId<HTMLButtonElement>("gap-close").focus()
}

const main = async () => {
  const symbols = (await api<SymbolsAnswer>("/api/data/symbols")).body.symbols.map((s) => s.symbol)
  symbolSelect.replaceChildren(...symbols.map((s) => element("option", { text: s })))
  timeframeSelect.replaceChildren(...Object.keys(timeframeMillis).map((tf) => element("option", { text: tf })))
  let view = viewFromUrl(symbols)

  const chart = new ChartView(byId("chart"), byId("gap-bands"), byId("chart-status"), showGap, (from, to) => {
    view = { ...view, from: Math.round(from), to: Math.round(to) }
    writeUrl(view, "replace")
  })
  let brokerStreams: StatusAnswer["broker"]["streams"] = []
  const streams = new StreamsTable(byId("streams").querySelector("tbody")!, byId("streams-status"), (status) => {
    const changed = status.broker.streams.length !== brokerStreams.length
    brokerStreams = status.broker.streams
    if (changed) void showBroker(byId("broker-section"), byId("broker"), byId("broker-chart"), view.symbol, brokerStreams)
  })

  const gapList = byId<HTMLUListElement>("gap-list")
  const listGaps = () =>
    gapList.replaceChildren(
      ...chart.gapList().map((gap) => {
        const button = element("button", { text: `${utc(gap.start)} → ${utc(gap.end)} · ${gap.missingBars} bars · ${gap.status}` })
        button.type = "button"
        button.addEventListener("click", () => {
          const margin = Math.max(gap.end - gap.start, 60 * (timeframeMillis[view.timeframe] ?? 60_000))
          view = { ...view, from: gap.start - margin, to: gap.end + margin }
          writeUrl(view, "push")
          void chart.show(view).then(() => showGap(gap))
        })
        return element("li", {}, button)
      })
    )

  /** Everything that depends on the view; with `symbolChanged`, also the heat map and the broker panel. */
  const load = async (symbolChanged: boolean) => {
    symbolSelect.value = view.symbol
    timeframeSelect.value = view.timeframe
    fillBox.checked = view.fill
    gapDetail.hidden = true
    if (symbolChanged) {
      void showQuality(byId("quality"), view.symbol, view.timeframe)
      void showBroker(byId("broker-section"), byId("broker"), byId("broker-chart"), view.symbol, brokerStreams)
    }
    await chart.show(view)
    listGaps()
    document.body.dataset.ready = "true"
  }

  const change = (next: View) => {
    const symbolChanged = next.symbol !== view.symbol || next.timeframe !== view.timeframe
    view = next
    writeUrl(view, "push")
    void load(symbolChanged)
  }
  symbolSelect.addEventListener("change", () => change({ symbol: symbolSelect.value, timeframe: view.timeframe, fill: view.fill }))
  timeframeSelect.addEventListener("change", () => change({ symbol: view.symbol, timeframe: timeframeSelect.value, fill: view.fill }))
  fillBox.addEventListener("change", () => change({ ...view, fill: fillBox.checked }))
  byId("latest").addEventListener("click", () => change({ symbol: view.symbol, timeframe: view.timeframe, fill: view.fill }))
  byId("gap-close").addEventListener("click", () => {
    gapDetail.hidden = true
    byId("chart").focus()
  })
  window.addEventListener("popstate", () => {
    const next = viewFromUrl(symbols)
    const symbolChanged = next.symbol !== view.symbol
    view = next
    void load(symbolChanged)
  })

  followEvents(
    (event) => {
      streams.onEvent(event)
      if (event.type === "page" && event.stream !== undefined) void chart.live(event.stream)
      if (event.type === "job" && /^gap_fill /.test(event.job ?? "")) void chart.refreshGaps().then(listGaps)
    },
    () => void streams.refresh(),
    (connected) => {
      document.body.dataset.live = connected ? "connected" : "reconnecting"
      byId("live").textContent = connected ? "● live" : "○ reconnecting…"
    }
  )
  // The handle a person (or a test) can inspect in the console; the page itself never reads it.
  Object.assign(window, { candlekeep: { chart } })
  await load(true)
}

main().catch((error) => {
  byId("chart-status").textContent = `the dashboard could not start: ${(error as Error).message}`
})
