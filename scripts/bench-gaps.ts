/**
 * Gap detection benchmark: ten years of EURUSD M1 bars (≈3.7 M, only inside open sessions, with realistic
 * holes cut in) on a fresh server database; times `Gaps.detect` over all of it, and in the same run a bare scan of the
 * same rows in time order (`scan_ms`), the floor any detection that reads them pays: detection is judged by the ratio
 * (goal: detect_ms ≤ 1.5 × scan_ms). Each is run three times, alternately, after one warm-up scan; medians are reported.
 *
 *   bun scripts/bench-gaps.ts [--years N] [--server-url URL]
 *
 * Prints a table, then as its last line one JSON object.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Logger, LogLevel, ManagedRuntime, Option, Redacted } from "effect"
import { appLayer } from "../src/app-layer.ts"
import { AppConfig } from "../src/config.ts"
import { sessions } from "../src/domain/calendar.ts"
import type { Candle } from "../src/domain/candle.ts"
import { Gaps } from "../src/pipeline/gaps.ts"
import { CandleStore } from "../src/store/candle-store.ts"
import { benchDatabase } from "./bench-database.ts"

const flag = (name: string, fallback: string) => {
  const at = process.argv.indexOf(name)
  return (at >= 0 ? process.argv[at + 1] : undefined) ?? fallback
}
const years = Number(flag("--years", "10"))
const serverUrl = flag("--server-url", "postgres://postgres@127.0.0.1:5432/postgres")
const minute = 60_000
const from = Date.UTC(2016, 0, 3)
const to = Date.UTC(2016 + years, 0, 3)

/** mulberry32, seeded, so every run cuts the same holes (integer maths: a float LCG loses its low bits). */
let state = 20160103
const random = () => {
  state = (state + 0x6d2b79f5) >>> 0
  let t = state
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** Bars in open sessions only; a quiet minute is missing now and then (1-3 bars) and, rarely, a real outage (5-90 bars). */
function* pages(size: number): Generator<ReadonlyArray<Candle>> {
  let page: Array<Candle> = []
  let price = 1.1
  let skip = 0
  for (const session of sessions("forex", from, to)) {
    for (let ts = session.from; ts < session.to; ts += minute) {
      if (skip > 0) {
        skip--
        continue
      }
      const r = random()
      if (r < 0.004) skip = 1 + Math.floor(random() * 3)
      else if (r < 0.00405) skip = 5 + Math.floor(random() * 85)
      const open = price
      const close = Number((open + (random() - 0.5) * 0.0003).toFixed(5))
      price = close
      page.push({ ts, open, high: Number((Math.max(open, close) + 0.00005).toFixed(5)), low: Number((Math.min(open, close) - 0.00005).toFixed(5)), close, volume: 3, vwap: null, trades: null })
      if (page.length === size) {
        yield page
        page = []
      }
    }
  }
  if (page.length > 0) yield page
}

const program = Effect.gen(function* () {
  const url = yield* benchDatabase(serverUrl, `candlekeep_benchg_${process.pid}`)
  const config = AppConfig.fixed({ databaseUrl: Option.some(Redacted.make(url)) })
  const runtime = ManagedRuntime.make(appLayer(config).pipe(Layer.provideMerge(Logger.minimumLogLevel(LogLevel.Warning))))
  yield* Effect.addFinalizer(() => Effect.promise(() => runtime.dispose()))
  let bars = 0
  const loadStarted = performance.now()
  for (const page of pages(50_000)) {
    yield* Effect.promise(() => runtime.runPromise(CandleStore.use((s) => s.upsertPage({ symbol: "EURUSD", timeframe: "M1", source: "import", candles: page }))))
    bars += page.length
  }
  const loadSeconds = (performance.now() - loadStarted) / 1000
  const run = <A, E>(effect: Effect.Effect<A, E, ManagedRuntime.ManagedRuntime.Context<typeof runtime>>) => Effect.promise(() => runtime.runPromise(effect))
  const timed = <A>(effect: Effect.Effect<A>) =>
    Effect.suspend(() => {
      const started = performance.now()
      return Effect.map(effect, (result) => ({ ms: Math.round(performance.now() - started), result }))
    })
  // The rows detection reads, read in the same order, and nothing else done with them.
  const scan = run(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql`
      SELECT count(*)::int AS n FROM (SELECT ts FROM candles WHERE symbol = 'EURUSD' AND timeframe = 'M1' AND ts >= ${new Date(from)} AND ts < ${new Date(to)} ORDER BY ts) rows`)
  )
  const detect = run(Gaps.use((g) => g.detect({ symbol: "EURUSD", timeframe: "M1", from, to })))
  yield* scan
  const scans: Array<number> = []
  const detections: Array<number> = []
  let found = { gaps: [] as ReadonlyArray<{ readonly missingBars: number }> }
  for (let i = 0; i < 3; i++) {
    const d = yield* timed(detect)
    detections.push(d.ms)
    found = d.result
    scans.push((yield* timed(scan)).ms)
  }
  const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
  const detectMs = median(detections)
  const scanMs = median(scans)
  const ratio = Math.round((detectMs / Math.max(1, scanMs)) * 100) / 100
  const lines = [
    ["bars", bars.toLocaleString("en-US")],
    ["load (s)", loadSeconds.toFixed(1)],
    ["detect (ms)", `${detectMs}  (runs: ${detections.join(", ")})`],
    ["scan (ms)", `${scanMs}  (runs: ${scans.join(", ")})`],
    ["detect / scan", `${ratio}  (goal ≤ 1.5)`],
    ["gaps (> 3 bars)", String(found.gaps.length)],
    ["missing bars in gaps", String(found.gaps.reduce((n, g) => n + g.missingBars, 0))]
  ]
  console.log(lines.map(([k, v]) => `${k!.padEnd(22)} ${v}`).join("\n"))
  console.log(JSON.stringify({ bench: "gaps", bars, detect_ms: detectMs, scan_ms: scanMs, detect_over_scan: ratio, gaps: found.gaps.length }))
})

Effect.runPromise(Effect.scoped(program)).catch((error) => {
  console.error(`bench-gaps: ${error instanceof Error ? error.message : String(error)}`)
  console.log(JSON.stringify({ bench: "gaps", bars: null, detect_ms: null, scan_ms: null, detect_over_scan: null, gaps: null }))
})
