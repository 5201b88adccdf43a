import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import manifest from "../package.json" with { type: "json" }
import { migrations } from "../src/store/migrations.ts"
import { startMassiveFake } from "./fakes/massive.ts"
import { aggregate, utcBucket } from "./support/aggregate.ts"
import { walk } from "./support/bars.ts"
import { hasSharedData, loadBinanceBtc, noSharedDataReason, sharedDataDir } from "./support/shared-data.ts"

/**
 * The single binary as a deployment gets it: built by `npm run build`, copied alone into an empty directory and run
 * there with an empty environment apart from its settings — no node_modules, no Bun or Node on PATH, no .env.
 */
const root = join(import.meta.dir, "..")
const dirs: Array<string> = []
const emptyDir = (label: string) => {
  const dir = mkdtempSync(join(tmpdir(), `candlekeep-binary-${label}-`))
  dirs.push(dir)
  return dir
}
const children: Array<Bun.Subprocess> = []
afterAll(() => {
  for (const child of children) child.kill("SIGKILL")
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

let binary = ""
beforeAll(() => {
  const build = Bun.spawnSync([process.execPath, "scripts/build.ts"], { cwd: root, stdout: "pipe", stderr: "pipe" })
  if (!build.success) throw new Error(`npm run build failed:\n${build.stdout}\n${build.stderr}`)
  console.log(`build: ${build.stdout.toString().trim().split("\n").at(-1)}`)
  const dir = emptyDir("run")
  binary = join(dir, "candlekeep")
  copyFileSync(join(root, "dist", "candlekeep"), binary)
  expect(readdirSync(dir)).toEqual(["candlekeep"])
}, 120_000)

const freePort = async () => {
  const probe = Bun.serve({ port: 0, fetch: () => new Response() })
  const port = probe.port
  await probe.stop()
  return port
}

/** Runs the binary to completion in its directory with only `settings` in the environment. */
const run = (args: ReadonlyArray<string>, settings: Record<string, string>) => {
  const result = Bun.spawnSync([binary, ...args], { cwd: join(binary, ".."), env: settings, stdout: "pipe", stderr: "pipe" })
  return { code: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() }
}
/** The same, without blocking this process's event loop (which serves the Massive fake the binary asks). */
const runAsync = async (args: ReadonlyArray<string>, settings: Record<string, string>) => {
  const child = Bun.spawn([binary, ...args], { cwd: join(binary, ".."), env: settings, stdout: "pipe", stderr: "pipe" })
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
  return { code, stdout, stderr }
}
const lastLine = (stdout: string) => JSON.parse(stdout.trim().split("\n").at(-1)!)

/** Polls until a condition holds, within a bounded deadline. */
const waitFor = async (label: string, check: () => boolean | Promise<boolean>, limitMillis: number) => {
  const started = Date.now()
  while (Date.now() - started < limitMillis) {
    if (await check()) return
    await Bun.sleep(100)
  }
  throw new Error(`${label}: not within ${limitMillis} ms`)
}

describe("the single binary, alone in an empty directory", () => {
  test("--help lists every command, --version names the release and the build commit, healthcheck fails with nothing to ask", async () => {
    const help = run(["--help"], {})
    expect(help.code).toBe(0)
    for (const command of ["serve", "migrate", "backfill", "sync", "gaps", "import", "broker", "verify", "healthcheck"]) expect(help.stdout).toContain(command)

    const version = run(["--version"], {})
    expect(version.code).toBe(0)
    expect(version.stdout.trim()).toMatch(new RegExp(`^${manifest.version.replaceAll(".", "\\.")} \\(commit [0-9a-f]{7,}(-dirty)?\\)$`))

    const port = await freePort()
    const health = run(["healthcheck", "--timeout", "2"], { PORT: String(port) })
    expect(health.code).toBe(1)
    expect(lastLine(health.stdout)).toMatchObject({ command: "healthcheck", status: "failed", url: `http://127.0.0.1:${port}/api/data/ready` })
    expect(health.stderr).not.toContain("    at ")
  }, 60_000)

  test.skipIf(!hasSharedData)("imports a real file, serves the same M1 bars and their H1 rollup over HTTP, and stops within 10 s of SIGTERM", async () => {
    const settings = { DATA_DIR: "data", LOG_LEVEL: "info", PORT: String(await freePort()), RUNNER_PORT: String(await freePort()) }
    const file = join(sharedDataDir, "binanceus_BTCUSD_1m_UTC_2023-03-01_to_2023-03-21.csv.gz")
    const bars = loadBinanceBtc()

    const imported = run(["import", "--file", file, "--format", "binance", "--symbol", "BTCUSD"], settings)
    expect(imported.code).toBe(0)
    expect(lastLine(imported.stdout)).toMatchObject({ command: "import", status: "ok", bars: bars.length, stored: bars.length, rejected: 0, bad_lines: 0 })

    const serve = Bun.spawn([binary, "serve"], { cwd: join(binary, ".."), env: settings, stdout: "pipe", stderr: "pipe" })
    children.push(serve)
    const stderr = new Response(serve.stderr).text()
    const stdout = new Response(serve.stdout).text()
    // The binary's own healthcheck is the readiness probe a container runs.
    await waitFor("healthcheck answers ready", () => run(["healthcheck", "--timeout", "2"], settings).code === 0, 60_000)

    const base = `http://127.0.0.1:${settings.PORT}/api/data/candles?symbol=BTCUSD`
    const range = `start=${new Date(bars[0]!.ts).toISOString()}&end=${new Date(bars.at(-1)!.ts + 60_000).toISOString()}&limit=50000`
    type Page = { count: number; next: number | null; candles: Array<{ ts: string; open: number; high: number; low: number; close: number; volume: number }> }
    const asServed = (candles: ReadonlyArray<{ ts: number; open: number; high: number; low: number; close: number; volume: number }>) =>
      candles.map((c) => ({ ts: new Date(c.ts).toISOString(), open: c.open, high: c.high, low: c.low, close: c.close, volume: c.volume }))

    const m1 = (await (await fetch(`${base}&timeframe=M1&${range}`)).json()) as Page
    expect(m1.count).toBe(bars.length)
    expect(m1.next).toBeNull()
    expect(m1.candles).toEqual(asServed(bars))

    const h1 = (await (await fetch(`${base}&timeframe=H1&${range}`)).json()) as Page
    const hourly = aggregate(bars, utcBucket(3_600_000))
    expect(h1.count).toBe(hourly.length)
    // Volumes are sums of floats: equal to the last bits only by luck of the order, so compared to 9 digits.
    expect(h1.candles.map(({ volume: _, ...rest }) => rest)).toEqual(asServed(hourly).map(({ volume: _, ...rest }) => rest))
    h1.candles.forEach((bar, i) => expect(bar.volume).toBeCloseTo(hourly[i]!.volume, 6))

    // The dashboard travels inside the binary: its page, and the script bundled at build time (no node_modules here).
    const origin = `http://127.0.0.1:${settings.PORT}`
    expect((await fetch(`${origin}/`)).headers.get("content-type")).toStartWith("text/html")
    const script = await fetch(`${origin}/dashboard/app.js`)
    expect(script.status).toBe(200)
    expect((await script.text()).length).toBeGreaterThan(100_000)

    const signalled = Date.now()
    serve.kill("SIGTERM")
    const code = await serve.exited
    const tookMillis = Date.now() - signalled
    console.log(`binary serve: SIGTERM → exit ${code} after ${tookMillis} ms`)
    expect(code).toBe(0)
    expect(tookMillis).toBeLessThan(10_000)
    expect(lastLine(await stdout)).toMatchObject({ command: "serve", status: "stopped" })
    const log = await stderr
    expect(log).toContain(`migrations at ${migrations.at(-1)!.name}`)
    expect(log).not.toContain("    at ")
    // Nothing but the binary and its database in the directory: the extension tarball went to a temp dir and was removed.
    expect(readdirSync(join(binary, "..")).sort()).toEqual(["candlekeep", "data"])
  }, 120_000)

  test("backfill, sync, migrate, gaps, verify and broker run from the binary, each ending with its JSON line", async () => {
    const from = Date.parse("2021-03-01T00:00:00Z")
    const bars = walk("EURUSD", from, 3 * 1440)
    const fake = startMassiveFake({ apiKeys: ["binary-key"], bars: new Map([["C:EURUSD", bars]]) })
    try {
      const settings = { DATA_DIR: "commands", MASSIVE_API_KEY: "binary-key", MASSIVE_BASE_URL: fake.baseUrl, MASSIVE_PLAN: "paid" }
      const to = new Date(bars.at(-1)!.ts + 60_000).toISOString()
      const backfill = await runAsync(["backfill", "--symbol", "EURUSD", "--from", "2021-03-01", "--to", to], settings)
      expect(backfill.code).toBe(0)
      expect(lastLine(backfill.stdout)).toMatchObject({ command: "backfill", status: "ok", fetched: bars.length, stored: bars.length, rejected: 0 })
      expect(lastLine((await runAsync(["migrate"], settings)).stdout)).toMatchObject({ command: "migrate", status: "ok", database: "embedded", flavour: "timescale", level: migrations.at(-1)!.name })
      const verify = await runAsync(["verify", "--symbol", "EURUSD", "--from", "2021-03-01", "--to", to], settings)
      expect(lastLine(verify.stdout)).toMatchObject({ command: "verify", status: "ok", wrong: 0 })
      const gaps = await runAsync(["gaps", "detect", "--symbol", "EURUSD", "--from", "2021-03-01", "--to", to], settings)
      expect(lastLine(gaps.stdout)).toMatchObject({ command: "gaps detect", status: "ok", gaps: 0 })
      // A sync asks from the watermark to now: the fake has nothing newer, so it stores nothing and fails nothing.
      const sync = await runAsync(["sync", "--symbol", "EURUSD"], settings)
      expect(sync.code).toBe(0)
      expect(lastLine(sync.stdout)).toMatchObject({ command: "sync", status: "ok", stored: 0 })
      const broker = await runAsync(["broker", "compare", "--symbol", "EURUSD"], settings)
      expect(broker.code).toBe(1)
      expect(lastLine(broker.stdout)).toMatchObject({ command: "broker compare", status: "failed" })
      expect(lastLine(broker.stdout).error).toContain("broker features off")
    } finally {
      await fake.stop()
    }
  }, 120_000)

  test("SIGTERM during serve's backfill: exit 0 within 10 s with the stop line, the page in flight committed or rolled back, and a resumed backfill leaves no hole", async () => {
    const from = Date.parse("2021-03-01T00:00:00Z")
    const bars = walk("EURUSD", from, 20 * 1440)
    // Small, slow pages: the backfill is still running when the signal comes.
    const fake = startMassiveFake({ apiKeys: ["binary-key"], bars: new Map([["C:EURUSD", bars]]), pageSize: 2_000, slowMillis: 200, faults: () => "slow" })
    try {
      const to = new Date(bars.at(-1)!.ts + 60_000).toISOString()
      const settings = {
        DATA_DIR: "stopped",
        PORT: String(await freePort()),
        RUNNER_PORT: String(await freePort()),
        MASSIVE_API_KEY: "binary-key",
        MASSIVE_BASE_URL: fake.baseUrl,
        MASSIVE_PLAN: "paid",
        STREAMS: "EURUSD:M1",
        BACKFILL_FROM: new Date(from).toISOString()
      }
      const serve = Bun.spawn([binary, "serve"], { cwd: join(binary, ".."), env: settings, stdout: "pipe", stderr: "pipe" })
      children.push(serve)
      const stdout = new Response(serve.stdout).text()
      void new Response(serve.stderr).text()
      await waitFor("the backfill under way (a fourth page asked for)", () => fake.requests.length >= 4, 60_000)
      const signalled = Date.now()
      serve.kill("SIGTERM")
      const code = await serve.exited
      const tookMillis = Date.now() - signalled
      console.log(`binary serve mid-backfill: SIGTERM → exit ${code} after ${tookMillis} ms`)
      expect(code).toBe(0)
      expect(tookMillis).toBeLessThan(10_000)
      expect(lastLine(await stdout)).toMatchObject({ command: "serve", status: "stopped" })

      // Resuming from the watermark finds nothing stored past it (no bar "unchanged") and fetches only the rest.
      const resumed = await runAsync(["backfill", "--symbol", "EURUSD", "--to", to], { DATA_DIR: "stopped", MASSIVE_API_KEY: "binary-key", MASSIVE_BASE_URL: fake.baseUrl, MASSIVE_PLAN: "paid", BACKFILL_FROM: settings.BACKFILL_FROM })
      const report = lastLine(resumed.stdout)
      expect(report).toMatchObject({ command: "backfill", status: "ok", unchanged: 0, rejected: 0 })
      const watermark = Date.parse(report.from)
      expect(watermark).toBeGreaterThan(from)
      expect(report.stored).toBe(bars.filter((b) => b.ts >= watermark).length)
      // And nothing is missing behind it.
      const gaps = await runAsync(["gaps", "detect", "--symbol", "EURUSD", "--from", "2021-03-01", "--to", to], { DATA_DIR: "stopped" })
      expect(lastLine(gaps.stdout)).toMatchObject({ command: "gaps detect", status: "ok", gaps: 0 })
    } finally {
      await fake.stop()
    }
  }, 120_000)

  if (!hasSharedData) console.log(`the binary's import-and-serve test is ${noSharedDataReason}`)
})
