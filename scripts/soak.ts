/**
 * The soak: the whole service, left running through the faults real life brings, must end with exactly the
 * vendor's bars.
 *
 *   bun scripts/soak.ts [--minutes 5] [--instances 1|2] [--database embedded|plain|timescale]
 *                       [--server-url postgres://postgres@127.0.0.1:5432/postgres]
 *                       [--restart-command "pg_ctlcluster 15 main restart"] [--seed N]
 *
 * A stand-in vendor (test/fakes/massive.ts, in this process) serves real bars from ../shared/data shifted so that
 * "now" falls inside them, a live feed that closes a bar every minute, for EURUSD, XAUUSD, GBPUSD and USDJPY M1
 * plus BTCUSD H1, with all at once: 429s with Retry-After, 502 HTML pages, truncated JSON, answers slower than
 * the client's timeout, GBPUSD published 30 s late, USDJPY on a 15-minute delayed plan, and the whole vendor cut
 * off for a minute. `bun src/main.ts serve` runs as one or two instances on a fresh database, SIGKILLed at random
 * moments and started again, one of two frozen with SIGSTOP for two minutes, the PostgreSQL server restarted once
 * (embedded: a SIGKILL in the middle of a page instead), HTTP sync and gap-fill jobs sent. Then the faults stop,
 * the streams settle, the instances stop, and every stored M1 and H1 bar and every rollup bucket is compared with
 * the vendor's source (rollups with an aggregation of their own). A table, then one JSON line.
 *
 * --server-url is the server to create the soak's database on (it must be one the soak may restart);
 * --restart-command restarts that server. Ownership (max_owners_at_once, longest_unowned_s) is read from each
 * instance's "runs here" / "stops here" log lines, a frozen instance counting as running nothing.
 */
import { SqlClient } from "@effect/sql"
import { Effect, ManagedRuntime, Option, Redacted } from "effect"
import { readFileSync, rmSync, mkdtempSync, existsSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { gunzipSync } from "node:zlib"
import type { Subprocess } from "bun"
import { appLayer } from "../src/app-layer.ts"
import { AppConfig } from "../src/config.ts"
import type { Candle } from "../src/domain/candle.ts"
import { histdataToUtc } from "../src/domain/source-clock.ts"
import { Rollups } from "../src/store/rollups.ts"
import { startMassiveFake, type MassiveFake, type MassiveFakeOptions, type MassiveFault } from "../test/fakes/massive.ts"

const second = 1000
const minute = 60_000
const hour = 3_600_000
const day = 86_400_000
const root = join(import.meta.dir, "..")

export type SoakDatabase = "embedded" | "plain" | "timescale"
export interface SoakOptions {
  readonly minutes: number
  readonly instances: 1 | 2
  readonly database: SoakDatabase
  readonly serverUrl: string
  readonly restartCommand: string
  readonly dataDir: string
  readonly seed: number
  readonly say: (line: string) => void
}

// ─── the vendor's bars ───────────────────────────────────────────────────────────────────────────────────────

interface SourceStream {
  readonly symbol: string
  readonly ticker: string
  readonly timeframe: "M1" | "H1"
  readonly file: string
  /** A Wednesday noon (UTC) of the file: it is placed at "now". */
  readonly anchor: number
  readonly parse: (line: string) => Candle | null
  readonly digits: number
  /** Real bars of another pair, rescaled to this one's price level (the shared data has no GBPUSD or USDJPY file). */
  readonly scale?: number
}

const bar = (ts: number, o: string, h: string, l: string, c: string, v: string): Candle | null => {
  const [open, high, low, close, volume] = [o, h, l, c, v].map(Number) as [number, number, number, number, number]
  if (![ts, open, high, low, close, volume].every(Number.isFinite)) return null
  return { ts, open, high, low, close, volume, vwap: null, trades: null }
}
/** `20210103 170000;1.22396;1.22402;1.22396;1.22396;0`, HistData's clock. */
const histdata = (line: string): Candle | null => {
  const m = /^(\d{4})(\d{2})(\d{2}) (\d{2})(\d{2})(\d{2});([^;]+);([^;]+);([^;]+);([^;]+);([^;]+)$/.exec(line.trim())
  if (m === null) return null
  const fileMs = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!)
  return bar(histdataToUtc(fileMs), m[7]!, m[8]!, m[9]!, m[10]!, m[11]!)
}
/** `01.10.2018 00:00:00.000,1.15793,…` (UTC); its flat zero-volume fillers are no vendor's bars. */
const dukascopy = (line: string): Candle | null => {
  const m = /^(\d{2})\.(\d{2})\.(\d{4}) (\d{2}):(\d{2}):(\d{2})\.\d{3},([^,]+),([^,]+),([^,]+),([^,]+),([^,]+)$/.exec(line.trim())
  if (m === null) return null
  const candle = bar(Date.UTC(+m[3]!, +m[2]! - 1, +m[1]!, +m[4]!, +m[5]!, +m[6]!), m[7]!, m[8]!, m[9]!, m[10]!, m[11]!)
  return candle === null || (candle.volume === 0 && candle.open === candle.high && candle.high === candle.low && candle.low === candle.close) ? null : candle
}
/** `2023-03-01 00:00:00+00:00,23141.57,…` (UTC). */
const binance = (line: string): Candle | null => {
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})\+00:00,([^,]+),([^,]+),([^,]+),([^,]+),([^,]+)$/.exec(line.trim())
  return m === null ? null : bar(Date.parse(`${m[1]}T${m[2]}Z`), m[3]!, m[4]!, m[5]!, m[6]!, m[7]!)
}

const sources: ReadonlyArray<SourceStream> = [
  { symbol: "EURUSD", ticker: "C:EURUSD", timeframe: "M1", file: "histdata_EURUSD_M1_2021-01-03_to_2021-05-21.csv.gz", anchor: Date.UTC(2021, 0, 13, 12), parse: histdata, digits: 5 },
  { symbol: "XAUUSD", ticker: "C:XAUUSD", timeframe: "M1", file: "histdata_XAUUSD_M1_2021-01-03_to_2021-05-21.csv.gz", anchor: Date.UTC(2021, 1, 10, 12), parse: histdata, digits: 3 },
  { symbol: "GBPUSD", ticker: "C:GBPUSD", timeframe: "M1", file: "dukascopy_EURUSD_M1_BID_GMT_2018-10_weekends-filled.csv.gz", anchor: Date.UTC(2018, 9, 17, 12), parse: dukascopy, digits: 5, scale: 1.1 },
  { symbol: "USDJPY", ticker: "C:USDJPY", timeframe: "M1", file: "histdata_EURUSD_M1_2021-01-03_to_2021-05-21.csv.gz", anchor: Date.UTC(2021, 2, 17, 12), parse: histdata, digits: 3, scale: 100 },
  { symbol: "BTCUSD", ticker: "X:BTCUSD", timeframe: "H1", file: "binanceus_BTCUSD_1m_UTC_2023-03-01_to_2023-03-21.csv.gz", anchor: Date.UTC(2023, 2, 8, 12), parse: binance, digits: 2 }
]
/** GBPUSD's bars appear 30 s after their minute closes; USDJPY's plan is 15 minutes delayed. */
const lateSeconds: Record<string, number> = { "C:GBPUSD": 30 }
const delayedMinutes: Record<string, number> = { "C:USDJPY": 15 }
const streamName = (s: SourceStream) => `${s.symbol}:${s.timeframe}`

/** The M1 bars of `source` in [from, to) after shifting its anchor to `now`, prices at the symbol's digits. */
const loadBars = (source: SourceStream, dataDir: string, now: number, from: number, to: number): Array<Candle> => {
  const shift = now - source.anchor
  const round = (x: number) => Number((x * (source.scale ?? 1)).toFixed(source.digits))
  const out: Array<Candle> = []
  for (const line of gunzipSync(readFileSync(join(dataDir, source.file))).toString("utf8").split("\n")) {
    const candle = source.parse(line)
    if (candle === null) continue
    const ts = candle.ts + shift
    if (ts < from || ts >= to) continue
    out.push({ ...candle, ts, open: round(candle.open), high: round(candle.high), low: round(candle.low), close: round(candle.close) })
  }
  return out.sort((a, b) => a.ts - b.ts)
}

/** OHLCV buckets of `span` from sorted M1 bars, with how many bars each holds: the soak's own aggregation. */
const aggregate = (bars: ReadonlyArray<Candle>, span: number) => {
  const out = new Map<number, { open: number; high: number; low: number; close: number; volume: number; bars: number }>()
  for (const b of bars) {
    const ts = b.ts - (b.ts % span)
    const known = out.get(ts)
    if (known === undefined) out.set(ts, { open: b.open, high: b.high, low: b.low, close: b.close, volume: b.volume, bars: 1 })
    else out.set(ts, { open: known.open, high: Math.max(known.high, b.high), low: Math.min(known.low, b.low), close: b.close, volume: known.volume + b.volume, bars: known.bars + 1 })
  }
  return out
}

// ─── a seeded random source, so a run can be repeated ────────────────────────────────────────────────────────

const mulberry32 = (seed: number) => () => {
  seed |= 0
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

// ─── the instances ───────────────────────────────────────────────────────────────────────────────────────────

interface Instance {
  readonly name: string
  readonly port: number
  readonly runnerPort: number
  process: Subprocess<"ignore", "ignore", "pipe"> | null
  exited: Promise<number> | null
  incarnation: number
  frozenSince: number | null
  /** Set when the soak itself ends the process (a kill, the final stop); any other exit is a crash. */
  expectExit: boolean
  /** Streams whose loop runs here, since when. */
  readonly running: Map<string, number>
  readonly tail: Array<string>
}

interface Tenure {
  readonly stream: string
  readonly instance: string
  readonly from: number
  readonly to: number
}

const usedPorts = new Set<number>()
/** A free loopback port, never one this soak handed out already. */
const freePort = (): number => {
  for (;;) {
    const probe = Bun.serve({ port: 0, fetch: () => new Response() })
    const port = probe.port ?? 0
    probe.stop(true)
    if (usedPorts.has(port)) continue
    usedPorts.add(port)
    return port
  }
}

const rssMb = (pid: number): number => {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8")
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
    return kb / 1024
  } catch {
    return 0
  }
}

export const runSoak = async (options: SoakOptions) => {
  const { say } = options
  const random = mulberry32(options.seed)
  const durationMs = Math.round(options.minutes * minute)
  if (options.database === "embedded" && options.instances !== 1) throw new Error("--instances 2 needs a server database: the embedded one belongs to one process")
  for (const source of sources) {
    if (!existsSync(join(options.dataDir, source.file))) throw new Error(`the vendor's bars are missing: ${join(options.dataDir, source.file)}`)
  }

  // The data: a few days of history before now, and the live part that the feed publishes minute by minute.
  const startedAt = Date.now()
  const now = startedAt - (startedAt % minute)
  const backfillFrom = now - (now % hour) - 3 * day
  const servedTo = now + durationMs + 2 * hour
  const bars = new Map(sources.map((s) => [s.ticker, loadBars(s, options.dataDir, now, backfillFrom, servedTo)]))
  say(`vendor: ${sources.map((s) => `${streamName(s)} ${bars.get(s.ticker)!.length} M1 bars`).join(", ")}; history from ${new Date(backfillFrom).toISOString()}`)

  // The vendor, with its faults.
  let faultsOn = true
  const faultCounts: Record<string, number> = {}
  const countFault = (name: string) => (faultCounts[name] = (faultCounts[name] ?? 0) + 1)
  const requestHooks: Array<(url: URL) => void> = []
  const timeoutSeconds = 5
  const vendorOptions = (port: number | undefined): MassiveFakeOptions => ({
    bars,
    apiKeys: ["soak-key"],
    publishAfterSeconds: lateSeconds,
    delayedTickers: delayedMinutes,
    retryAfterSeconds: 2,
    slowMillis: (timeoutSeconds + 3) * second,
    ...(port === undefined ? {} : { port }),
    faults: (_index, url) => {
      for (const hook of requestHooks) hook(url)
      if (!faultsOn) return null
      const r = random()
      const fault: MassiveFault | null =
        r < 0.08 ? "429-retry-after" : r < 0.14 ? "502-html" : r < 0.2 ? "truncated-json" : r < 0.25 ? "slow" : null
      if (fault !== null) countFault(fault)
      return fault
    }
  })
  let vendor: MassiveFake = startMassiveFake(vendorOptions(undefined))
  const vendorPort = Number(new URL(vendor.baseUrl).port)

  // The database.
  const databaseName = `soak_${startedAt}`
  const serverDatabaseUrl = (() => {
    const url = new URL(options.serverUrl)
    url.pathname = `/${databaseName}`
    return url.toString()
  })()
  const embeddedDir = options.database === "embedded" ? mkdtempSync(join(tmpdir(), "candlekeep-soak-")) : ""
  const adminSql = options.database === "embedded" ? null : new Bun.SQL(options.serverUrl, { max: 1 })
  if (adminSql !== null) await adminSql.unsafe(`CREATE DATABASE ${databaseName}`)

  const streamsSetting = sources.map(streamName).join(",")
  const makeInstance = (name: string): Instance => ({
    name,
    port: freePort(),
    runnerPort: freePort(),
    process: null,
    exited: null,
    incarnation: 0,
    frozenSince: null,
    expectExit: false,
    running: new Map(),
    tail: []
  })
  const instances: Array<Instance> = Array.from({ length: options.instances }, (_, i) => makeInstance(String.fromCharCode(97 + i)))
  const tenures: Array<Tenure> = []
  const frozenSpans: Array<{ instance: string; from: number; to: number }> = []
  const stalledExits: Array<string> = []
  const crashes: Array<string> = []
  let stopping = false
  let peakRss = 0

  const closeTenure = (inst: Instance, stream: string, at: number) => {
    const from = inst.running.get(stream)
    if (from === undefined) return
    inst.running.delete(stream)
    tenures.push({ stream, instance: inst.name, from, to: at })
  }

  const readLog = async (inst: Instance, proc: Subprocess<"ignore", "ignore", "pipe">) => {
    const decoder = new TextDecoder()
    let buffered = ""
    for await (const chunk of proc.stderr) {
      buffered += decoder.decode(chunk, { stream: true })
      const lines = buffered.split("\n")
      buffered = lines.pop() ?? ""
      for (const line of lines) {
        inst.tail.push(line)
        if (inst.tail.length > 40) inst.tail.shift()
        const at = Date.now()
        const loop = /message="?([A-Z0-9]+:[A-Z0-9]+) (runs|stops) here/.exec(line)
        if (loop !== null) {
          const stream = loop[1]!
          if (loop[2] === "runs") inst.running.set(stream, at)
          else closeTenure(inst, stream, at)
        }
        if (line.includes("stood still")) stalledExits.push(`${inst.name}: ${line.slice(0, 160)}`)
      }
    }
  }

  const start = (inst: Instance) => {
    inst.incarnation += 1
    const proc = Bun.spawn([process.execPath, "src/main.ts", "serve"], {
      cwd: root,
      env: {
        ...process.env,
        ...(options.database === "embedded"
          ? { DATA_DIR: embeddedDir, DATABASE_URL: "" }
          : { DATABASE_URL: serverDatabaseUrl, DATABASE_FLAVOUR: options.database }),
        LOG_LEVEL: "info",
        PORT: String(inst.port),
        RUNNER_PORT: String(inst.runnerPort),
        STREAMS: streamsSetting,
        BACKFILL_FROM: new Date(backfillFrom).toISOString(),
        MASSIVE_API_KEY: "soak-key",
        MASSIVE_BASE_URL: `http://127.0.0.1:${vendorPort}`,
        MASSIVE_PLAN: "paid",
        MASSIVE_TIMEOUT_SECONDS: String(timeoutSeconds),
        MASSIVE_SETTLE_SECONDS: "40",
        METAAPI_TOKEN: "",
        API_TOKEN: "",
        API_READ_TOKEN: ""
      },
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe"
    })
    inst.process = proc
    inst.frozenSince = null
    inst.expectExit = false
    const logDone = readLog(inst, proc)
    inst.exited = proc.exited.then(async (code) => {
      const at = Date.now()
      await logDone.catch(() => undefined)
      for (const stream of [...inst.running.keys()]) closeTenure(inst, stream, at)
      if (inst.process === proc) inst.process = null
      if (!inst.expectExit && !stopping) {
        // Not the soak's doing: reported with its last words, and started again as a process supervisor would.
        crashes.push(`${inst.name} exited ${code} at ${elapsed()}: ${inst.tail.slice(-3).join(" | ").slice(0, 600)}`)
        say(`${elapsed()} ${inst.name} exited ${code} by itself; its last lines:\n${inst.tail.slice(-8).join("\n")}`)
        setTimeout(() => {
          if (inst.process === null && !stopping) start(inst)
        }, 2_000)
      }
      return code
    })
  }

  const kill = async (inst: Instance, why: string) => {
    const proc = inst.process
    if (proc === null) return false
    say(`${elapsed()} SIGKILL ${inst.name} (${why})`)
    inst.expectExit = true
    proc.kill("SIGKILL")
    if (inst.frozenSince !== null) {
      frozenSpans.push({ instance: inst.name, from: inst.frozenSince, to: Date.now() })
      inst.frozenSince = null
    }
    await inst.exited
    return true
  }

  const elapsed = () => `[${((Date.now() - startedAt) / 1000).toFixed(0).padStart(4)} s]`

  /** Sends a POST to the first live instance that answers; counts a 202 as accepted. */
  const jobs = { sent: 0, accepted: 0 }
  const post = async (path: string, body: unknown) => {
    jobs.sent += 1
    for (const inst of instances.filter((i) => i.process !== null && i.frozenSince === null)) {
      try {
        const response = await fetch(`http://127.0.0.1:${inst.port}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(5_000)
        })
        if (response.status === 202) {
          jobs.accepted += 1
          return
        }
      } catch {
        // The next instance, if any.
      }
    }
  }

  /** The instance running most streams now (the one worth killing or freezing). */
  const busiest = (candidates: ReadonlyArray<Instance>) =>
    [...candidates].sort((x, y) => y.running.size - x.running.size || x.name.localeCompare(y.name))[0]

  const kills = { count: 0, midPage: 0 }
  let dbRestarts = 0
  let vendorCuts = 0

  // ─── the run ───────────────────────────────────────────────────────────────────────────────────────────────
  const rssTimer = setInterval(() => {
    let total = 0
    for (const inst of instances) if (inst.process !== null) total = Math.max(total, rssMb(inst.process.pid))
    peakRss = Math.max(peakRss, total)
  }, 1_000)

  const at = (fraction: number) => startedAt + Math.round(durationMs * fraction + (random() - 0.5) * 0.04 * durationMs)
  const sleepUntil = async (time: number) => {
    const wait = time - Date.now()
    if (wait > 0) await Bun.sleep(wait)
  }
  const events: Array<{ at: number; run: () => Promise<void> }> = []
  const killAndRestart = async (why: string) => {
    const live = instances.filter((i) => i.process !== null && i.frozenSince === null)
    const victim = busiest(live)
    if (victim === undefined || !(await kill(victim, why))) return
    kills.count += 1
    await Bun.sleep(2_000 + random() * 3_000)
    start(victim)
  }
  for (const fraction of [0.12, 0.72, 0.9]) events.push({ at: at(fraction), run: () => killAndRestart("at a random moment") })
  const cutSeconds = Math.min(60, Math.round(durationMs / 4 / 1000))
  events.push({
    at: at(0.4),
    run: async () => {
      say(`${elapsed()} vendor cut off for ${cutSeconds} s`)
      await vendor.stop()
      vendorCuts += 1
      await Bun.sleep(cutSeconds * 1000)
      vendor = startMassiveFake(vendorOptions(vendorPort))
      say(`${elapsed()} vendor back`)
    }
  })
  if (options.instances === 2) {
    const freezeSeconds = Math.min(120, Math.round((durationMs * 0.4) / 1000))
    events.push({
      at: startedAt + Math.round(durationMs * 0.25),
      run: async () => {
        const target = busiest(instances.filter((i) => i.process !== null))
        if (target === undefined || target.process === null) return
        say(`${elapsed()} SIGSTOP ${target.name} for ${freezeSeconds} s; running: ${instances.map((i) => `${i.name} ${[...i.running.keys()].join(" ") || "nothing"}`).join("; ")}`)
        target.process.kill("SIGSTOP")
        target.frozenSince = Date.now()
        await Bun.sleep(freezeSeconds * 1000)
        if (target.frozenSince === null || target.process === null) return
        frozenSpans.push({ instance: target.name, from: target.frozenSince, to: Date.now() })
        target.frozenSince = null
        // A runner that wakes from a stall exits by design (SHARD_LOCK_SESSION_TIMEOUT_SECONDS): not a crash.
        target.expectExit = true
        target.process.kill("SIGCONT")
        say(`${elapsed()} SIGCONT ${target.name}`)
        // A runner that woke from a stall exits (SHARD_LOCK_SESSION_TIMEOUT_SECONDS); like any dead one, it is started again.
        const exit = await Promise.race([target.exited, Bun.sleep(10_000).then(() => null)])
        if (exit === null) target.expectExit = false
        if (exit !== null && target.process === null) {
          say(`${elapsed()} ${target.name} exited ${exit} after waking; started again`)
          start(target)
        }
      }
    })
  }
  if (options.database === "embedded") {
    // A SIGKILL while a page is being written: a whole-history sync's big page arrives, and the kill follows it.
    events.push({
      at: at(0.5),
      run: async () => {
        const inst = instances[0]!
        const hit = new Promise<void>((resolve) => {
          const hook = (url: URL) => {
            const match = /\/range\/\d+\/(minute|hour)\/(\d+)\/(\d+)$/.exec(url.pathname)
            if (match === null || Number(match[3]) - Number(match[2]) < 6 * hour) return
            requestHooks.splice(requestHooks.indexOf(hook), 1)
            setTimeout(resolve, 20 + random() * 60)
          }
          requestHooks.push(hook)
        })
        await post("/api/data/sync", { symbol: "EURUSD", timeframe: "M1", full_sync: true })
        const midPage = await Promise.race([hit.then(() => true), Bun.sleep(15_000).then(() => false)])
        requestHooks.length = 0
        if (await kill(inst, midPage ? "in the middle of a page" : "no whole-history page came within 15 s")) {
          kills.count += 1
          if (midPage) kills.midPage += 1
          await Bun.sleep(2_000)
          start(inst)
        }
      }
    })
  } else {
    events.push({
      at: at(0.8),
      run: async () => {
        say(`${elapsed()} restarting the PostgreSQL server: ${options.restartCommand}`)
        const restart = Bun.spawn(["sh", "-c", options.restartCommand], { stdout: "inherit", stderr: "inherit" })
        const code = await restart.exited
        if (code !== 0) throw new Error(`the restart command failed (exit ${code}): ${options.restartCommand}`)
        dbRestarts += 1
      }
    })
  }
  events.push({ at: at(0.3), run: async () => { for (const s of sources) await post("/api/data/sync", { symbol: s.symbol, timeframe: s.timeframe }) } })
  events.push({
    at: at(0.6),
    run: async () => {
      await post("/api/data/gaps/detect", { symbol: "EURUSD", timeframe: "M1" })
      await post("/api/data/gaps/fill", { symbol: "EURUSD", timeframe: "M1" })
      await post("/api/data/gaps/fill", { symbol: "XAUUSD", timeframe: "M1" })
    }
  })
  events.push({ at: at(0.85), run: async () => { for (const s of sources) await post("/api/data/sync", { symbol: s.symbol, timeframe: s.timeframe }) } })

  let outcome: Awaited<ReturnType<typeof compare>> | undefined
  let tStop = 0
  try {
    for (const inst of instances) start(inst)
    say(`${elapsed()} started ${instances.length} instance(s) on ${options.database}; faults for ${options.minutes} min`)
    const running = events.map(async (event) => {
      await sleepUntil(event.at)
      await event.run()
    })
    await Promise.all(running)
    await sleepUntil(startedAt + durationMs)

    // ─── settle ──────────────────────────────────────────────────────────────────────────────────────────────
    faultsOn = false
    tStop = Date.now()
    for (const inst of instances) if (inst.process === null) start(inst)
    say(`${elapsed()} faults stopped; waiting for every stream to settle`)
    const ends = new Map(sources.map((s) => [streamName(s), settledEnd(s, tStop)]))
    const settleDeadline = Date.now() + 6 * minute
    let lagging: Array<string> = [...ends.keys()]
    let lastNudge = 0
    while (lagging.length > 0 && Date.now() < settleDeadline) {
      const status = await streamStatus(instances)
      lagging = [...ends.entries()].filter(([stream, end]) => (status.get(stream) ?? 0) < end).map(([stream]) => stream)
      if (lagging.length === 0) break
      if (Date.now() - lastNudge > 30_000) {
        lastNudge = Date.now()
        for (const stream of lagging) await post("/api/data/sync", { symbol: stream.split(":")[0], timeframe: stream.split(":")[1] })
      }
      await Bun.sleep(3_000)
    }
    if (lagging.length > 0) say(`not settled within 6 min: ${lagging.join(", ")}`)
    // Let the passes that just stored those bars pay their rollups before stopping.
    await Bun.sleep(5_000)

    stopping = true
    for (const inst of instances) {
      inst.expectExit = true
      inst.process?.kill("SIGTERM")
    }
    await Promise.all(instances.map((inst) => Promise.race([inst.exited, Bun.sleep(15_000).then(() => inst.process?.kill("SIGKILL"))])))
    clearInterval(rssTimer)
    const endedAt = Date.now()

    outcome = await compare({
      database: options.database,
      databaseUrl: serverDatabaseUrl,
      embeddedDir,
      bars,
      backfillFrom,
      ends
    })

    // Ownership, from the log lines: at any moment, how many live, unfrozen instances ran each stream.
    const ownership = ownershipReport(tenures, frozenSpans, sources.map(streamName), startedAt, tStop, endedAt)
    const faults = Object.values(faultCounts).reduce((a, b) => a + b, 0) + vendorCuts
    const summary: Record<string, unknown> = {
      bench: "soak",
      database: options.database,
      instances: options.instances,
      minutes: options.minutes,
      kills: kills.count,
      db_restarts: dbRestarts,
      vendor_faults: faults,
      bars_expected: outcome.expected,
      bars_stored: outcome.stored,
      missing: outcome.missing,
      duplicates: outcome.duplicates,
      mismatched: outcome.mismatched + outcome.extra,
      rollups_mismatched: outcome.rollupsMismatched,
      gaps_left_open: outcome.gapsOpen,
      peak_rss_mb: Math.round(peakRss),
      ...(options.instances === 2
        ? { max_owners_at_once: ownership.maxOwners, longest_unowned_s: ownership.longestUnowned }
        : {})
    }
    const table = [
      ["stream", "expected", "stored", "missing", "mismatched", "extra", "rejected", "max owners", "longest unowned s"],
      ...sources.map((s) => {
        const row = outcome!.perStream.get(streamName(s))!
        const own = ownership.perStream.get(streamName(s))!
        return [streamName(s), row.expected, row.stored, row.missing, row.mismatched, row.extra, row.rejected, own.maxOwners, own.longestUnowned]
      })
    ]
    const details = [
      `kills ${kills.count} (mid-page ${kills.midPage}), db restarts ${dbRestarts}, vendor cut-offs ${vendorCuts}, faults ${JSON.stringify(faultCounts)}`,
      `jobs sent ${jobs.sent}, accepted ${jobs.accepted}; rollup buckets compared ${outcome.rollupsCompared}, owed at stop ${outcome.owedAtStop}; duplicates ${outcome.duplicates}`,
      `crashes: ${crashes.length === 0 ? "none" : crashes.join("; ")}`,
      `frozen: ${frozenSpans.map((f) => `${f.instance} ${((f.to - f.from) / 1000).toFixed(0)} s`).join(", ") || "none"}; stall exits: ${stalledExits.length}`,
      ...outcome.examples.slice(0, 10).map((line) => `  example: ${line}`)
    ]
    return { summary, table, details }
  } catch (error) {
    for (const inst of instances) say(`--- ${inst.name}'s last log lines:\n${inst.tail.join("\n")}`)
    throw error
  } finally {
    clearInterval(rssTimer)
    for (const inst of instances) {
      if (inst.frozenSince !== null) inst.process?.kill("SIGCONT")
      inst.process?.kill("SIGKILL")
    }
    await vendor.stop().catch(() => undefined)
    if (embeddedDir !== "") rmSync(embeddedDir, { recursive: true, force: true })
    if (adminSql !== null) {
      await adminSql.unsafe(`DROP DATABASE IF EXISTS ${databaseName} WITH (FORCE)`).catch(() => undefined)
      await adminSql.close()
    }
  }
}

/** The first bar a stream need not have yet when the faults stop: every bar before it was published by then. */
const settledEnd = (source: SourceStream, tStop: number): number => {
  const published = tStop - (delayedMinutes[source.ticker] ?? 0) * minute - (lateSeconds[source.ticker] ?? 0) * second
  if (source.timeframe === "H1") return published - (published % hour) - hour
  return published - (published % minute) - minute
}

/** Each stream's watermark, from whichever instance answers. */
const streamStatus = async (instances: ReadonlyArray<Instance>): Promise<Map<string, number>> => {
  for (const inst of instances.filter((i) => i.process !== null && i.frozenSince === null)) {
    try {
      const response = await fetch(`http://127.0.0.1:${inst.port}/api/data/status`, { signal: AbortSignal.timeout(5_000) })
      if (!response.ok) continue
      const body = (await response.json()) as { streams: Array<{ stream: string; watermark: string | null }> }
      return new Map(body.streams.map((s) => [s.stream, s.watermark === null ? 0 : Date.parse(s.watermark)]))
    } catch {
      // The next instance.
    }
  }
  return new Map()
}

const ownershipReport = (
  tenures: ReadonlyArray<Tenure>,
  frozen: ReadonlyArray<{ instance: string; from: number; to: number }>,
  streams: ReadonlyArray<string>,
  startedAt: number,
  tStop: number,
  endedAt: number
) => {
  const step = 250
  const perStream = new Map<string, { maxOwners: number; longestUnowned: number }>()
  for (const stream of streams) {
    const mine = tenures.filter((t) => t.stream === stream)
    let maxOwners = 0
    let longest = 0
    let unownedSince: number | null = null
    let everOwned = false
    for (let t = startedAt; t <= Math.min(tStop, endedAt); t += step) {
      const owners = new Set(
        mine
          .filter((x) => x.from <= t && t < x.to)
          .filter((x) => !frozen.some((f) => f.instance === x.instance && f.from <= t && t < f.to))
          .map((x) => x.instance)
      )
      maxOwners = Math.max(maxOwners, owners.size)
      if (owners.size > 0) everOwned = true
      if (owners.size === 0 && everOwned) unownedSince ??= t
      if (owners.size > 0 && unownedSince !== null) {
        longest = Math.max(longest, t - unownedSince)
        unownedSince = null
      }
    }
    if (unownedSince !== null) longest = Math.max(longest, Math.min(tStop, endedAt) - unownedSince)
    perStream.set(stream, { maxOwners, longestUnowned: Math.round(longest / 100) / 10 })
  }
  const values = [...perStream.values()]
  return {
    perStream,
    maxOwners: Object.fromEntries([...perStream].map(([s, v]) => [s, v.maxOwners])),
    longestUnowned: Math.max(0, ...values.map((v) => v.longestUnowned))
  }
}

// ─── the comparison ──────────────────────────────────────────────────────────────────────────────────────────

const rollupLevels = [
  { table: "candles_m5", span: 5 * minute },
  { table: "candles_m15", span: 15 * minute },
  { table: "candles_m30", span: 30 * minute },
  { table: "candles_h1", span: hour }
] as const

const compare = async (input: {
  readonly database: SoakDatabase
  readonly databaseUrl: string
  readonly embeddedDir: string
  readonly bars: ReadonlyMap<string, ReadonlyArray<Candle>>
  readonly backfillFrom: number
  readonly ends: ReadonlyMap<string, number>
}) => {
  const config = AppConfig.fixed(
    input.database === "embedded"
      ? { dataDir: input.embeddedDir }
      : { databaseUrl: Option.some(Redacted.make(input.databaseUrl)), databaseFlavour: input.database }
  )
  const runtime = ManagedRuntime.make(appLayer(config))
  try {
    return await runtime.runPromise(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        // Debts left by the last stop are paid by whoever pays next; the soak is that payer before it reads.
        const [owed] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM rollups_owed`
        if ((owed?.n ?? 0) > 0) yield* Rollups.use((r) => r.pay)
        const [dups] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM (SELECT 1 FROM candles GROUP BY symbol, timeframe, ts HAVING count(*) > 1) d`
        const [gaps] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM data_gaps WHERE status IN ('detected', 'filling', 'partially_filled')`
        const perStream = new Map<string, { expected: number; stored: number; missing: number; mismatched: number; extra: number; rejected: number }>()
        const examples: Array<string> = []
        let rollupsMismatched = 0
        let rollupsCompared = 0
        const same = (a: number, b: number) => a === b || Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b))
        for (const source of sources) {
          const name = streamName(source)
          const end = input.ends.get(name)!
          const m1 = (input.bars.get(source.ticker) ?? []).filter((b) => b.ts >= input.backfillFrom && b.ts < end)
          const expected = source.timeframe === "H1" ? aggregate(m1, hour) : new Map(m1.map((b) => [b.ts, { ...b, bars: 1 }]))
          const rows = yield* sql<{ ts: number; open: number; high: number; low: number; close: number; volume: number }>`
            SELECT (extract(epoch FROM ts) * 1000)::float8 AS ts, open, high, low, close, volume FROM candles
            WHERE symbol = ${source.symbol} AND timeframe = ${source.timeframe} AND ts >= ${new Date(input.backfillFrom)} AND ts < ${new Date(end)}`
          const [rejected] = yield* sql<{ n: number }>`
            SELECT count(*)::int AS n FROM rejected_candles WHERE symbol = ${source.symbol} AND timeframe = ${source.timeframe}`
          const stored = new Map(rows.map((r) => [Number(r.ts), r]))
          let missing = 0
          let mismatched = 0
          for (const [ts, want] of expected) {
            const got = stored.get(ts)
            if (got === undefined) {
              missing += 1
              if (examples.length < 20) examples.push(`${name} missing ${new Date(ts).toISOString()}`)
            } else if (!(same(got.open, want.open) && same(got.high, want.high) && same(got.low, want.low) && same(got.close, want.close) && same(got.volume, want.volume))) {
              mismatched += 1
              if (examples.length < 20) examples.push(`${name} differs at ${new Date(ts).toISOString()}: stored ${JSON.stringify(got)} vendor ${JSON.stringify(want)}`)
            }
          }
          const extra = [...stored.keys()].filter((ts) => !expected.has(ts)).length
          perStream.set(name, { expected: expected.size, stored: stored.size, missing, mismatched, extra, rejected: rejected?.n ?? 0 })
          if (source.timeframe !== "M1") continue
          // Every rollup bucket wholly inside the compared range, against the soak's own aggregation of the vendor's bars.
          for (const level of rollupLevels) {
            const levelEnd = end - (end % level.span)
            const want = aggregate(m1.filter((b) => b.ts < levelEnd), level.span)
            const got = yield* sql<{ ts: number; open: number; high: number; low: number; close: number; volume: number; bars: number }>`
              SELECT (extract(epoch FROM ts) * 1000)::float8 AS ts, open, high, low, close, volume, bars::int AS bars FROM ${sql(level.table)}
              WHERE symbol = ${source.symbol} AND ts >= ${new Date(input.backfillFrom)} AND ts < ${new Date(levelEnd)}`
            const gotByTs = new Map(got.map((r) => [Number(r.ts), r]))
            for (const [ts, w] of want) {
              rollupsCompared += 1
              const g = gotByTs.get(ts)
              const ok = g !== undefined && same(g.open, w.open) && same(g.high, w.high) && same(g.low, w.low) && same(g.close, w.close) && same(g.volume, w.volume) && Number(g.bars) === w.bars
              if (!ok) {
                rollupsMismatched += 1
                if (examples.length < 20) examples.push(`${source.symbol} ${level.table} ${new Date(ts).toISOString()}: stored ${JSON.stringify(g ?? null)} vendor ${JSON.stringify(w)}`)
              }
            }
            const extraBuckets = [...gotByTs.keys()].filter((ts) => !want.has(ts)).length
            rollupsMismatched += extraBuckets
            if (extraBuckets > 0 && examples.length < 20) examples.push(`${source.symbol} ${level.table}: ${extraBuckets} buckets the vendor's bars do not make`)
          }
        }
        const all = [...perStream.values()]
        return {
          perStream,
          expected: all.reduce((a, r) => a + r.expected, 0),
          stored: all.reduce((a, r) => a + r.stored, 0),
          missing: all.reduce((a, r) => a + r.missing, 0),
          mismatched: all.reduce((a, r) => a + r.mismatched, 0),
          extra: all.reduce((a, r) => a + r.extra, 0),
          duplicates: dups?.n ?? 0,
          rollupsMismatched,
          rollupsCompared,
          owedAtStop: owed?.n ?? 0,
          gapsOpen: gaps?.n ?? 0,
          examples
        }
      })
    )
  } finally {
    await runtime.dispose()
  }
}

// ─── the command ─────────────────────────────────────────────────────────────────────────────────────────────

const flag = (name: string): string | undefined => {
  const at = process.argv.indexOf(name)
  return at >= 0 ? process.argv[at + 1] : undefined
}

const serverHasTimescale = async (url: string): Promise<boolean> => {
  const sql = new Bun.SQL(url, { max: 1, connectionTimeout: 3 })
  try {
    const [row] = await sql`SELECT current_setting('shared_preload_libraries') AS preload`
    return String(row?.preload ?? "").includes("timescaledb")
  } finally {
    await sql.close()
  }
}

if (import.meta.main) {
  const serverUrl = flag("--server-url") ?? "postgres://postgres@127.0.0.1:5432/postgres"
  const minutes = Number(flag("--minutes") ?? 5)
  const instances = Number(flag("--instances") ?? 1)
  const databaseFlag = flag("--database")
  if (!(minutes > 0)) throw new Error(`--minutes expects a positive number, got ${flag("--minutes")}`)
  if (instances !== 1 && instances !== 2) throw new Error(`--instances expects 1 or 2, got ${flag("--instances")}`)
  if (databaseFlag !== undefined && !["embedded", "plain", "timescale"].includes(databaseFlag)) {
    throw new Error(`--database expects embedded, plain or timescale, got ${databaseFlag}`)
  }
  const database = (databaseFlag ?? ((await serverHasTimescale(serverUrl)) ? "timescale" : "plain")) as SoakDatabase
  const result = await runSoak({
    minutes,
    instances,
    database,
    serverUrl,
    restartCommand: flag("--restart-command") ?? "pg_ctlcluster 15 main restart",
    dataDir: flag("--data-dir") ?? join(root, "..", "shared", "data"),
    seed: Number(flag("--seed") ?? Date.now() % 1_000_000),
    say: (line) => console.error(line)
  })
  const widths = result.table[0]!.map((_, i) => Math.max(...result.table.map((row) => String(row[i]).length)))
  for (const row of result.table) console.log(row.map((cell, i) => String(cell).padEnd(widths[i]!)).join("  "))
  for (const line of result.details) console.log(line)
  console.log(JSON.stringify(result.summary))
  process.exit(0)
}
