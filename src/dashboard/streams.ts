import { api, ApiError } from "./api.ts"
import { duration, element, utc } from "./format.ts"
import type { LiveEvent } from "./events.ts"

export interface StreamRow {
  readonly stream: string
  readonly symbol: string
  readonly timeframe: string
  readonly state: string
  readonly watermark: string | null
  readonly lag_seconds: number | null
  readonly delay_minutes: number
  readonly history_from: string | null
  readonly last_error: string | null
  readonly owner: string | null
}

export interface StatusAnswer {
  readonly streams: ReadonlyArray<StreamRow>
  readonly broker: { readonly off: string | null; readonly streams: ReadonlyArray<{ readonly account: string; readonly symbol: string; readonly state: string }> }
}

interface JobAnswer {
  readonly job: { readonly id: string; readonly url: string }
}
interface Job {
  readonly status: string
  readonly result: { readonly stored?: number; readonly fetched?: number } | null
  readonly error: string | null
}

const describe = (error: unknown) => (error instanceof ApiError ? `${error.status}: ${error.message}` : (error as Error).message)

/**
 * The streams table: every stream from `/api/data/status`, its cells changed in place by live events (so focus
 * stays on a button), re-read shortly after a change for what events do not carry (lag, owner). Each row has
 * "sync now" (a job, followed to its end) and "retry" (enabled only when the stream is failed).
 */
export class StreamsTable {
  private rows = new Map<string, { readonly tr: HTMLTableRowElement; readonly cells: Record<string, HTMLTableCellElement>; readonly retry: HTMLButtonElement }>()
  private refreshTimer = 0

  constructor(
    private readonly body: HTMLTableSectionElement,
    private readonly status: HTMLElement,
    private readonly onStatus: (answer: StatusAnswer) => void
  ) {}

  async refresh() {
    try {
      const { body } = await api<StatusAnswer>("/api/data/status")
      for (const row of body.streams) this.apply(row)
      this.onStatus(body)
    } catch (error) {
      this.status.textContent = `status could not be read: ${describe(error)}`
    }
  }

  private refreshSoon() {
    clearTimeout(this.refreshTimer)
    this.refreshTimer = window.setTimeout(() => void this.refresh(), 1_000)
  }

  private row(stream: string, symbol: string, timeframe: string) {
    const known = this.rows.get(stream)
    if (known !== undefined) return known
    const names = ["stream", "state", "watermark", "lag", "error", "owner", "history", "delay", "actions"] as const
    const cells = Object.fromEntries(names.map((name) => [name, element("td", { className: name })])) as Record<string, HTMLTableCellElement>
    const tr = element("tr", {}, ...names.map((name) => cells[name]!))
    tr.dataset.stream = stream
    cells.stream!.textContent = stream
    const sync = element("button", { className: "sync", text: "Sync now" })
    sync.type = "button"
    sync.setAttribute("aria-label", `Sync ${stream} now`)
    sync.addEventListener("click", () => void this.syncNow(symbol, timeframe, stream))
    const retry = element("button", { className: "retry", text: "Retry" })
    retry.type = "button"
    retry.setAttribute("aria-label", `Retry ${stream}`)
    retry.addEventListener("click", () => void this.retry(symbol, timeframe, stream))
    cells.actions!.append(sync, " ", retry)
    this.body.append(tr)
    const entry = { tr, cells, retry }
    this.rows.set(stream, entry)
    return entry
  }

  private setState(stream: string, state: string, error: string | null | undefined) {
    const row = this.rows.get(stream)
    if (row === undefined) return
    row.cells.state!.textContent = state
    row.cells.state!.dataset.state = state
    row.tr.dataset.state = state
    if (error !== undefined) row.cells.error!.textContent = error ?? ""
    row.retry.disabled = state !== "failed"
    row.retry.title = state === "failed" ? "start the stream again" : "only a failed stream waits for a retry"
  }

  private apply(row: StreamRow) {
    const { cells } = this.row(row.stream, row.symbol, row.timeframe)
    this.setState(row.stream, row.state, row.last_error)
    cells.watermark!.textContent = utc(row.watermark)
    cells.lag!.textContent = duration(row.lag_seconds)
    cells.owner!.textContent = row.owner ?? "—"
    cells.history!.textContent = utc(row.history_from)
    cells.delay!.textContent = `${row.delay_minutes} min`
  }

  /** A live event: the row changes at once; the rest is re-read a second later. */
  onEvent(event: LiveEvent) {
    if (event.stream === undefined || !this.rows.has(event.stream)) return
    if (event.type === "state" && event.status !== undefined) this.setState(event.stream, event.status, event.error ?? null)
    if (event.type === "restart" && event.error !== undefined) this.rows.get(event.stream)!.cells.error!.textContent = event.error
    if (event.type === "page" && event.watermark !== undefined) this.rows.get(event.stream)!.cells.watermark!.textContent = utc(event.watermark)
    this.refreshSoon()
  }

  private say(text: string) {
    this.status.textContent = text
  }

  private async syncNow(symbol: string, timeframe: string, stream: string) {
    try {
      const { body } = await api<JobAnswer>("/api/data/sync", { method: "POST", body: { symbol, timeframe } })
      this.say(`${stream}: sync queued (job ${body.job.id})`)
      const deadline = Date.now() + 10 * 60_000
      while (Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 1_000))
        const job = (await api<Job>(body.job.url)).body
        if (job.status === "succeeded") return this.say(`${stream}: sync done, ${job.result?.stored ?? 0} bars stored`)
        if (job.status === "failed") return this.say(`${stream}: sync failed: ${job.error ?? "no reason given"}`)
        this.say(`${stream}: sync ${job.status}`)
      }
    } catch (error) {
      this.say(`${stream}: sync refused: ${describe(error)}`)
    }
  }

  private async retry(symbol: string, timeframe: string, stream: string) {
    try {
      const { body } = await api<{ readonly state: string }>("/api/data/retry", { method: "POST", body: { symbol, timeframe } })
      this.say(`${stream}: retried, now ${body.state}`)
      this.refreshSoon()
    } catch (error) {
      this.say(`${stream}: retry refused: ${describe(error)}`)
    }
  }
}
