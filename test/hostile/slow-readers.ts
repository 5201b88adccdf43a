/**
 * Run by slow-clients.test.ts in a process of its own (so that no other test's memory counts): the API over a fresh
 * database of the kind named, 60,000 stored EURUSD M1 bars, one client that reads a 50,000-bar page whole and 60 that
 * ask for it and never read. Prints one JSON line: the RSS the stalled answers hold, the peak, and whether the page
 * read whole was right.
 *
 *   bun test/hostile/slow-readers.ts embedded|plain|timescale
 */
import { connect, type Socket } from "node:net"
import type { Candle } from "../../src/domain/candle.ts"
import { cappedFetch } from "../../src/http/server.ts"
import { CandleStore } from "../../src/store/candle-store.ts"
import type { DatabaseKind } from "../support/databases.ts"
import { startApi } from "../support/http.ts"

const kind = (process.argv[2] ?? "embedded") as DatabaseKind
const minute = 60_000
const mb = 1024 * 1024
const pagePath = `/api/data/candles?symbol=EURUSD&timeframe=M1&start=2020-01-01&end=2020-03-01&limit=50000`

/** Polls `check` until it holds, failing after `limitMillis`. */
const eventually = async (what: string, check: () => boolean | Promise<boolean>, limitMillis: number) => {
  const deadline = Date.now() + limitMillis
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${limitMillis} ms`)
    await Bun.sleep(20)
  }
}

const api = await startApi(kind)
const sockets: Array<Socket> = []
try {
  // 60,000 quiet bars in consecutive minutes from 2020-01-01, before the harness's seeded week.
  const history: ReadonlyArray<Candle> = Array.from({ length: 60_000 }, (_, i) => {
    const price = 1.1 + (i % 100) * 0.00001
    return { ts: Date.UTC(2020, 0, 1) + i * minute, open: price, high: price + 0.0001, low: price - 0.0001, close: price, volume: 1 + (i % 7), vwap: null, trades: null }
  })
  for (let i = 0; i < history.length; i += 20_000) {
    await api.runtime.runPromise(CandleStore.use((s) => s.upsertPage({ symbol: "EURUSD", timeframe: "M1", source: "import", candles: history.slice(i, i + 20_000) })))
  }
  const capped = cappedFetch(api.fetch, api.config.http.maxConnections)
  let answered = 0
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: async (request, server) => {
      const response = await capped(request, server)
      answered++
      return response
    },
    idleTimeout: 60
  })

  /** A reader that does: the streamed page equals the stored bars, with the cursor after the 50,000th. */
  const readWhole = async () => {
    const whole = (await (await fetch(`http://127.0.0.1:${server.port}${pagePath}`)).json()) as { count: number; candles: Array<{ ts: string; close: number }>; next: number }
    return (
      whole.count === 50_000 &&
      whole.candles.length === 50_000 &&
      whole.candles.every((c, i) => Date.parse(c.ts) === history[i]!.ts && c.close === history[i]!.close) &&
      whole.next === history[50_000]!.ts
    )
  }
  let right = await readWhole()

  Bun.gc(true)
  const baseline = process.memoryUsage().rss
  let peak = baseline
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5)
  for (let i = 0; i < 60; i++) {
    const socket = connect(server.port!, "127.0.0.1")
    socket.pause()
    socket.write(`GET ${pagePath} HTTP/1.1\r\nHost: test\r\nAccept-Encoding: identity\r\n\r\n`)
    sockets.push(socket)
  }
  // Every answer handed to Bun (the old code had its whole page in memory by then), then a whole page read by
  // another client while the 60 stall: the stalled answers have written what their sockets take meanwhile.
  const answeredBefore = answered
  await eventually("60 answers begun", () => answered === answeredBefore + 60, 120_000)
  right = right && (await readWhole())
  const stalled = server.pendingRequests
  clearInterval(sampler)
  Bun.gc(true)
  const held = process.memoryUsage().rss - baseline

  for (const socket of sockets) socket.destroy()
  await eventually("every stalled answer ended with its connection", () => server.pendingRequests === 0, 30_000)
  await server.stop(true)
  console.log(JSON.stringify({ kind, stalled, held_mb: Math.round((held / mb) * 10) / 10, peak_mb: Math.round(((peak - baseline) / mb) * 10) / 10, whole_page_right: right && stalled === 60 }))
} finally {
  for (const socket of sockets) socket.destroy()
  await api.close()
}
process.exit(0)
