/**
 * Export benchmark: `bun src/main.ts export` of a multi-year M1 range in each format, as a child process (its
 * peak RSS and wall time measured by /usr/bin/time), against `psql \copy (SELECT …) TO` of the same rows.
 *
 *   bun scripts/bench-export.ts [--bars N] [--symbols 1-5] [--server-url URL]
 *   (or BENCH_BARS, BENCH_SYMBOLS, BENCH_SERVER_URL)
 *
 * The bars (consecutive minutes, 5,000,000 ≈ 9.5 years of one symbol by default: a multi-year export) are written once into a fresh
 * server database with CandleStore.upsertPage. Both sides are timed from process start to exit, connection
 * included. Prints a table, then as its last line one JSON object for machines.
 */
import { BunRuntime } from "@effect/platform-bun"
import { Effect, Layer, Logger, LogLevel, Option, Redacted, Schema } from "effect"
import { mkdtempSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { AppConfig, DatabaseFlavourSetting } from "../src/config.ts"
import { CandleStore } from "../src/store/candle-store.ts"
import { DatabaseInfo, DatabaseLive } from "../src/store/database.ts"
import { Rollups } from "../src/store/rollups.ts"
import { benchDatabase } from "./bench-database.ts"
import { generateStreams, timedUpserts, toPages } from "./bench-data.ts"
import { option, positiveInt } from "./bench-options.ts"

const bars = positiveInt("--bars", "BENCH_BARS", 5_000_000)
const symbols = Math.min(5, positiveInt("--symbols", "BENCH_SYMBOLS", 1))
const serverUrl = option("--server-url", "BENCH_SERVER_URL", "postgres://postgres@127.0.0.1:5432/postgres")
const flavour = Schema.decodeUnknownSync(DatabaseFlavourSetting)(process.env.DATABASE_FLAVOUR ?? "auto")
const root = join(import.meta.dir, "..")

const progress = (line: string) => Effect.sync(() => console.error(line))

interface Run {
  readonly target: string
  readonly rows: number
  readonly seconds: number
  readonly peakRssMb: number
  readonly bytes: number
}

/** A child process under /usr/bin/time: wall seconds and peak RSS (its last stderr line), or the failure. */
const timed = (argv: ReadonlyArray<string>, env: Record<string, string | undefined>) =>
  Effect.promise(async () => {
    const child = Bun.spawn(["/usr/bin/time", "-f", "%e %M", ...argv], { cwd: root, env, stdout: "pipe", stderr: "pipe" })
    const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
    const [seconds, rssKb] = (stderr.trim().split("\n").at(-1) ?? "").split(" ").map(Number)
    if (code !== 0 || seconds === undefined || rssKb === undefined) throw new Error(`${argv.join(" ")} exited ${code}: ${stderr.trim().slice(-500)}`)
    return { stdout, seconds, peakRssMb: Math.round(rssKb / 1024) }
  })

const program = Effect.gen(function* () {
  const url = yield* benchDatabase(serverUrl, `candlekeep_bench_export_${process.pid}`)
  const config = AppConfig.make({ databaseUrl: Option.some(Redacted.make(url)), databaseFlavour: flavour })
  const store = Layer.merge(CandleStore.Default, Rollups.Default).pipe(Layer.provideMerge(DatabaseLive), Layer.provide(config))
  const streams = generateStreams(bars, 20210104, symbols)
  const from = Math.min(...streams.map((s) => s.candles[0]!.ts))
  const to = Math.max(...streams.map((s) => s.candles.at(-1)!.ts)) + 60_000
  const info = yield* Effect.gen(function* () {
    yield* progress(`writing ${bars.toLocaleString("en")} M1 bars of ${streams.map((s) => s.symbol).join(", ")} (${new Date(from).toISOString()} → ${new Date(to).toISOString()})`)
    yield* timedUpserts(toPages(streams, 50_000))
    return yield* DatabaseInfo
  }).pipe(Effect.provide(store))

  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), "candlekeep-bench-export-"))),
    (d) => Effect.sync(() => rmSync(d, { recursive: true, force: true }))
  )
  const env = { ...process.env, DATABASE_URL: url, DATABASE_FLAVOUR: flavour, LOG_LEVEL: "warning" }
  const runs: Array<Run> = []
  const symbolArgs = streams.flatMap((s) => ["--symbol", s.symbol])
  // What any command costs before its first row (Bun, the app's modules, connecting): the floor of every figure below.
  const idle = yield* timed([process.execPath, "src/main.ts", "export", ...symbolArgs, "--from", String(from - 86_400_000), "--to", String(from), "--format", "csv", "--out", join(dir, "empty.csv")], env)
  runs.push({ target: "export csv, empty range", rows: 0, seconds: idle.seconds, peakRssMb: idle.peakRssMb, bytes: 0 })
  for (const [format, fill] of [["csv", "none"], ["jsonl", "none"], ["parquet", "none"], ["csv", "prev"]] as const) {
    const out = join(dir, `export-${fill}.${format}`)
    yield* progress(`export ${format} --fill ${fill}`)
    const run = yield* timed(
      [process.execPath, "src/main.ts", "export", ...symbolArgs, "--from", String(from), "--to", String(to), "--format", format, "--fill", fill, "--out", out],
      env
    )
    const summary = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as { rows: number; bytes: number }
    if (fill === "none" && summary.rows !== bars) yield* progress(`WARNING: the ${format} export has ${summary.rows} rows, ${bars} were written`)
    runs.push({ target: `export ${format}${fill === "none" ? "" : ` --fill ${fill}`}`, rows: summary.rows, seconds: run.seconds, peakRssMb: run.peakRssMb, bytes: summary.bytes })
  }

  yield* progress("psql \\copy (SELECT …) TO of the same rows")
  const copyFile = join(dir, "copy.csv")
  const select = `SELECT symbol, ts, open, high, low, close, volume, trades, vwap FROM candles WHERE symbol IN (${streams.map((s) => `'${s.symbol}'`).join(", ")}) AND timeframe = 'M1' AND ts >= to_timestamp(${from / 1000}) AND ts < to_timestamp(${to / 1000}) ORDER BY symbol, ts`
  const copy = yield* timed(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", `\\copy (${select}) TO '${copyFile}' WITH (FORMAT csv, HEADER)`], process.env)
  runs.push({ target: "psql \\copy TO (csv)", rows: bars, seconds: copy.seconds, peakRssMb: copy.peakRssMb, bytes: statSync(copyFile).size })

  const rate = (r: Run | undefined) => (r ? Math.round(r.rows / r.seconds) : null)
  const byTarget = (target: string) => runs.find((r) => r.target === target)
  const cells = runs.map((r) => [r.target, r.rows.toLocaleString("en"), r.seconds.toFixed(2), r.rows === 0 ? "-" : rate(r)!.toLocaleString("en"), String(r.peakRssMb), (r.bytes / 1e6).toFixed(1)])
  const header = ["target", "rows", "seconds", "rows/s", "peak RSS MB", "MB"]
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)))
  const line = (row: ReadonlyArray<string>) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")
  const csvRate = rate(byTarget("export csv"))
  const copyRate = rate(byTarget("psql \\copy TO (csv)"))
  yield* Effect.sync(() => {
    console.log(`export: ${bars.toLocaleString("en")} M1 bars, ${streams.length} symbol(s), ${((to - from) / (365.25 * 86_400_000)).toFixed(1)} years, ${info.flavour} server`)
    console.log([line(header), widths.map((w) => "-".repeat(w)).join("  "), ...cells.map(line)].join("\n"))
    console.log(JSON.stringify({
      bench: "export",
      bars,
      symbols: streams.length,
      years: Math.round(((to - from) / (365.25 * 86_400_000)) * 10) / 10,
      flavour: info.flavour,
      csv_rows_per_s: csvRate,
      jsonl_rows_per_s: rate(byTarget("export jsonl")),
      parquet_rows_per_s: rate(byTarget("export parquet")),
      csv_fill_prev_rows_per_s: rate(byTarget("export csv --fill prev")),
      copy_rows_per_s: copyRate,
      csv_vs_copy: csvRate !== null && copyRate !== null ? Math.round((csvRate / copyRate) * 100) / 100 : null,
      // The same with the ~1 s every command spends before its first row (Bun, modules, connecting) taken off.
      csv_vs_copy_after_startup: csvRate !== null && copyRate !== null
        ? Math.round((bars / (byTarget("export csv")!.seconds - idle.seconds) / copyRate) * 100) / 100
        : null,
      startup_s: idle.seconds,
      startup_rss_mb: idle.peakRssMb,
      peak_rss_mb: Math.max(...runs.filter((r) => r.target.startsWith("export")).map((r) => r.peakRssMb)),
      peak_rss_mb_by_format: Object.fromEntries(runs.filter((r) => r.target.startsWith("export")).map((r) => [r.target.replace("export ", ""), r.peakRssMb]))
    }))
  })
}).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))

BunRuntime.runMain(program)
