import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { isOpen } from "../src/domain/calendar.ts"
import { CandleStore } from "../src/store/candle-store.ts"
import { Effect, ManagedRuntime, Option } from "effect"
import { SqlClient } from "@effect/sql"
import { DatabaseInfo } from "../src/store/database.ts"
import { JobRepo } from "../src/store/job-repo.ts"
import { databaseKinds, storeLayer } from "./support/databases.ts"
import { brokerAccount, brokerMissing, brokerOffset, iso, post, seedFrom, seedHoles, seedTo, startApi, type ApiHarness } from "./support/http.ts"

const minute = 60_000
const hour = 60 * minute

interface CandleJson {
  readonly ts: string
  readonly open: number | null
  readonly high: number | null
  readonly low: number | null
  readonly close: number | null
  readonly volume: number
  readonly filled?: boolean
}
interface CandlesJson {
  readonly symbol: string
  readonly timeframe: string
  readonly count: number
  readonly candles: ReadonlyArray<CandleJson>
  readonly next: number | null
}

const json = async <A = any>(response: Response): Promise<A> => (await response.json()) as A

/** Reads Server-Sent Events until `done` says enough, or fails after `limitMillis`. */
const readEvents = async (response: Response, done: (events: ReadonlyArray<{ event: string; data: any }>) => boolean, limitMillis: number) => {
  const reader = response.body!.getReader()
  const decoder = new TextDecoder()
  const events: Array<{ event: string; data: any }> = []
  let buffer = ""
  const deadline = Date.now() + limitMillis
  try {
    while (!done(events)) {
      const chunk = await Promise.race([reader.read(), Bun.sleep(Math.max(0, deadline - Date.now())).then(() => "timeout" as const)])
      if (chunk === "timeout") throw new Error(`events not seen within ${limitMillis} ms; got ${events.map((e) => e.event).join(", ")}`)
      if (chunk.done) break
      buffer += decoder.decode(chunk.value, { stream: true })
      for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
        const block = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        const event = /^event: (.*)$/m.exec(block)?.[1]
        const data = /^data: (.*)$/m.exec(block)?.[1]
        if (event && data) events.push({ event, data: JSON.parse(data) })
      }
    }
  } finally {
    await reader.cancel()
  }
  return events
}

describe.each(databaseKinds)("the HTTP API on the %s database", (kind) => {
  let api: ApiHarness
  beforeAll(async () => {
    api = await startApi(kind, { supervisor: true })
  }, 60_000)
  afterAll(async () => {
    await api?.close()
  })

  test("health is 200 at once; ready is 503 with the reason until the supervisor runs, then 200", async () => {
    const health = await api.request("/api/data/health")
    expect(health.status).toBe(200)
    expect((await json(health)).database).toMatchObject({ kind: kind === "embedded" ? "embedded" : "server", flavour: kind === "plain" ? "plain" : "timescale" })
    const before = await api.request("/api/data/ready")
    expect(before.status).toBe(503)
    expect(await json(before)).toMatchObject({ status: "not_ready", error: "not_ready", reasons: ["supervisor starting"] })
    await api.markReady()
    const after = await api.request("/api/data/ready")
    expect(after.status).toBe(200)
  })

  test("symbols lists the configured instruments with ticker, class, digits and streams", async () => {
    const body = await json((await api.request("/api/data/symbols")))
    expect(body.symbols.find((s: any) => s.symbol === "EURUSD")).toEqual({
      symbol: "EURUSD", ticker: "C:EURUSD", instrument_class: "forex", digits: 5, pip_size: 0.0001, streams: ["M1"]
    })
    expect(body.symbols.find((s: any) => s.symbol === "XAUUSD").streams).toEqual([])
  })

  test("candles answers the stored bars exactly, and the cursor walks a range page by page without loss or overlap", async () => {
    const start = Date.parse("2021-01-05T09:00:00Z")
    const end = Date.parse("2021-01-05T12:00:00Z")
    const expected = api.bars.filter((b) => b.ts >= start && b.ts < end)
    const whole = await json<CandlesJson>(await api.request(`/api/data/candles?symbol=eurusd&timeframe=m1&start=${iso(start)}&end=${iso(end)}&limit=5000`))
    expect(whole.count).toBe(expected.length)
    expect(whole.next).toBeNull()
    expect(whole.candles).toEqual(expected.map((b) => ({ ts: iso(b.ts), open: b.open, high: b.high, low: b.low, close: b.close, volume: b.volume })))

    const paged: Array<CandleJson> = []
    let cursor: number | null = start
    let pages = 0
    while (cursor !== null) {
      const page: CandlesJson = await json<CandlesJson>(await api.request(`/api/data/candles?symbol=EURUSD&timeframe=M1&start=${cursor}&end=${end}&limit=50`))
      expect(page.count).toBeLessThanOrEqual(50)
      paged.push(...page.candles)
      cursor = page.next
      pages += 1
    }
    expect(pages).toBe(Math.ceil(expected.length / 50))
    expect(paged).toEqual([...whole.candles])
  })

  test("H1 comes from the rollups of M1: open of the first minute, extremes, close of the last, summed volume", async () => {
    const start = Date.parse("2021-01-06T00:00:00Z")
    const body = await json<CandlesJson>(await api.request(`/api/data/candles?symbol=EURUSD&timeframe=H1&start=${start}&end=${start + 24 * hour}`))
    expect(body.count).toBe(24)
    for (const bar of body.candles) {
      const t = Date.parse(bar.ts)
      const minutes = api.bars.filter((b) => b.ts >= t && b.ts < t + hour)
      expect(bar).toEqual({
        ts: bar.ts,
        open: minutes[0]!.open,
        high: Math.max(...minutes.map((m) => m.high)),
        low: Math.min(...minutes.map((m) => m.low)),
        close: minutes.at(-1)!.close,
        volume: minutes.reduce((n, m) => n + m.volume, 0)
      })
    }
  })

  test("format=csv streams a header row and the same bars as JSON, with the next page's start in X-Next", async () => {
    const start = Date.parse("2021-01-07T08:00:00Z")
    const query = `symbol=EURUSD&timeframe=M1&start=${iso(start)}&end=${iso(start + 3 * hour)}&limit=100`
    const asJson = await json<CandlesJson>(await api.request(`/api/data/candles?${query}`))
    const response = await api.request(`/api/data/candles?${query}&format=csv`)
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toStartWith("text/csv")
    expect(response.headers.get("x-next")).toBe(String(asJson.next))
    const lines = (await response.text()).trimEnd().split("\n")
    expect(lines[0]).toBe("ts,open,high,low,close,volume")
    expect(lines.slice(1)).toEqual(asJson.candles.map((c) => `${c.ts},${c.open},${c.high},${c.low},${c.close},${c.volume}`))
  })

  test("fill=null and fill=prev stand in for missing minutes inside sessions only, marked filled; fill=none leaves the hole", async () => {
    const [holeStart, holeCount] = seedHoles[0]!
    const start = holeStart - 3 * minute
    const end = holeStart + (holeCount + 3) * minute
    const url = (fill: string) => `/api/data/candles?symbol=EURUSD&timeframe=M1&start=${start}&end=${end}&fill=${fill}`
    const none = await json<CandlesJson>(await api.request(url("none")))
    expect(none.count).toBe(6)
    const nulls = await json<CandlesJson>(await api.request(url("null")))
    expect(nulls.count).toBe(6 + holeCount)
    expect(nulls.candles.filter((c) => c.filled).map((c) => c.ts)).toEqual(Array.from({ length: holeCount }, (_, i) => iso(holeStart + i * minute)))
    expect(nulls.candles.filter((c) => c.filled).every((c) => c.open === null && c.close === null && c.volume === 0)).toBe(true)
    const prev = await json<CandlesJson>(await api.request(url("prev")))
    const lastBefore = prev.candles[2]!
    expect(prev.candles.filter((c) => c.filled).every((c) => c.open === lastBefore.close && c.close === lastBefore.close)).toBe(true)

    // A weekend is closed, not missing: nothing is filled between Friday 22:00 and Sunday 22:00 UTC.
    const weekend = await json<CandlesJson>(
      await api.request(`/api/data/candles?symbol=EURUSD&timeframe=M1&start=2021-01-08T21:55:00Z&end=2021-01-09T00:00:00Z&fill=null`)
    )
    expect(weekend.candles.map((c) => c.ts)).toEqual(Array.from({ length: 5 }, (_, i) => iso(Date.parse("2021-01-08T21:55:00Z") + i * minute)))
    expect(weekend.candles.every((c) => !c.filled && isOpen("forex", Date.parse(c.ts)))).toBe(true)
  })

  test("a filled page continues with the previous close across the cursor", async () => {
    const [holeStart] = seedHoles[0]!
    const first = await json<CandlesJson>(await api.request(`/api/data/candles?symbol=EURUSD&timeframe=M1&start=${holeStart - 2 * minute}&end=${holeStart + hour}&fill=prev&limit=3`))
    expect(first.count).toBe(3)
    expect(first.candles.map((c) => c.filled)).toEqual([false, false, true])
    const second = await json<CandlesJson>(await api.request(`/api/data/candles?symbol=EURUSD&timeframe=M1&start=${first.next}&end=${holeStart + hour}&fill=prev&limit=3`))
    expect(second.candles.map((c) => [c.filled, c.close])).toEqual([[true, first.candles[1]!.close], [true, first.candles[1]!.close], [true, first.candles[1]!.close]])
  })

  test("bad parameters are 400 naming the field; unknown symbol or timeframe is 404 with the valid ones", async () => {
    const cases: ReadonlyArray<readonly [string, number, string]> = [
      ["symbol=EURUSD&timeframe=M1&start=2021-01-05&end=2021-01-04", 400, "start"],
      ["symbol=EURUSD&timeframe=M1&start=yesterday", 400, "start"],
      ["symbol=EURUSD&timeframe=M1&limit=50001", 400, "limit"],
      ["symbol=EURUSD&timeframe=M1&limit=0", 400, "limit"],
      ["symbol=EURUSD&timeframe=M1&fill=zero", 400, "fill"],
      ["symbol=EURUSD&timeframe=M1&format=xml", 400, "format"],
      ["symbol=EURUSD&timeframe=M1&start=0&end=2021-01-01", 400, "end"],
      ["timeframe=M1", 400, "symbol"],
      ["symbol=DOGEUSD&timeframe=M1", 404, "symbol"],
      ["symbol=EURUSD&timeframe=M2", 404, "timeframe"]
    ]
    for (const [query, status, field] of cases) {
      const response = await api.request(`/api/data/candles?${query}`)
      const body = await json(response)
      expect({ query, status: response.status, field: body.field, error: typeof body.error }).toEqual({ query, status, field, error: "string" })
      if (status === 404) expect(body.valid.length).toBeGreaterThan(0)
    }
    const missing = await json(await api.request("/api/data/nothing-here"))
    expect(missing.error).toBe("not_found")
  })

  test("a sync is accepted as a job, runs on the stream's owner, and its pages and outcome arrive as Server-Sent Events", async () => {
    const events = await api.request("/api/data/events?stream=EURUSD:M1")
    expect(events.status).toBe(200)
    expect(events.headers.get("content-type")).toStartWith("text/event-stream")
    const accepted = await api.request("/api/data/sync", post({ symbol: "EURUSD", timeframe: "M1", full_sync: true }))
    expect(accepted.status).toBe(202)
    const { job } = await json(accepted)
    expect(job).toMatchObject({ status: "queued", url: `/api/data/jobs/${job.id}` })
    const seen = await readEvents(events, (list) => list.some((e) => e.event === "job" && e.data.job.endsWith(job.id)), 60_000)
    expect(seen.some((e) => e.event === "page" && e.data.stream === "EURUSD:M1" && e.data.stored >= 0)).toBe(true)
    const done = await json(await api.request(job.url))
    expect(done).toMatchObject({ id: job.id, kind: "full_sync", symbol: "EURUSD", timeframe: "M1", status: "succeeded", error: null })
    expect(done.result.fetched).toBeGreaterThan(0)
    expect(done.result.runner).toBe(kind === "embedded" ? "embedded" : `127.0.0.1:${api.config.supervisor.runnerPort}`)

    const unknownJob = await api.request("/api/data/jobs/00000000-0000-4000-8000-000000000000")
    expect(unknownJob.status).toBe(404)
    const notAStream = await api.request("/api/data/sync", post({ symbol: "EURUSD", timeframe: "H1" }))
    expect(notAStream.status).toBe(404)
    expect((await json(notAStream)).valid).toEqual(["EURUSD:M1"])
  }, 90_000)

  test("status shows every configured stream with state, watermark, lag, bars stored and owner", async () => {
    const body = await json(await api.request("/api/data/status"))
    expect(body.streams).toHaveLength(1)
    const stream = body.streams[0]
    expect(stream).toMatchObject({ stream: "EURUSD:M1", symbol: "EURUSD", timeframe: "M1", last_error: null })
    expect(["backfilling", "live"]).toContain(stream.state)
    expect(stream.owner).toBe(kind === "embedded" ? "embedded" : `127.0.0.1:${api.config.supervisor.runnerPort}`)
    expect(typeof stream.watermark).toBe("string")
    expect(stream.lag_seconds).toBeLessThan(3600)
    expect(stream.bars_stored).toBeGreaterThan(0)
  })

  test("gaps: detect answers the holes inside sessions, lists them, a fill job marks what the vendor lacks unfillable, quality counts it", async () => {
    const range = { symbol: "EURUSD", timeframe: "M1", from: iso(seedFrom), to: iso(seedTo) }
    const detected = await api.request("/api/data/gaps/detect", post(range))
    expect(detected.status).toBe(200)
    const found = await json(detected)
    // Only the 7-minute hole is a gap; 2 minutes is within GAP_MIN_BARS.
    expect(found.gaps).toEqual([{ gap_start: iso(seedHoles[0]![0]), gap_end: iso(seedHoles[0]![0] + 6 * minute), missing_bars: 7 }])
    const listed = await json(await api.request("/api/data/gaps/EURUSD?timeframe=M1&status=detected"))
    expect(listed.gaps.map((g: any) => [g.gap_start, g.missing_bars, g.status])).toEqual([[iso(seedHoles[0]![0]), 7, "detected"]])

    const events = await api.request("/api/data/events")
    const accepted = await api.request("/api/data/gaps/fill", post(range))
    expect(accepted.status).toBe(202)
    const { job } = await json(accepted)
    await readEvents(events, (list) => list.some((e) => e.event === "job" && e.data.job.endsWith(job.id)), 30_000)
    expect(await json(await api.request(job.url))).toMatchObject({ kind: "gap_fill", status: "succeeded", result: { attempted: 1, unfillable: 1 } })
    const after = await json(await api.request("/api/data/gaps/EURUSD?status=unfillable"))
    expect(after.gaps).toHaveLength(1)
    expect(after.gaps[0].evidence.vendorBars).toBe(0)

    const quality = await json(await api.request(`/api/data/quality/EURUSD?timeframe=M1&from=${seedFrom}&to=${seedTo}`))
    const stored = await api.runtime.runPromise(CandleStore.use((s) => s.range({ symbol: "EURUSD", timeframe: "M1", from: seedFrom, to: seedTo, limit: 100_000 })))
    expect(quality.months).toEqual([
      expect.objectContaining({ month: "2021-01", present: stored.length, expected: stored.length + 9, gaps_open: 0, gaps_unfillable: 1, rejected: {} })
    ])
    const badRange = await api.request("/api/data/gaps/detect", post({ ...range, from: range.to, to: range.from }))
    expect(badRange.status).toBe(400)
  }, 60_000)

  test("verify is a job: it finds an H1 bucket that differs from the seeded bars and rebuilds it; a bad body is a 400 or 404 naming the field", async () => {
    const hour = 60 * minute
    const damaged = Date.parse("2021-01-05T10:00:00Z")
    // Damage one H1 bucket where its rows live (the materialization hypertable on TimescaleDB).
    await api.runtime.runPromise(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const info = yield* DatabaseInfo
        const [target] =
          info.flavour === "timescale"
            ? yield* sql<{ name: string }>`SELECT format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name) AS name
                FROM timescaledb_information.continuous_aggregates WHERE view_name = 'candles_h1'`
            : [{ name: "candles_h1" }]
        yield* sql.unsafe(`UPDATE ${target!.name} SET close = close + 1 WHERE symbol = 'EURUSD' AND ts = $1`, [new Date(damaged)])
      })
    )
    const events = await api.request("/api/data/events")
    const accepted = await api.request("/api/data/verify", post({ symbol: "eurusd", timeframe: "h1", from: iso(damaged - 3 * hour), to: iso(damaged + 3 * hour) }))
    expect(accepted.status).toBe(202)
    const { job } = await json(accepted)
    await readEvents(events, (list) => list.some((e) => e.event === "job" && e.data.job.endsWith(job.id)), 30_000)
    const done = await json(await api.request(job.url))
    expect(done).toMatchObject({ kind: "verify", status: "succeeded" })
    expect(done.result).toEqual([{ timeframe: "H1", buckets: 6, missing: 0, extra: 0, differing: 1, rebuilt: 1 }])
    const h1 = await api.runtime.runPromise(CandleStore.use((s) => s.range({ symbol: "EURUSD", timeframe: "H1", from: damaged, to: damaged + hour, limit: 1 })))
    const bars = api.bars.filter((b) => b.ts >= damaged && b.ts < damaged + hour)
    expect(h1[0]!.close).toBe(bars.at(-1)!.close)

    const notRollup = await api.request("/api/data/verify", post({ symbol: "EURUSD", timeframe: "D1" }))
    expect(notRollup.status).toBe(404)
    expect(await json(notRollup)).toMatchObject({ error: "not_found", field: "timeframe", valid: ["M5", "M15", "M30", "H1"] })
    const backwards = await api.request("/api/data/verify", post({ symbol: "EURUSD", from: iso(damaged), to: iso(damaged - hour) }))
    expect(backwards.status).toBe(400)
    expect(await json(backwards)).toMatchObject({ error: "bad_request", field: "from" })
  }, 60_000)

  test("metrics expose HTTP, vendor and stream figures in Prometheus text", async () => {
    const response = await api.request("/metrics")
    expect(response.headers.get("content-type")).toStartWith("text/plain; version=0.0.4")
    const text = await response.text()
    expect(text).toContain('candlekeep_stream_state{stream="EURUSD:M1",state="live"} 1')
    expect(text).toMatch(/candlekeep_http_requests_total\{method="GET",route="\/api\/data\/candles",status="200"\} \d+/)
    expect(text).toMatch(/candlekeep_http_request_duration_seconds_bucket\{method="GET",route="\/api\/data\/candles",le="\+Inf"\} \d+/)
    expect(text).toMatch(/candlekeep_vendor_requests_total\{vendor="massive",outcome="ok"\} \d+/)
    expect(text).toContain('candlekeep_gaps{stream="EURUSD:M1",status="unfillable"} 1')
  })
})

describe.each(databaseKinds)("jobs on the %s database", (kind) => {
  test("a job still running when the instance stops is recorded as failed, not left running", async () => {
    const api = await startApi(kind)
    try {
      const range = { symbol: "EURUSD", timeframe: "M1", from: iso(seedFrom), to: iso(seedTo) }
      expect((await api.request("/api/data/gaps/detect", post(range))).status).toBe(200)
      api.stallVendor()
      const { job } = await json(await api.request("/api/data/gaps/fill", post(range)))
      // Queued or running: the vendor will not answer for two minutes.
      const unfinished = await api.runtime.runPromise(JobRepo.use((r) => r.get(job.id)))
      expect(["queued", "running"]).toContain(Option.getOrThrow(unfinished).status)
      await api.runtime.dispose()
      // The same database opened again, as the next instance would.
      const reopened = ManagedRuntime.make(storeLayer(api.config))
      const after = await reopened.runPromise(JobRepo.use((r) => r.get(job.id)))
      await reopened.dispose()
      expect(Option.map(after, (j) => [j.status, j.error])).toEqual(Option.some(["failed", "the instance stopped before the job finished: ask again"]))
    } finally {
      await api.close()
    }
  }, 60_000)
})

describe.each(databaseKinds)("the broker routes on the %s database", (kind) => {
  let api: ApiHarness
  let unconfigured: ApiHarness
  beforeAll(async () => {
    api = await startApi(kind, { broker: true })
    unconfigured = await startApi(kind)
  }, 60_000)
  afterAll(async () => {
    await api?.close()
    await unconfigured?.close()
  })

  test("compare aligns the broker's M1 candles with the vendor's minute by minute and reports the offset and the one-sided minutes", async () => {
    const end = Date.parse("2021-01-05T12:00:00Z")
    const response = await api.request(`/api/data/broker/compare?symbol=EURUSD&account=${brokerAccount}&window_minutes=60&end=${iso(end)}`)
    expect(response.status).toBe(200)
    const body = await json(response)
    const vendorMinutes = api.bars.filter((b) => b.ts >= end - 60 * minute && b.ts < end).length
    expect(body).toMatchObject({ account: brokerAccount, symbol: "EURUSD", broker_symbol: "EURUSDm", status: "ok", samples: vendorMinutes - 3, vendor_only: 3, broker_only: 0 })
    expect(body.vendor_only_minutes).toEqual(brokerMissing.map(iso))
    expect(body.diff.mean).toBeCloseTo(brokerOffset, 9)
    expect(body.diff_pips.mean).toBeCloseTo(3, 6)
    expect(body.diff.std).toBeCloseTo(0, 9)
    expect(typeof body.latest.bid).toBe("number")
    // One account configured: it is the default.
    const implicit = await json(await api.request(`/api/data/broker/compare?symbol=eurusd&window_minutes=60&end=${end}`))
    expect(implicit.samples).toBe(body.samples)
  })

  test("quotes, offset and history answer from the store; a bad parameter is 400, an unknown stream 404", async () => {
    const quotes = await json(await api.request(`/api/data/broker/quotes?symbol=EURUSD&account=${brokerAccount}`))
    expect(quotes).toMatchObject({ account: brokerAccount, symbol: "EURUSD", count: 0, quotes: [] })
    const history = await json(await api.request(`/api/data/broker/history?symbol=EURUSD&start=2021-01-01&end=2021-02-01`))
    expect(history).toMatchObject({ count: 0, comparisons: [] })
    const offset = await json(await api.request(`/api/data/broker/offset?symbol=EURUSD&samples=100`))
    expect(offset).toMatchObject({ quotes: 0, mean: null, recommendation: { use_offset: false, offset: null } })
    expect((await api.request(`/api/data/broker/compare?symbol=EURUSD&window_minutes=0`)).status).toBe(400)
    expect((await api.request(`/api/data/broker/history?symbol=EURUSD&start=2021-02-01&end=2021-01-01`)).status).toBe(400)
    const unknown = await api.request(`/api/data/broker/compare?symbol=EURUSD&account=nobody`)
    expect(unknown.status).toBe(404)
    expect((await json(unknown)).error).toBe("not_found")
  })

  test("without MetaApi settings the broker routes say so with 503, and status shows broker features off with the reason", async () => {
    const response = await unconfigured.request("/api/data/broker/compare?symbol=EURUSD&account=acc-1")
    expect(response.status).toBe(503)
    expect(await json(response)).toEqual({ error: "broker_off", message: "broker features off: METAAPI_TOKEN is not set" })
    const status = await json(await unconfigured.request("/api/data/status"))
    expect(status.broker).toEqual({ off: "METAAPI_TOKEN is not set", streams: [] })
    const configured = await json(await api.request("/api/data/status"))
    expect(configured.broker.off).toBeNull()
    expect(configured.broker.streams).toEqual([expect.objectContaining({ stream: `broker/${brokerAccount}:EURUSD`, account: brokerAccount, symbol: "EURUSD", broker_symbol: "EURUSDm" })])
  })
})
