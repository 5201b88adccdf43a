/**
 * Ingest benchmark: how fast CandleStore.upsertPage writes M1 bars into the embedded database and into
 * a PostgreSQL server, against `psql \copy` of the same bars into an identical table.
 *
 *   bun scripts/bench-ingest.ts [--rows N] [--page N] [--server-url URL]
 *   (or BENCH_ROWS, BENCH_PAGE, BENCH_SERVER_URL)
 *
 * Only the upserts are timed (not generation, not migrations, not the aggregates refresh, which is timed
 * apart). Prints a table, then as its last line one JSON object for machines.
 */
import { PgClient } from "@effect/sql-pg"
import { BunRuntime } from "@effect/platform-bun"
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Logger, LogLevel, Option, Redacted, Schema } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { AppConfig, DatabaseFlavourSetting } from "../src/config.ts"
import type { CandlePage } from "../src/domain/candle.ts"
import { Rollups } from "../src/store/rollups.ts"
import { CandleStore } from "../src/store/candle-store.ts"
import { DatabaseInfo, DatabaseLive, redactUrl } from "../src/store/database.ts"
import { benchDatabase } from "./bench-database.ts"
import { csvColumns, generateStreams, timedUpserts, toPages, writeCsv, type BenchStream } from "./bench-data.ts"
import { option, positiveInt } from "./bench-options.ts"

/** The server flavour to bench (DATABASE_FLAVOUR=timescale|plain); auto picks TimescaleDB where the server preloads it. */
const benchFlavour = Schema.decodeUnknownSync(DatabaseFlavourSetting)(process.env.DATABASE_FLAVOUR ?? "auto")

const rows = positiveInt("--rows", "BENCH_ROWS", 1_000_000)
const pageSize = positiveInt("--page", "BENCH_PAGE", 50_000)
const serverUrl = option("--server-url", "BENCH_SERVER_URL", "postgres://postgres@127.0.0.1:5432/postgres")

/** Progress goes to stderr: stdout is the table and the JSON line. */
const progress = (line: string) => Effect.sync(() => console.error(line))

interface Measurement {
  readonly target: string
  readonly rows: number
  readonly seconds: number
}

const rate = (m: Measurement | null): number | null => (m ? Math.round(m.rows / m.seconds) : null)

/** Upserts every page in order (timed), then pays the rollups they made owed (timed apart). */
const ingest = (target: string, pages: ReadonlyArray<CandlePage>) =>
  Effect.gen(function* () {
    const rollups = yield* Rollups
    yield* progress(`${target}: upserting ${rows.toLocaleString("en")} bars in ${pages.length} pages of ≤ ${pageSize.toLocaleString("en")}`)
    const { stored, seconds } = yield* timedUpserts(pages)
    if (stored !== rows) yield* progress(`${target}: WARNING stored ${stored} bars, expected ${rows}`)

    yield* progress(`${target}: refreshing the rollups`)
    const refreshStart = performance.now()
    yield* rollups.pay
    const refreshSeconds = (performance.now() - refreshStart) / 1000
    return {
      upsert: { target: `${target} upsertPage`, rows, seconds } satisfies Measurement,
      refresh: { target: `${target} Rollups.pay`, rows, seconds: refreshSeconds } satisfies Measurement
    }
  })

const storeOn = (config: Layer.Layer<AppConfig>) =>
  Layer.merge(CandleStore.Default, Rollups.Default).pipe(Layer.provideMerge(DatabaseLive), Layer.provide(config))

const embedded = (pages: ReadonlyArray<CandlePage>) =>
  Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), "candlekeep-bench-"))),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  ).pipe(
    Effect.flatMap((dataDir) => ingest("embedded", pages).pipe(Effect.provide(storeOn(AppConfig.make({ dataDir }))))),
    Effect.scoped
  )

/** A database of its own next to the one the URL names, dropped when the scope closes. */
const ownDatabase = (adminUrl: string) => benchDatabase(adminUrl, `candlekeep_bench_${process.pid}`)

/** A checkpoint before each timed part, so neither pays for the other's dirty pages. */
const checkpoint = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`CHECKPOINT`).pipe(Effect.ignore)

/** `psql \copy` of the same bars into `candles_copy (LIKE candles INCLUDING ALL)`; times the psql process. */
const copyBaseline = (url: string, streams: ReadonlyArray<BenchStream>, flavour: "timescale" | "plain") =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE candles_copy (LIKE candles INCLUDING ALL)`
    // On TimescaleDB the baseline goes into a hypertable chunked like candles: the same work minus candlekeep.
    if (flavour === "timescale") yield* sql`SELECT create_hypertable('candles_copy', by_range('ts', INTERVAL '7 days'))`
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "candlekeep-bench-csv-"))),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    )
    const csv = join(dir, "bars.csv")
    const columns = csvColumns.join(", ")
    yield* progress(`copy: writing ${rows.toLocaleString("en")} bars to ${csv}`)
    yield* Effect.sync(() => writeCsv(streams, csv))
    yield* checkpoint
    yield* progress("copy: psql \\copy into candles_copy")
    const command = `\\copy candles_copy (${columns}) FROM '${csv}' WITH (FORMAT csv)`
    const start = performance.now()
    const result = yield* Effect.promise(async () => {
      const child = Bun.spawn(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", command], { stdout: "pipe", stderr: "pipe" })
      const code = await child.exited
      return { code, stderr: await new Response(child.stderr).text() }
    })
    const seconds = (performance.now() - start) / 1000
    if (result.code !== 0) {
      yield* progress(`copy: psql exited ${result.code}: ${result.stderr.trim()}`)
      return null
    }
    // Both ways must have stored the same bars, or the comparison means nothing.
    const [diff] = yield* sql.unsafe<{ copy: number; differ: number }>(
      `SELECT (SELECT count(*)::int FROM candles_copy) AS copy,
              (SELECT count(*)::int FROM (
                 (SELECT ${columns} FROM candles EXCEPT ALL SELECT ${columns} FROM candles_copy)
                 UNION ALL
                 (SELECT ${columns} FROM candles_copy EXCEPT ALL SELECT ${columns} FROM candles)) d) AS differ`
    )
    if (diff?.copy !== rows || diff.differ !== 0) {
      yield* progress(`copy: WARNING candles_copy has ${diff?.copy} rows (expected ${rows}); ${diff?.differ} rows differ from what upsertPage stored`)
    }
    return { target: "server psql \\copy (csv)", rows, seconds } satisfies Measurement
  }).pipe(Effect.scoped)

const server = (streams: ReadonlyArray<BenchStream>, pages: ReadonlyArray<CandlePage>) =>
  Effect.gen(function* () {
    const url = yield* ownDatabase(serverUrl)
    yield* progress(`server: bench database ${redactUrl(Redacted.make(url))}`)
    const store = storeOn(AppConfig.make({ databaseUrl: Option.some(Redacted.make(url)), databaseFlavour: benchFlavour }))
    const upserted = yield* Effect.zipRight(checkpoint, ingest("server", pages)).pipe(Effect.provide(store))
    const flavour = yield* Effect.provide(DatabaseInfo, store).pipe(Effect.map((info) => info.flavour))
    const copy = yield* copyBaseline(url, streams, flavour).pipe(
      Effect.provide(PgClient.layer({ url: Redacted.make(url), applicationName: "candlekeep-bench" }))
    )
    return { ...upserted, copy, flavour }
  }).pipe(Effect.scoped)

const describeCause = (cause: unknown): string =>
  cause instanceof AggregateError ? cause.errors.map(describeCause).join("; ") : cause instanceof Error ? cause.message : String(cause)

const serverReachable = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(
  Effect.provide(PgClient.layer({ url: Redacted.make(serverUrl), connectTimeout: "5 seconds" })),
  Effect.as(true),
  Effect.catchAll((error) =>
    Effect.as(
      Effect.sync(() =>
        console.log(
          `server ${redactUrl(Redacted.make(serverUrl))} unreachable (${error.message}: ${describeCause(error.cause)}): skipping the server and copy benchmarks`
        )
      ),
      false
    )
  )
)

const table = (measurements: ReadonlyArray<Measurement>): string => {
  const cells = measurements.map((m) => [m.target, m.rows.toLocaleString("en"), m.seconds.toFixed(2), rate(m)!.toLocaleString("en")])
  const header = ["target", "rows", "seconds", "rows/s"]
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i]!.length)))
  const line = (row: ReadonlyArray<string>) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ")
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...cells.map(line)].join("\n")
}

const program = Effect.gen(function* () {
  yield* progress(`generating ${rows.toLocaleString("en")} M1 bars`)
  const streams = generateStreams(rows)
  const pages = toPages(streams, pageSize)

  const local = yield* embedded(pages)
  const remote = (yield* serverReachable) ? yield* server(streams, pages) : null

  const upserts = [local.upsert, remote?.upsert, remote?.copy].filter((m): m is Measurement => m != null)
  const refreshes = [local.refresh, remote?.refresh].filter((m): m is Measurement => m != null)
  const serverRate = rate(remote?.upsert ?? null)
  const copyRate = rate(remote?.copy ?? null)
  yield* Effect.sync(() => {
    console.log(`ingest: ${rows.toLocaleString("en")} M1 bars, ${streams.length} symbols, pages of ${pageSize.toLocaleString("en")}`)
    console.log(table(upserts))
    console.log("")
    console.log(table(refreshes))
    console.log(
      JSON.stringify({
        bench: "ingest",
        rows,
        embedded_rows_per_s: rate(local.upsert),
        server_rows_per_s: serverRate,
        server_flavour: remote?.flavour ?? null,
        copy_rows_per_s: copyRate,
        server_vs_copy: serverRate !== null && copyRate !== null ? Math.round((serverRate / copyRate) * 100) / 100 : null
      })
    )
  })
}).pipe(Logger.withMinimumLogLevel(LogLevel.Warning))

BunRuntime.runMain(program)
