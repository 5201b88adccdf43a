/**
 * API benchmark: the real HTTP app (every middleware, the app's layers, the cluster) serving a seeded server database
 * to a load generator in a second process (scripts/bench-api-load.ts) — pages of 1,000 M1 bars, then of 500 H1 bars,
 * over random ranges — and, in the same run, the very SQL CandleStore.range sends for those pages timed directly
 * at the same concurrency, as the baseline.
 *
 *   bun scripts/bench-api.ts [--years N] [--seconds N] [--warmup N] [--connections N] [--gzip] [--server-url URL]
 *   bun scripts/bench-api.ts --worst [--years N] [--seconds N] [--connections N]
 *
 * `--worst` instead fires the heaviest reads a client may ask (quality from 1970 to 2099 over half a century of stored
 * history, D1/H4 over 25 years with fill=prev, 50,000-bar pages) from `connections` clients (default 8) while one more
 * times `/api/data/health` every 10 ms, and measures how late this process's event loop runs meanwhile. Goal: health
 * p99 < 50 ms.
 *
 * Request logs are off during the load (minimum log level Warning, as with LOG_LEVEL=warning). Clients ask for
 * identity encoding, as wrk and most API clients do; `--gzip` adds an M1 round asking for gzip as browsers do.
 * Prints a table, then as its last line one JSON object.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Logger, LogLevel, ManagedRuntime, Option, Redacted } from "effect"
import { join } from "node:path"
import { appLayer } from "../src/app-layer.ts"
import { AppConfig } from "../src/config.ts"
import { sessions } from "../src/domain/calendar.ts"
import type { Candle, CandlePage } from "../src/domain/candle.ts"
import { makeApp } from "../src/http/app.ts"
import { runEffectWith } from "../src/http/run-effect.ts"
import { version } from "../src/http/server.ts"
import { Rollups } from "../src/store/rollups.ts"
import { CandleStore } from "../src/store/candle-store.ts"
import { ClusterLive } from "../src/supervisor/cluster.ts"
import { Jobs } from "../src/supervisor/jobs.ts"
import { Readiness } from "../src/supervisor/readiness.ts"
import { makeTally, rangeStarts, type LoadPlan, type LoadReport } from "./bench-api-load.ts"
import type { Timings, WorstPlan, WorstReport } from "./bench-api-worst-load.ts"
import { benchDatabase } from "./bench-database.ts"
import { timedUpserts } from "./bench-data.ts"

const flag = (name: string, fallback: string) => {
  const at = process.argv.indexOf(name)
  return (at >= 0 ? process.argv[at + 1] : undefined) ?? fallback
}
const years = Number(flag("--years", "1"))
const seconds = Number(flag("--seconds", "10"))
const warmupSeconds = Number(flag("--warmup", "3"))
const connections = Number(flag("--connections", process.argv.includes("--worst") ? "8" : "32"))
const gzipRound = process.argv.includes("--gzip")
const worst = process.argv.includes("--worst")
const serverUrl = flag("--server-url", "postgres://postgres@127.0.0.1:5432/postgres")

const symbol = "EURUSD"
const minute = 60_000
const day = 86_400_000
const from = Date.UTC(2021, 0, 3)
const to = Date.UTC(2021 + years, 0, 3)

/** Progress goes to stderr: stdout is the table and the JSON line. */
const progress = (line: string) => Effect.sync(() => console.error(line))

/**
 * One round of pages: a range `spanMillis` long from any minute that leaves room for it holds more than `limit`
 * bars (a week of M1 has at least four trading days; 45 days of H1 at least 600 open hours), so every answer is full.
 */
interface Round {
  readonly timeframe: "M1" | "H1"
  readonly limit: number
  readonly spanMillis: number
}
const m1: Round = { timeframe: "M1", limit: 1000, spanMillis: 7 * day }
const h1: Round = { timeframe: "H1", limit: 500, spanMillis: 45 * day }

const planFor = (round: Round, baseUrl: string, gzip: boolean): LoadPlan => ({
  baseUrl,
  symbol,
  timeframe: round.timeframe,
  limit: round.limit,
  firstStart: from,
  lastStart: to - round.spanMillis,
  spanMillis: round.spanMillis,
  connections,
  warmupSeconds,
  seconds,
  gzip,
  seed: round.limit
})

/** EURUSD M1 bars in every open forex session of [from, to): a seeded random walk at 5 digits, in pages. */
const sessionPages = (size: number): ReadonlyArray<CandlePage> => {
  let state = 20210103
  const random = () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31
    return state / 2 ** 31
  }
  const quote = (price: number) => Math.round(price * 100_000) / 100_000
  const pages: Array<CandlePage> = []
  let candles: Array<Candle> = []
  let price = 1.2245
  for (const session of sessions("forex", from, to)) {
    for (let ts = session.from; ts < session.to; ts += minute) {
      const open = price
      const close = quote(open + (random() - 0.5) * 0.0004)
      const high = quote(Math.max(open, close) + random() * 0.0002)
      const low = quote(Math.min(open, close) - random() * 0.0002)
      candles.push({ ts, open, high, low, close, volume: 1 + Math.floor(random() * 2_000), vwap: null, trades: null })
      price = close
      if (candles.length === size) {
        pages.push({ symbol, timeframe: "M1", source: "import", candles })
        candles = []
      }
    }
  }
  if (candles.length > 0) pages.push({ symbol, timeframe: "M1", source: "import", candles })
  return pages
}

/**
 * The statements CandleStore.range sends for a page (it asks one bar more than `limit` to find the cursor):
 * M1 is a stream of its own, read from `candles`; H1 is not, so it is read from the `candles_h1` rollup.
 */
const rangeStatement = (round: Round, start: number): { readonly text: string; readonly params: ReadonlyArray<unknown> } => {
  const fromDate = new Date(start)
  const toDate = new Date(start + round.spanMillis)
  return round.timeframe === "M1"
    ? {
        text: `SELECT ts, open, high, low, close, volume, 1 AS bars FROM candles
             WHERE symbol = $1 AND timeframe = $2 AND ts >= $3 AND ts < $4 ORDER BY ts ASC LIMIT $5`,
        params: [symbol, "M1", fromDate, toDate, round.limit + 1]
      }
    : {
        text: `SELECT ts, open, high, low, close, volume, bars::int AS bars FROM candles_h1
             WHERE symbol = $1 AND ts >= $2 AND ts < $3 ORDER BY ts ASC LIMIT $4`,
        params: [symbol, fromDate, toDate, round.limit + 1]
      }
}

interface Measured {
  readonly target: string
  readonly report: LoadReport
  /** CPU this process spent per request (warm-up included): the server's for API rounds, the SQL client's for SQL rounds. */
  readonly ownCpuMs: number
  /** The load generator's CPU per request, for API rounds. */
  readonly loadCpuMs: number | null
}

/**
 * `connections` fibers each sending one query after another, in this process on the app's own pool, for the
 * warm-up and then `seconds`; a query is right when it returns `limit + 1` rows, as the page's query does.
 */
const timedQueries = <E, R>(round: Round, query: (start: number) => Effect.Effect<ReadonlyArray<unknown>, E, R>) =>
  Effect.gen(function* () {
    const plan = planFor(round, "", false)
    const tally = makeTally(warmupSeconds, seconds)
    yield* Effect.forEach(
      Array.from({ length: connections }, (_, i) => i),
      (index) =>
        Effect.gen(function* () {
          const nextStart = rangeStarts(plan, index)
          while (tally.open()) {
            const start = nextStart()
            const sent = performance.now()
            const rows = yield* Effect.either(query(start))
            const failure = rows._tag === "Left" ? String(rows.left) : rows.right.length !== round.limit + 1 ? `${rows.right.length} rows` : null
            tally.record(sent, performance.now(), failure === null ? null : `${new Date(start).toISOString()}: ${failure}`)
          }
        }),
      { concurrency: "unbounded", discard: true }
    )
    return tally.report()
  })

/** Runs the load generator in a process of its own and reads its report. */
const load = (plan: LoadPlan) =>
  Effect.promise(async () => {
    const child = Bun.spawn([process.execPath, join(import.meta.dir, "bench-api-load.ts"), JSON.stringify(plan)], { stdout: "pipe", stderr: "inherit" })
    const [text, code] = await Promise.all([new Response(child.stdout).text(), child.exited])
    const last = text.trim().split("\n").at(-1) ?? ""
    if (code !== 0 || !last.startsWith("{")) throw new Error(`the load generator exited ${code}: ${text.trim()}`)
    return JSON.parse(last) as LoadReport
  })

/** A port nobody listens on now, for the cluster's runner socket (the default one may belong to a running service). */
const freePort = (): number => {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } })
  const port = listener.port
  listener.stop(true)
  return port
}

const table = (rows: ReadonlyArray<Measured>): string => {
  const header = ["target", "requests", "failed", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "KB body", "CPU ms/req", "load CPU ms/req"]
  const cells = rows.map(({ target, report: r, ownCpuMs, loadCpuMs }) => [
    target,
    r.requests.toLocaleString("en"),
    String(r.failures),
    r.rps.toLocaleString("en"),
    r.p50Ms.toFixed(2),
    r.p90Ms.toFixed(2),
    r.p99Ms.toFixed(2),
    r.maxMs.toFixed(1),
    r.meanBytes === 0 ? "" : (r.meanBytes / 1024).toFixed(1),
    ownCpuMs.toFixed(3),
    loadCpuMs === null ? "" : loadCpuMs.toFixed(3)
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i]!.length)))
  const line = (row: ReadonlyArray<string>) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ")
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...cells.map(line)].join("\n")
}

/** The reads that stalled the server in issue 16, on history stretched back to 1971 by one bar per symbol (as a careless import leaves). */
const worstPaths = [
  "/api/data/quality/EURUSD?timeframe=M1&from=1970-01-01&to=2099-12-31",
  "/api/data/quality/XAUUSD?timeframe=M1&from=1970-01-01&to=2099-12-31",
  "/api/data/candles?symbol=EURUSD&timeframe=D1&start=1997-01-04&end=2022-01-03&fill=prev&limit=50000",
  "/api/data/candles?symbol=EURUSD&timeframe=H4&start=1997-01-04&end=2022-01-03&fill=prev&limit=50000",
  "/api/data/candles?symbol=XAUUSD&timeframe=D1&start=1997-01-04&end=2022-01-03&fill=prev&limit=50000",
  "/api/data/candles?symbol=EURUSD&timeframe=M1&start=2021-01-03&end=2022-01-03&limit=50000",
  "/api/data/candles?symbol=EURUSD&timeframe=M1&start=2021-01-03&end=2022-01-03&fill=prev&limit=50000"
]

/** In `--worst`, the request asked alone (`X-Bench-Solo`) the server is busy with, so loop stalls can be put down to it. */
let soloPath: string | null = null
const soloTracking = (fetch: (request: Request) => Response | Promise<Response>) => (request: Request) => {
  const url = new URL(request.url)
  soloPath = request.headers.has("X-Bench-Solo") ? `${url.pathname}${url.search}` : null
  return fetch(request)
}

const worstRound = (
  baseUrl: string,
  bars: number,
  run: <A, E>(effect: Effect.Effect<A, E, CandleStore | Rollups>) => Effect.Effect<A>
) =>
  Effect.gen(function* () {
    const bar = (ts: number, price: number): Candle => ({ ts, open: price, high: price, low: price, close: price, volume: 1, vwap: null, trades: null })
    yield* run(CandleStore.use((store) => store.upsertPage({ symbol, timeframe: "M1", source: "import", candles: [bar(Date.UTC(1971, 0, 5, 10), 1.2)] })))
    yield* run(CandleStore.use((store) => store.upsertPage({ symbol: "XAUUSD", timeframe: "M1", source: "import", candles: [bar(Date.UTC(1971, 0, 5, 15), 37.5), bar(Date.UTC(2021, 0, 5, 15), 1950)] })))
    yield* run(Rollups.use((rollups) => rollups.pay))

    // How late a 5 ms timer fires in this process, the server's: the longest time the event loop was held; while a
    // path is asked alone, its longest stall.
    // On a shared machine a timer is also late when the OS runs other processes: the part of a delay this process
    // spent on the CPU (its CPU time over the tick, less the 5 ms the tick may idle) is the part its own work held.
    const lateness: Array<number> = []
    const ownLateness: Array<number> = []
    const soloStall = new Map<string, number>()
    let expected = performance.now() + 5
    let cpuBefore = process.cpuUsage()
    const monitor = setInterval(() => {
      const now = performance.now()
      const cpu = process.cpuUsage(cpuBefore)
      cpuBefore = process.cpuUsage()
      const late = Math.max(0, now - expected)
      const own = Math.max(0, Math.min(late, (cpu.user + cpu.system) / 1000 - 5))
      if (soloPath !== null) soloStall.set(soloPath, Math.max(soloStall.get(soloPath) ?? 0, own))
      else {
        lateness.push(late)
        ownLateness.push(own)
      }
      expected = now + 5
    }, 5)
    const plan: WorstPlan = { baseUrl, paths: worstPaths, connections, seconds }
    yield* progress(`worst reads: ${connections} clients for ${seconds} s, /api/data/health timed every 10 ms`)
    const report = yield* Effect.promise(async () => {
      const child = Bun.spawn([process.execPath, join(import.meta.dir, "bench-api-worst-load.ts"), JSON.stringify(plan)], { stdout: "pipe", stderr: "inherit" })
      const [text, code] = await Promise.all([new Response(child.stdout).text(), child.exited])
      const last = text.trim().split("\n").at(-1) ?? ""
      if (code !== 0 || !last.startsWith("{")) throw new Error(`the worst-read generator exited ${code}: ${text.trim()}`)
      return JSON.parse(last) as WorstReport
    }).pipe(Effect.ensuring(Effect.sync(() => clearInterval(monitor))))
    for (const sample of report.failureSamples) yield* progress(`FAILED ${sample}`)
    const at = (values: ReadonlyArray<number>, p: number) => {
      const sorted = [...values].sort((a, b) => a - b)
      return Math.round((sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0) * 10) / 10
    }
    const loopP99 = at(lateness, 0.99)
    const loopMax = at(lateness, 1)
    const ownP99 = at(ownLateness, 0.99)
    const ownMax = at(ownLateness, 1)
    const rows: ReadonlyArray<readonly [string, Timings & { readonly meanKB?: number }]> = [["GET /api/data/health (every 10 ms)", report.health], ...Object.entries(report.reads)]
    const header = ["request", "n", "failed", "p50 ms", "p99 ms", "max ms", "KB", "alone: loop held by own work ms"]
    const cells = rows.map(([what, t]) => [
      what,
      String(t.requests),
      String(t.failures),
      t.p50Ms.toFixed(1),
      t.p99Ms.toFixed(1),
      t.maxMs.toFixed(1),
      t.meanKB === undefined ? "" : t.meanKB.toFixed(0),
      soloStall.has(what) ? soloStall.get(what)!.toFixed(1) : ""
    ])
    const widths = header.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i]!.length)))
    const line = (row: ReadonlyArray<string>) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ")
    const failures = report.health.failures + Object.values(report.reads).reduce((n, t) => n + t.failures, 0)
    yield* Effect.sync(() => {
      console.log(`api --worst: ${bars.toLocaleString("en")} ${symbol} M1 bars (+ one 1971 bar each for EURUSD and XAUUSD); ${connections} clients, ${seconds} s`)
      console.log([line(header), widths.map((w) => "-".repeat(w)).join("  "), ...cells.map(line)].join("\n"))
      console.log(
        `event loop of the server: p99 late ${loopP99} ms (of which its own work ${ownP99} ms), longest ${loopMax} ms (own work ${ownMax} ms); ` +
          `health p99 ${report.health.p99Ms} ms (goal < 50)`
      )
      console.log(
        JSON.stringify({
          bench: "api-worst",
          health_p50_ms: report.health.p50Ms,
          health_p99_ms: report.health.p99Ms,
          health_max_ms: report.health.maxMs,
          loop_late_p99_ms: loopP99,
          loop_late_max_ms: loopMax,
          loop_own_p99_ms: ownP99,
          loop_own_max_ms: ownMax,
          alone_loop_held_max_ms: Math.round(Math.max(0, ...soloStall.values()) * 10) / 10,
          worst_reads: Object.values(report.reads).reduce((n, t) => n + t.requests, 0),
          connections,
          seconds,
          bars,
          failures
        })
      )
    })
  })

const program = Effect.gen(function* () {
  const url = yield* benchDatabase(serverUrl, `candlekeep_bencha_${process.pid}`)
  const defaults = AppConfig.fixed()
  const config = AppConfig.fixed({
    databaseUrl: Option.some(Redacted.make(url)),
    logLevel: LogLevel.Warning,
    supervisor: { ...defaults.supervisor, runnerPort: freePort() }
  })
  // As `candlekeep serve` with LOG_LEVEL=warning: logfmt on stderr, nothing below Warning (no request lines).
  const logging = Layer.merge(Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger)), Logger.minimumLogLevel(config.logLevel))
  const layer = Layer.mergeAll(Jobs.Default, Readiness.Default).pipe(
    Layer.provideMerge(ClusterLive),
    Layer.provideMerge(appLayer(config)),
    Layer.provideMerge(logging)
  )
  const runtime = yield* Effect.acquireRelease(
    Effect.sync(() => ManagedRuntime.make(layer)),
    (runtime) => Effect.promise(() => runtime.dispose())
  )
  const run = <A, E>(effect: Effect.Effect<A, E, ManagedRuntime.ManagedRuntime.Context<typeof runtime>>) =>
    Effect.promise(() => runtime.runPromise(effect))

  const pages = sessionPages(50_000)
  const bars = pages.reduce((n, page) => n + page.candles.length, 0)
  yield* progress(`seeding ${bars.toLocaleString("en")} ${symbol} M1 bars (${years} year${years === 1 ? "" : "s"} of forex sessions)`)
  const seeded = yield* run(timedUpserts(pages))
  const refreshStarted = performance.now()
  yield* run(Rollups.use((rollups) => rollups.pay))
  const refreshSeconds = (performance.now() - refreshStarted) / 1000
  yield* run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`VACUUM ANALYZE`))

  const app = makeApp(runEffectWith(yield* Effect.promise(() => runtime.runtime())), config.http, version)
  const server = yield* Effect.acquireRelease(
    Effect.sync(() => Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: worst ? soloTracking(app.fetch) : app.fetch, idleTimeout: 60 })),
    (server) => Effect.promise(() => server.stop(true))
  )
  const baseUrl = `http://127.0.0.1:${server.port}`

  if (worst) return yield* worstRound(baseUrl, bars, run)

  const measured: Array<Measured> = []
  /** One round; `inProcess` rounds send from this process, the others from the load generator. */
  const measure = (target: string, inProcess: boolean, round: Effect.Effect<LoadReport>) =>
    Effect.gen(function* () {
      yield* progress(`${target}: ${connections} connections, ${warmupSeconds} s warm-up + ${seconds} s`)
      const cpuStart = process.cpuUsage()
      const report = yield* round
      const cpu = process.cpuUsage(cpuStart)
      const ownCpuMs = (cpu.user + cpu.system) / 1000 / report.totalRequests
      for (const sample of report.failureSamples) yield* progress(`${target}: FAILED ${sample}`)
      measured.push({ target, report, ownCpuMs, loadCpuMs: inProcess ? null : report.cpuMsPerRequest })
      return report
    })
  const sqlRound = (round: Round) =>
    run(
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        timedQueries(round, (start) => {
          const statement = rangeStatement(round, start)
          return sql.unsafe(statement.text, statement.params)
        })
      )
    )

  const apiM1 = yield* measure(`API  M1 × ${m1.limit}`, false, load(planFor(m1, baseUrl, false)))
  const apiH1 = yield* measure(`API  H1 × ${h1.limit}`, false, load(planFor(h1, baseUrl, false)))
  if (gzipRound) yield* measure(`API  M1 × ${m1.limit} gzip`, false, load(planFor(m1, baseUrl, true)))
  const sqlM1 = yield* measure(`SQL  M1 × ${m1.limit + 1}`, true, sqlRound(m1))
  const sqlH1 = yield* measure(`SQL  H1 × ${h1.limit + 1}`, true, sqlRound(h1))
  const storeM1 = yield* measure(
    `CandleStore.range M1 × ${m1.limit + 1}`,
    true,
    run(CandleStore.use((store) => timedQueries(m1, (start) => store.range({ symbol, timeframe: "M1", from: start, to: start + m1.spanMillis, limit: m1.limit + 1 }))))
  )

  const cpuOf = (report: LoadReport) => Math.round((measured.find((m) => m.report === report)?.ownCpuMs ?? Number.NaN) * 1000) / 1000
  const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100
  const failures = measured.reduce((n, m) => n + m.report.failures, 0)
  yield* Effect.sync(() => {
    console.log(
      `api: ${bars.toLocaleString("en")} ${symbol} M1 bars seeded in ${seeded.seconds.toFixed(1)} s (+ rollups ${refreshSeconds.toFixed(1)} s); ` +
        `${connections} connections, ${seconds} s each after ${warmupSeconds} s warm-up; request logs off (log level Warning); ` +
        `load generator in its own process; SQL and CandleStore.range in this process on the app's pool`
    )
    console.log(table(measured))
    console.log(`API M1 p50 / SQL M1 p50 = ${ratio(apiM1.p50Ms, sqlM1.p50Ms)} (goal ≤ 1.5); API M1 ${apiM1.rps.toLocaleString("en")} req/s (goal ≥ 1,000)`)
    console.log(
      JSON.stringify({
        bench: "api",
        m1_p50_ms: apiM1.p50Ms,
        m1_p99_ms: apiM1.p99Ms,
        h1_p50_ms: apiH1.p50Ms,
        rps: apiM1.rps,
        overhead_vs_sql: ratio(apiM1.p50Ms, sqlM1.p50Ms),
        h1_p99_ms: apiH1.p99Ms,
        h1_rps: apiH1.rps,
        sql_m1_p50_ms: sqlM1.p50Ms,
        sql_m1_rps: sqlM1.rps,
        sql_h1_p50_ms: sqlH1.p50Ms,
        store_m1_p50_ms: storeM1.p50Ms,
        server_cpu_ms_per_m1: cpuOf(apiM1),
        sql_cpu_ms_per_m1: cpuOf(sqlM1),
        connections,
        bars,
        failures
      })
    )
  })
})

Effect.runPromise(Effect.scoped(program)).catch((error) => {
  console.error(`bench-api: ${error instanceof Error ? error.message : String(error)}`)
  console.log(JSON.stringify({ bench: "api", m1_p50_ms: null, m1_p99_ms: null, h1_p50_ms: null, rps: null, overhead_vs_sql: null }))
  process.exitCode = 1
})
