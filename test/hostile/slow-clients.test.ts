import { afterEach, describe, expect, test } from "bun:test"
import { connect, type Socket } from "node:net"
import type { Candle } from "../../src/domain/candle.ts"
import { cappedFetch } from "../../src/http/server.ts"
import { CandleStore } from "../../src/store/candle-store.ts"
import { databaseKinds } from "../support/databases.ts"
import { startApi, type ApiHarness } from "../support/http.ts"

const minute = 60_000
const mb = 1024 * 1024

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

/** The harness's app on a real socket, behind the connection cap as `serve` runs it; `answered` counts the answers handed to Bun. */
const serve = async (api: ApiHarness) => {
  const fetch = cappedFetch(api.fetch, api.config.http.maxConnections)
  const counts = { answered: 0 }
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: async (request, server) => {
      const response = await fetch(request, server)
      counts.answered++
      return response
    },
    idleTimeout: 60
  })
  cleanups.push(() => server.stop(true))
  return Object.assign(server, { counts })
}

/** Polls `check` until it holds, failing after `limitMillis`. */
const eventually = async (what: string, check: () => boolean | Promise<boolean>, limitMillis = 20_000) => {
  const deadline = Date.now() + limitMillis
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${limitMillis} ms`)
    await Bun.sleep(20)
  }
}

/** 60,000 quiet EURUSD M1 bars in consecutive minutes from 2020-01-01, before the harness's seeded week. */
const longHistory = (): ReadonlyArray<Candle> =>
  Array.from({ length: 60_000 }, (_, i) => {
    const price = 1.1 + (i % 100) * 0.00001
    return { ts: Date.UTC(2020, 0, 1) + i * minute, open: price, high: price + 0.0001, low: price - 0.0001, close: price, volume: 1 + (i % 7), vwap: null, trades: null }
  })

const pagePath = (limit: number) => `/api/data/candles?symbol=EURUSD&timeframe=M1&start=2020-01-01&end=2020-03-01&limit=${limit}`

describe.each(databaseKinds)("a slow reader costs a chunk, not its page, on the %s database (issue 16, item 7)", (kind) => {
  test("60 clients that never read a 50,000-bar page hold little memory; the page read whole is right", async () => {
    const api = await startApi(kind)
    cleanups.push(() => api.close())
    const history = longHistory()
    for (let i = 0; i < history.length; i += 20_000) {
      await api.runtime.runPromise(CandleStore.use((s) => s.upsertPage({ symbol: "EURUSD", timeframe: "M1", source: "import", candles: history.slice(i, i + 20_000) })))
    }
    const server = await serve(api)

    /** A reader that does: the streamed page equals the stored bars, with the cursor after the 50,000th. */
    const readWhole = async () => {
      const whole = (await (await fetch(`http://127.0.0.1:${server.port}${pagePath(50_000)}`)).json()) as { count: number; candles: Array<{ ts: string; close: number }>; next: number }
      expect(whole.count).toBe(50_000)
      expect(whole.candles.map((c) => Date.parse(c.ts))).toEqual(history.slice(0, 50_000).map((b) => b.ts))
      expect(whole.candles.at(-1)!.close).toBe(history[49_999]!.close)
      expect(whole.next).toBe(history[50_000]!.ts)
    }
    await readWhole()

    Bun.gc(true)
    const baseline = process.memoryUsage().rss
    let peak = baseline
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5)
    cleanups.push(() => clearInterval(sampler))
    const sockets: Array<Socket> = []
    cleanups.push(() => sockets.forEach((s) => s.destroy()))
    for (let i = 0; i < 60; i++) {
      const socket = connect(server.port!, "127.0.0.1")
      socket.pause()
      socket.write(`GET ${pagePath(50_000)} HTTP/1.1\r\nHost: test\r\nAccept-Encoding: identity\r\n\r\n`)
      sockets.push(socket)
    }
    // Every answer handed to Bun (the old code had its whole page in memory by then), then a whole page read by
    // another client while the 60 stall: the stalled answers have written what their sockets take meanwhile.
    const answeredBefore = server.counts.answered
    await eventually("60 answers begun", () => server.counts.answered === answeredBefore + 60, 60_000)
    await readWhole()
    expect(server.pendingRequests).toBe(60)
    clearInterval(sampler)
    Bun.gc(true)
    const held = process.memoryUsage().rss - baseline
    console.log(`${kind}: 60 stalled readers of a 50,000-bar page: RSS +${(held / mb).toFixed(1)} MB held, +${((peak - baseline) / mb).toFixed(1)} MB at the peak`)
    // The old code held ~470 MB here (the page as a string plus its unsent copy, per client).
    // The peak is reported, not judged: it is mostly chunks the collector has not reclaimed yet (and, embedded, the database's own heap).
    expect(held).toBeLessThan(150 * mb)

    for (const socket of sockets) socket.destroy()
    await eventually("every stalled answer ended with its connection", () => server.pendingRequests === 0)
  }, 180_000)
})

describe("caps on clients (issue 16, item 7)", () => {
  test("SSE_MAX_CLIENTS: one more live-event client is a 503 naming the setting; a freed place is taken again", async () => {
    const api = await startApi("embedded", { http: { sseMaxClients: 2 } })
    cleanups.push(() => api.close())
    const server = await serve(api)
    const url = `http://127.0.0.1:${server.port}/api/data/events`
    const open = async () => {
      const abort = new AbortController()
      const response = await fetch(url, { signal: abort.signal })
      cleanups.push(() => abort.abort())
      return { response, abort }
    }
    const first = await open()
    const second = await open()
    expect([first.response.status, second.response.status]).toEqual([200, 200])
    const third = await open()
    expect(third.response.status).toBe(503)
    expect(third.response.headers.get("retry-after")).toBeTruthy()
    expect(await third.response.json()).toMatchObject({ error: "overloaded", message: expect.stringContaining("SSE_MAX_CLIENTS") })

    first.abort.abort()
    await eventually("a place freed by a client that left", async () => {
      const again = await open()
      if (again.response.status === 200) return true
      await again.response.body?.cancel()
      return false
    })
  }, 120_000)

  test("HTTP_MAX_CONNECTIONS: with every place taken by open answers, the next request is a 503 at once; freed, it is answered", async () => {
    const api = await startApi("embedded", { http: { maxConnections: 3, sseMaxClients: 10 } })
    cleanups.push(() => api.close())
    const server = await serve(api)
    const aborts: Array<AbortController> = []
    for (let i = 0; i < 3; i++) {
      const abort = new AbortController()
      aborts.push(abort)
      cleanups.push(() => abort.abort())
      expect((await fetch(`http://127.0.0.1:${server.port}/api/data/events`, { signal: abort.signal })).status).toBe(200)
    }
    const refused = await fetch(`http://127.0.0.1:${server.port}/api/data/health`)
    expect(refused.status).toBe(503)
    expect(await refused.json()).toMatchObject({ error: "overloaded", message: expect.stringContaining("HTTP_MAX_CONNECTIONS") })

    for (const abort of aborts) abort.abort()
    await eventually("health answered once the places are free", async () => (await fetch(`http://127.0.0.1:${server.port}/api/data/health`)).status === 200)
  }, 120_000)
})
