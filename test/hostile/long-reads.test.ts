import { afterEach, describe, expect, test } from "bun:test"
import type { Candle } from "../../src/domain/candle.ts"
import { isOpen } from "../../src/domain/calendar.ts"
import { detectedGapsListed } from "../../src/http/gaps.ts"
import { CandleStore } from "../../src/store/candle-store.ts"
import { databaseKinds } from "../support/databases.ts"
import { post, startApi } from "../support/http.ts"

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

/** One EURUSD bar every five minutes of the open sessions of June 2020: four missing bars, a gap, after each. */
const sparseBars = (): ReadonlyArray<Candle> => {
  const bars: Array<Candle> = []
  for (let ts = Date.UTC(2020, 5, 1); ts < Date.UTC(2020, 6, 1); ts += 5 * 60_000) {
    if (isOpen("forex", ts)) bars.push({ ts, open: 1.12, high: 1.1201, low: 1.1199, close: 1.12, volume: 1, vwap: null, trades: null })
  }
  return bars
}

describe.each(databaseKinds)("long reads are bounded, on the %s database (issue 16, item 1)", (kind) => {
  test("thousands of gaps: detection lists the first 1,000 and says so; the list is paged with a cursor that visits each once", async () => {
    const api = await startApi(kind)
    cleanups.push(() => api.close())
    const bars = sparseBars()
    await api.runtime.runPromise(CandleStore.use((s) => s.upsertPage({ symbol: "EURUSD", timeframe: "M1", source: "import", candles: bars })))

    const detected = await api.request("/api/data/gaps/detect", post({ symbol: "EURUSD", from: "2020-06-01", to: "2020-07-01" }))
    expect(detected.status).toBe(200)
    const found = (await detected.json()) as { count: number; truncated: boolean; gaps: ReadonlyArray<unknown> }
    expect(found.count).toBeGreaterThan(4_000)
    expect(found.truncated).toBe(true)
    expect(found.gaps.length).toBe(detectedGapsListed)

    const seen: Array<string> = []
    let from: string | number = "2020-06-01"
    for (let pages = 0; ; pages++) {
      expect(pages).toBeLessThan(10)
      const page = (await (await api.request(`/api/data/gaps/EURUSD?timeframe=M1&from=${from}&to=2020-07-01&limit=1000`)).json()) as {
        count: number
        next: number | null
        gaps: ReadonlyArray<{ gap_start: string }>
      }
      expect(page.count).toBe(page.gaps.length)
      expect(page.count).toBeLessThanOrEqual(1_000)
      seen.push(...page.gaps.map((g) => g.gap_start))
      if (page.next === null) break
      from = page.next
    }
    expect(seen.length).toBe(found.count)
    expect(new Set(seen).size).toBe(found.count)

    const tooMany = await api.request("/api/data/gaps/EURUSD?limit=10001")
    expect(tooMany.status).toBe(400)
    expect(await tooMany.json()).toMatchObject({ error: "bad_request", field: "limit" })
  }, 180_000)
})
