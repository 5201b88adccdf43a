/**
 * Pipeline benchmark: `Backfill.run` end to end — HTTP from the Massive fake, JSON and Schema decoding,
 * validation, the page transaction and the rollup refresh — into a fresh PostgreSQL database, against
 * `CandleStore.upsertPage` alone on the same bars; and the pipeline's peak RSS at two sizes.
 *
 *   bun scripts/bench-pipeline.ts [--bars N] [--server-url URL] [--concurrent] [--symbols 1-5]
 *   (or BENCH_BARS, BENCH_SERVER_URL)
 *
 * The fake runs in a child process (scripts/fake-massive-server.ts), so the RSS sampled here is the
 * pipeline's own. Where the pipeline's time goes is read from the spans it already opens, plus a pass over
 * the same pages that times HTTP, JSON.parse, Schema decoding and validation one by one.
 * Prints a table, then as its last line one JSON object for machines; progress and logs go to stderr.
 */
import { PgClient } from "@effect/sql-pg"
import { BunRuntime } from "@effect/platform-bun"
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Logger, LogLevel, ManagedRuntime, Option, Redacted, Schema, Tracer } from "effect"
import { join } from "node:path"
import { appLayer } from "../src/app-layer.ts"
import { AppConfig, DatabaseFlavourSetting } from "../src/config.ts"
import type { CandlePage } from "../src/domain/candle.ts"
import { defaultSymbols } from "../src/domain/symbol.ts"
import { initialSpikeState, validatePage } from "../src/domain/validation.ts"
import { Backfill, requestWindowMillis, requestWindows } from "../src/pipeline/backfill.ts"
import { AggregatesResponse, wireBarToCandle } from "../src/sources/massive/wire.ts"
import { Rollups } from "../src/store/rollups.ts"
import { DatabaseInfo, redactUrl } from "../src/store/database.ts"
import { generateStreams, timedUpserts } from "./bench-data.ts"
import { benchDatabase } from "./bench-database.ts"
import { option } from "./bench-options.ts"

/** The server flavour to bench (DATABASE_FLAVOUR=timescale|plain); auto picks TimescaleDB where the server preloads it. */
const benchFlavour = Schema.decodeUnknownSync(DatabaseFlavourSetting)(process.env.DATABASE_FLAVOUR ?? "auto")

const bars = Number(option("--bars", "BENCH_BARS", "1000000"))
const sequential = !process.argv.includes("--concurrent")
/** How many symbols share the bars (1 to 5): one symbol is one `backfill` of all of them. */
const symbols = Number(option("--symbols", "BENCH_SYMBOLS", "5"))
if (!Number.isInteger(symbols) || symbols < 1 || symbols > 5) throw new Error(`--symbols expects 1 to 5, got ${option("--symbols", "BENCH_SYMBOLS", "")}`)
if (!Number.isInteger(bars) || bars <= 0) throw new Error(`--bars expects a positive integer, got ${option("--bars", "BENCH_BARS", "")}`)
const serverUrl = option("--server-url", "BENCH_SERVER_URL", "postgres://postgres@127.0.0.1:5432/postgres")
/** The second, smaller run: it shows whether peak memory follows the number of bars. */
const smallBars = Math.max(1, Math.round(bars / 4))
/** The vendor's largest page, and the page size of the raw upsert. */
const pageSize = 50_000
const apiKey = "bench-pipeline-key"
const minute = 60_000
const megabyte = 1024 * 1024

/** Progress goes to stderr: stdout is the table and the JSON line. */
const progress = (line: string) => Effect.sync(() => console.error(line))

const count = (n: number) => n.toLocaleString("en")
const perSecond = (n: number, seconds: number) => Math.round(n / seconds)

// ---------------------------------------------------------------------------------------------- fake server

interface FakeStream {
  readonly symbol: string
  readonly ticker: string
  /** First bar's open time and the end (exclusive), Unix ms. */
  readonly from: number
  readonly to: number
  readonly bars: number
}

interface FakeServer {
  readonly baseUrl: string
  readonly streams: ReadonlyArray<FakeStream>
}

const firstLine = async (stream: ReadableStream<Uint8Array>): Promise<string> => {
  const reader = stream.getReader()
  const decoder = new TextDecoder()
  let text = ""
  for (;;) {
    const { done, value } = await reader.read()
    if (value) text += decoder.decode(value, { stream: true })
    const end = text.indexOf("\n")
    if (end >= 0) return text.slice(0, end)
    if (done) throw new Error(`the fake server stopped before printing its address (${JSON.stringify(text)})`)
  }
}

/** The Massive fake serving `count` seeded bars from a child process, killed when the scope closes. */
const fakeServer = (barCount: number) =>
  Effect.gen(function* () {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        Bun.spawn(
          [process.execPath, join(import.meta.dir, "fake-massive-server.ts"), "--bars", String(barCount), "--api-key", apiKey, "--page-size", String(pageSize), "--symbols", String(symbols)],
          { stdin: "pipe", stdout: "pipe", stderr: "inherit" }
        )
      ),
      (child) =>
        Effect.promise(async () => {
          child.kill()
          await child.exited
        })
    )
    const line = yield* Effect.promise(() => firstLine(child.stdout))
    return JSON.parse(line) as FakeServer
  })

// ---------------------------------------------------------------------------------------------- databases

const onAdmin = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
  Effect.provide(effect, PgClient.layer({ url: Redacted.make(serverUrl), applicationName: "candlekeep-bench", connectTimeout: "5 seconds" }))

/** A database of its own next to the one the URL names, dropped when the scope closes. */
const ownDatabase = (suffix: string) => benchDatabase(serverUrl, `candlekeep_benchp_${process.pid}${suffix}`)

/** Total time per span name, from the spans the pipeline already opens: where its time goes, with no change to it. */
const spanClock = () => {
  const totals = new Map<string, { count: number; seconds: number }>()
  const tracer = Effect.map(Effect.tracer, (base) =>
    Tracer.make({
      span: (name, parent, context, links, startTime, kind, options) => {
        const span = base.span(name, parent, context, links, startTime, kind, options)
        const end = span.end.bind(span)
        span.end = (endTime, exit) => {
          const total = totals.get(name) ?? { count: 0, seconds: 0 }
          totals.set(name, { count: total.count + 1, seconds: total.seconds + Number(endTime - startTime) / 1e9 })
          end(endTime, exit)
        }
        return span
      },
      context: (f, fiber) => base.context(f, fiber)
    })
  )
  return { layer: Layer.unwrapEffect(Effect.map(tracer, Layer.setTracer)), seconds: (name: string) => totals.get(name)?.seconds ?? 0, totals }
}

/** Logs go to stderr, so stdout holds only the table and the JSON line. */
const quietLogging = Layer.mergeAll(
  Logger.minimumLogLevel(LogLevel.Warning),
  Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true, colors: false }))
)

/** Every service over the bench database and the fake, quiet below warnings, logging to stderr. */
const appRuntime = (databaseUrl: string, baseUrl: string, tracing: Layer.Layer<never> = Layer.empty) =>
  Effect.gen(function* () {
    const defaults = AppConfig.fixed()
    const config = AppConfig.fixed({
      databaseUrl: Option.some(Redacted.make(databaseUrl)),
      databaseFlavour: benchFlavour,
      logLevel: LogLevel.Warning,
      massive: { ...defaults.massive, apiKey: Option.some(Redacted.make(apiKey)), baseUrl, plan: "paid", requestsPerMinute: Option.none() }
    })
    const layer = appLayer(config).pipe(
      Layer.provideMerge(quietLogging),
      Layer.provideMerge(tracing)
    )
    const runtime = yield* Effect.acquireRelease(Effect.sync(() => ManagedRuntime.make(layer)), (runtime) => Effect.promise(() => runtime.dispose()))
    yield* runtime.runtimeEffect
    return runtime
  })

/** A checkpoint before each timed part, so no part pays for an earlier one's dirty pages. */
const checkpoint = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`CHECKPOINT`).pipe(Effect.ignore)

// ---------------------------------------------------------------------------------------------- pipeline

const rssBytes = () => process.memoryUsage.rss()

/** Runs `effect` while sampling the RSS every 100 ms; the peak and the RSS it started from, in MB. */
const withPeakRss = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    Bun.gc(true)
    const startRss = rssBytes()
    let peak = startRss
    const timer = setInterval(() => {
      peak = Math.max(peak, rssBytes())
    }, 100)
    const result = yield* Effect.ensuring(effect, Effect.sync(() => clearInterval(timer)))
    peak = Math.max(peak, rssBytes())
    return { result, startRssMb: startRss / megabyte, peakRssMb: peak / megabyte }
  })

interface PipelineRun {
  readonly bars: number
  /** What the store runs on: the rollup refresh differs between plain PostgreSQL and TimescaleDB. */
  readonly flavour: "timescale" | "plain"
  readonly store: string
  readonly symbols: number
  readonly seconds: number
  readonly fetched: number
  readonly stored: number
  readonly rejected: number
  readonly pages: number
  readonly retries: number
  readonly startRssMb: number
  readonly peakRssMb: number
  /** The process's RSS high-water mark since it started, as the kernel counts it (between samples too). */
  readonly maxRssMb: number
}

/**
 * Every stream backfilled one after another, as `backfill` commands typed in turn would; with `--concurrent` all at
 * once, as the supervisor's loops do (the vendor client caps requests in flight). Each run pays the rollups it owes
 * before it returns. The clock runs over the runs only.
 */
const backfillAll = (streams: ReadonlyArray<FakeStream>) =>
  Effect.gen(function* () {
    const backfill = yield* Backfill
    const start = performance.now()
    const reports = yield* Effect.forEach(streams, (stream) => backfill.run({ symbol: stream.symbol, timeframe: "M1", from: stream.from, to: stream.to }), {
      concurrency: sequential ? 1 : "unbounded"
    })
    const sum = (pick: (report: (typeof reports)[number]) => number) => reports.reduce((n, report) => n + pick(report), 0)
    return {
      fetched: sum((r) => r.fetched),
      stored: sum((r) => r.stored),
      rejected: sum((r) => r.rejected),
      pages: sum((r) => r.pages),
      retries: sum((r) => r.retries),
      seconds: (performance.now() - start) / 1000
    }
  })

const pipelineRun = (barCount: number, suffix: string, tracing: Layer.Layer<never> = Layer.empty) =>
  Effect.gen(function* () {
    const fake = yield* fakeServer(barCount)
    const url = yield* ownDatabase(suffix)
    const runtime = yield* appRuntime(url, fake.baseUrl, tracing)
    yield* Effect.provide(checkpoint, runtime)
    yield* progress(`pipeline: backfilling ${count(barCount)} bars of ${fake.streams.length} symbols from ${fake.baseUrl} into ${redactUrl(Redacted.make(url))}`)
    const { result, startRssMb, peakRssMb } = yield* withPeakRss(Effect.provide(backfillAll(fake.streams), runtime))
    if (result.fetched !== barCount || result.stored !== barCount) {
      yield* progress(`pipeline: WARNING fetched ${result.fetched} and stored ${result.stored} bars, expected ${barCount}`)
    }
    const info = yield* Effect.provide(DatabaseInfo, runtime)
    const run: PipelineRun = {
      bars: barCount,
      flavour: info.flavour,
      store: `PostgreSQL ${info.postgresVersion}, ${info.flavour === "timescale" ? `TimescaleDB ${info.timescaleVersion}` : "plain rollup tables"}`,
      symbols: fake.streams.length,
      ...result,
      startRssMb,
      peakRssMb,
      maxRssMb: process.resourceUsage().maxRSS / 1024
    }
    return { run, fake }
  })

// ---------------------------------------------------------------------------------------------- stages apart

interface StageTimes {
  readonly pages: number
  readonly bars: number
  readonly http: number
  readonly jsonParse: number
  readonly schemaDecode: number
  readonly validate: number
  readonly rejected: number
}

/**
 * The same requests as the pipeline (one window at a time, following next_url), each stage timed on its own
 * and nothing written: HTTP (request to body text), JSON.parse, Schema decoding to candles, validatePage.
 */
const stagesApart = (fake: FakeServer) =>
  Effect.promise(async (): Promise<StageTimes> => {
    const times = { pages: 0, bars: 0, http: 0, jsonParse: 0, schemaDecode: 0, validate: 0, rejected: 0 }
    const decode = Schema.decodeUnknownSync(AggregatesResponse)
    for (const stream of fake.streams) {
      const spec = defaultSymbols.find((s) => s.symbol === stream.symbol)!
      let state = initialSpikeState()
      for (const window of requestWindows(stream.from, stream.to, "M1")) {
        // The URL MassiveClient asks for a window's first page.
        let url: string | undefined = `${fake.baseUrl}/v2/aggs/ticker/${stream.ticker}/range/1/minute/${window.from}/${window.to - 1}?adjusted=true&sort=asc&limit=50000`
        while (url !== undefined) {
          const t0 = performance.now()
          const response = await fetch(url, { headers: { authorization: `Bearer ${apiKey}`, accept: "application/json" } })
          const body = await response.text()
          const t1 = performance.now()
          const json: unknown = JSON.parse(body)
          const t2 = performance.now()
          const page = decode(json)
          const candles = (page.results ?? []).map(wireBarToCandle)
          const t3 = performance.now()
          const checked = validatePage({ spec, timeframe: "M1", candles, now: Date.now(), state })
          const t4 = performance.now()
          state = checked.state
          times.pages += 1
          times.bars += candles.length
          times.rejected += checked.rejected.length
          times.http += t1 - t0
          times.jsonParse += t2 - t1
          times.schemaDecode += t3 - t2
          times.validate += t4 - t3
          url = page.next_url
        }
      }
    }
    return { ...times, http: times.http / 1000, jsonParse: times.jsonParse / 1000, schemaDecode: times.schemaDecode / 1000, validate: times.validate / 1000 }
  })

// ---------------------------------------------------------------------------------------------- raw upsert

/** upsertPage alone on the same bars in pages of 50,000 (timed), then the rollups refreshed page by page (timed apart). */
const rawUpsert = (barCount: number) =>
  Effect.gen(function* () {
    const url = yield* ownDatabase("_raw")
    const runtime = yield* appRuntime(url, "http://127.0.0.1:9")
    const pages = generateStreams(barCount, undefined, symbols).flatMap((stream) => {
      const cut: Array<CandlePage> = []
      for (let at = 0; at < stream.candles.length; at += pageSize) {
        cut.push({ symbol: stream.symbol, timeframe: "M1", source: "massive", candles: stream.candles.slice(at, at + pageSize) })
      }
      return cut
    })
    return yield* Effect.gen(function* () {
      const rollups = yield* Rollups
      yield* checkpoint
      yield* progress(`raw: upserting ${count(barCount)} bars in ${pages.length} pages of ≤ ${count(pageSize)}`)
      const { stored, seconds } = yield* timedUpserts(pages)
      if (stored !== barCount) yield* progress(`raw: WARNING stored ${stored} bars, expected ${barCount}`)
      yield* progress("raw: paying the rollups the pages made owed")
      const refreshStart = performance.now()
      yield* rollups.pay
      return { pages: pages.length, seconds, refreshSeconds: (performance.now() - refreshStart) / 1000 }
    }).pipe(Effect.provide(runtime))
  })

// ---------------------------------------------------------------------------------------------- report

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const line = (row: ReadonlyArray<string>) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ")
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n")
}

const serverReachable = onAdmin(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`)).pipe(
  Effect.as(true),
  Effect.catchAll((error) =>
    Effect.as(
      Effect.sync(() => console.log(`PostgreSQL server ${redactUrl(Redacted.make(serverUrl))} unreachable (${error.message}): nothing measured`)),
      false
    )
  )
)

const emptyResult = { bench: "pipeline", bars, bars_per_s: null, raw_upsert_rows_per_s: null, vs_raw_upsert: null, peak_rss_mb: null }

const program = Effect.gen(function* () {
  if (!(yield* serverReachable)) {
    console.log(JSON.stringify(emptyResult))
    return
  }
  const { run: small } = yield* Effect.scoped(pipelineRun(smallBars, "_small"))
  const spans = spanClock()
  const { large, stages } = yield* Effect.scoped(
    Effect.gen(function* () {
      const { run, fake } = yield* pipelineRun(bars, "", spans.layer)
      yield* progress("stages: the same pages again, each stage timed apart, nothing written")
      return { large: run, stages: yield* stagesApart(fake) }
    })
  )
  const raw = yield* Effect.scoped(rawUpsert(bars))

  const pipelineRate = perSecond(large.fetched, large.seconds)
  const rawRate = perSecond(bars, raw.seconds)
  const vsRaw = Math.round((pipelineRate / rawRate) * 100) / 100
  const share = (seconds: number) => `${((seconds / large.seconds) * 100).toFixed(1)}%`
  const row = (stage: string, n: number, seconds: number, ofPipeline = true) => [
    stage,
    count(n),
    seconds.toFixed(2),
    count(perSecond(n, seconds)),
    ofPipeline ? share(seconds) : ""
  ]
  const fetchPage = spans.seconds("Massive.fetchPage")
  const writePage = spans.seconds("Ingest.writePage")
  const upsert = spans.seconds("CandleStore.upsertPage")
  // Rollups are paid outside the page transaction, by the run (every 30 s and before it returns).
  const refresh = spans.seconds("Rollups.pay")
  const statements = spans.totals.get("sql.execute")

  console.log(
    `pipeline: ${count(bars)} M1 bars, ${large.symbols} symbols, ${large.pages} pages ` +
      `(one request window each, ≤ ${count(Math.min(pageSize, requestWindowMillis("M1") / minute))} bars), ` +
      `fake Massive in a child process, ${large.store}`
  )
  console.log(
    table(
      ["stage", "bars", "seconds", "bars/s", "of pipeline"],
      [
        row("Backfill.run (whole pipeline)", large.fetched, large.seconds),
        row("  Massive.fetchPage (HTTP + JSON + Schema)", large.fetched, fetchPage),
        row("  Ingest.writePage", large.fetched, writePage),
        row("    CandleStore.upsertPage", large.fetched, upsert),
        row("    rest (validation, page bookkeeping)", large.fetched, writePage - upsert),
        row("  Rollups.pay (rollups owed by the pages)", large.fetched, refresh),
        row("  rest (Backfill loop, progress)", large.fetched, large.seconds - fetchPage - writePage - refresh),
        row(`raw upsertPage alone (pages of ${count(pageSize)})`, bars, raw.seconds, false),
        row("raw Rollups.pay, once after every page", bars, raw.refreshSeconds, false)
      ]
    )
  )
  console.log("")
  console.log(`the same ${stages.pages} pages again, each stage apart (nothing written):`)
  console.log(
    table(
      ["stage", "bars", "seconds", "bars/s", "of pipeline"],
      [
        row("HTTP request → body text", stages.bars, stages.http),
        row("JSON.parse", stages.bars, stages.jsonParse),
        row("Schema decode (AggregatesResponse) + to candles", stages.bars, stages.schemaDecode),
        row("validatePage", stages.bars, stages.validate)
      ]
    )
  )
  console.log("")
  console.log(
    table(
      ["run", "bars", "RSS at start MB", "peak RSS MB (100 ms samples)", "high-water so far MB (kernel)"],
      [small, large].map((run) => [
        `pipeline ${count(run.bars)}`,
        count(run.bars),
        run.startRssMb.toFixed(0),
        run.peakRssMb.toFixed(0),
        run.maxRssMb.toFixed(0)
      ])
    )
  )
  console.log("")
  console.log(
    `rejected: ${large.rejected} (pipeline), ${stages.rejected} (stages apart); retries: ${large.retries}; ` +
      `SQL statements in the pipeline: ${statements?.count ?? "?"}; ` +
      `vs raw upsert: ${vsRaw} (goal ≥ 0.8); peak RSS ${large.peakRssMb.toFixed(0)} MB at ${count(bars)} bars, ` +
      `${small.peakRssMb.toFixed(0)} MB at ${count(smallBars)} (goal < 300 MB, flat)`
  )
  console.log(
    JSON.stringify({
      bench: "pipeline",
      bars,
      symbols,
      streams: sequential ? "sequential" : "concurrent",
      bars_per_s: pipelineRate,
      raw_upsert_rows_per_s: rawRate,
      vs_raw_upsert: vsRaw,
      peak_rss_mb: Math.round(large.peakRssMb),
      rejected: large.rejected,
      refresh_aggregates_s: Math.round(refresh * 100) / 100,
      write_s: Math.round(writePage * 100) / 100,
      flavour: large.flavour,
      bars_small: smallBars,
      peak_rss_mb_small: Math.round(small.peakRssMb)
    })
  )
}).pipe(Effect.provide(quietLogging))

BunRuntime.runMain(program)
