/**
 * What the single binary costs and gives, beside `npm start` on the same machine: its size and build time, the time
 * from launch to a 200 on /api/data/ready on an empty DATA_DIR and on one holding the backfilled bars, peak RSS of
 * `serve` idle and during a backfill of every stream (from the Massive fake, in a child process of its own), and
 * how each stops on SIGTERM.
 *
 *   bun scripts/bench-binary.ts [--bars 2628000] [--symbols 5] [--skip-npm]
 *
 * The default is a year of M1 (525,600 consecutive minutes) for each of five symbols. Prints a table, then one JSON line.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"

const { values } = parseArgs({ options: { bars: { type: "string" }, symbols: { type: "string" }, "skip-npm": { type: "boolean" } } })
const symbols = Number(values.symbols ?? 5)
const barCount = Number(values.bars ?? 525_600 * symbols)
const root = join(import.meta.dir, "..")
const apiKey = "bench-binary-key"
const temp = mkdtempSync(join(tmpdir(), "candlekeep-bench-binary-"))
const children: Array<Bun.Subprocess> = []
const cleanup = () => {
  for (const child of children) child.kill("SIGKILL")
  rmSync(temp, { recursive: true, force: true })
}
process.on("exit", cleanup)

const build = Bun.spawnSync([process.execPath, "scripts/build.ts"], { cwd: root, stdout: "pipe", stderr: "inherit" })
if (!build.success) throw new Error("npm run build failed")
const built = JSON.parse(build.stdout.toString().trim().split("\n").at(-1)!) as { bytes: number; seconds: number; commit: string }
// The binary runs alone in a directory of its own, as deployed.
const binary = join(temp, "bin", "candlekeep")
Bun.spawnSync(["mkdir", "-p", join(temp, "bin")])
await Bun.write(binary, Bun.file(join(root, "dist", "candlekeep")))
Bun.spawnSync(["chmod", "+x", binary])

const fake = Bun.spawn(
  [process.execPath, join(import.meta.dir, "fake-massive-server.ts"), "--bars", String(barCount), "--api-key", apiKey, "--symbols", String(symbols)],
  { stdin: "pipe", stdout: "pipe", stderr: "inherit" }
)
children.push(fake)
const fakeInfo = await (async () => {
  const decoder = new TextDecoder()
  let seen = ""
  for await (const chunk of fake.stdout) {
    seen += decoder.decode(chunk)
    if (seen.includes("\n")) return JSON.parse(seen.split("\n")[0]!) as { baseUrl: string; streams: Array<{ symbol: string; from: number; to: number; bars: number }> }
  }
  throw new Error("the Massive fake ended without its JSON line")
})()

const freePort = async () => {
  const probe = Bun.serve({ port: 0, fetch: () => new Response() })
  const port = probe.port
  await probe.stop()
  return port
}

/** Every process in the tree under `pid` (npm start runs a shell, which runs bun). */
const tree = (pid: number): Array<number> => {
  const parents = new Map<number, Array<number>>()
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(entry)])
    } catch {
      // the process ended while we looked
    }
  }
  const all = [pid]
  for (let i = 0; i < all.length; i++) all.push(...(parents.get(all[i]!) ?? []))
  return all
}
/** Peak resident set (VmHWM) in MiB of one process, 0 once it is gone. */
const peakMb = (pid: number) => {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return match ? Math.round(Number(match[1]) / 1024) : 0
  } catch {
    return 0
  }
}
/** The bun process running the service (under npm start: below npm and its shell). */
const isServe = (pid: number) => /(^|\/)bun$/.test(commandOf(pid).split(" ")[0] ?? "") && commandOf(pid).includes("src/main.ts")
const commandOf = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ")
  } catch {
    return ""
  }
}

type Runner = "binary" | "npm start"
const launch = async (runner: Runner, dataDir: string, extra: Record<string, string>) => {
  const port = await freePort()
  const settings = { DATA_DIR: dataDir, PORT: String(port), RUNNER_PORT: String(await freePort()), LOG_LEVEL: "warning", ...extra }
  const child =
    runner === "binary"
      ? Bun.spawn([binary, "serve"], { cwd: join(temp, "bin"), env: settings, stdout: "pipe", stderr: "pipe" })
      : Bun.spawn(["npm", "start", "--silent"], { cwd: root, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...settings }, stdout: "pipe", stderr: "pipe" })
  children.push(child)
  const stdout = new Response(child.stdout).text()
  void new Response(child.stderr).text()
  const started = performance.now()
  const deadline = started + 300_000
  while (performance.now() < deadline) {
    const ready = await fetch(`http://127.0.0.1:${port}/api/data/ready`).then((r) => r.status === 200, () => false)
    if (ready) break
    if (child.exitCode !== null) throw new Error(`${runner} exited ${child.exitCode} before it was ready`)
    await Bun.sleep(25)
  }
  const readySeconds = Math.round(performance.now() - started) / 1000
  /** The serving process (bun itself under npm start), and the peak of the whole tree. */
  const serving = () => runner === "binary" ? child.pid : tree(child.pid).find(isServe) ?? child.pid
  const servingPid = serving()
  const peaks = () => ({ serve: peakMb(servingPid), tree: tree(child.pid).reduce((sum, pid) => sum + peakMb(pid), 0) })
  const stop = async () => {
    const before = tree(child.pid)
    const signalled = performance.now()
    child.kill("SIGTERM")
    const code = await Promise.race([child.exited, Bun.sleep(15_000).then(() => null)])
    const seconds = Math.round(performance.now() - signalled) / 1000
    // What npm leaves behind: is the serving process still running once npm has exited?
    await Bun.sleep(1_000)
    const orphaned = before.filter((pid) => pid !== child.pid && existsSync(`/proc/${pid}`) && isServe(pid))
    for (const pid of orphaned) process.kill(pid, "SIGTERM")
    for (const pid of orphaned) while (existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z ")) await Bun.sleep(50)
    const stopLine = (await Promise.race([stdout, Bun.sleep(2_000).then(() => "")])).includes('"status":"stopped"')
    return { code, seconds, orphaned: orphaned.length > 0, stopLine }
  }
  return { port, readySeconds, peaks, stop }
}

interface Row {
  runner: Runner
  ready_empty_s: number
  idle_peak_mb: number
  idle_tree_peak_mb: number
  backfill_s: number
  backfill_peak_mb: number
  backfill_tree_peak_mb: number
  ready_full_s: number
  sigterm_exit: number | null
  sigterm_s: number
  sigterm_orphaned: boolean
  stop_line: boolean
}

const measure = async (runner: Runner): Promise<Row> => {
  // Idle: an empty DATA_DIR, no vendor key, so no stream runs.
  const empty = await launch(runner, join(temp, `${runner}-empty`), {})
  await Bun.sleep(5_000)
  const idle = empty.peaks()
  const idleStop = await empty.stop()

  // A backfill of every stream, as serve runs it; its DATA_DIR is then the full one.
  const full = join(temp, `${runner}-full`)
  const backfilling = await launch(runner, full, {
    MASSIVE_API_KEY: apiKey,
    MASSIVE_BASE_URL: fakeInfo.baseUrl,
    MASSIVE_PLAN: "paid",
    STREAMS: fakeInfo.streams.map((s) => `${s.symbol}:M1`).join(","),
    BACKFILL_FROM: new Date(Math.min(...fakeInfo.streams.map((s) => s.from))).toISOString()
  })
  const started = performance.now()
  let peak = { serve: 0, tree: 0 }
  for (;;) {
    const status = (await (await fetch(`http://127.0.0.1:${backfilling.port}/api/data/status`)).json()) as { streams: Array<{ state: string }> }
    const current = backfilling.peaks()
    peak = { serve: Math.max(peak.serve, current.serve), tree: Math.max(peak.tree, current.tree) }
    if (status.streams.length > 0 && status.streams.every((s) => s.state === "live")) break
    if (performance.now() - started > 1_800_000) throw new Error(`${runner}: the backfill did not finish within 30 minutes`)
    await Bun.sleep(250)
  }
  const backfillSeconds = Math.round(performance.now() - started) / 1000
  await backfilling.stop()

  // A restart on the full DATA_DIR, without a key: the time to ready is the database's, not the vendor's.
  const restarted = await launch(runner, full, {})
  const stopped = await restarted.stop()
  return {
    runner,
    ready_empty_s: empty.readySeconds,
    idle_peak_mb: idle.serve,
    idle_tree_peak_mb: idle.tree,
    backfill_s: backfillSeconds,
    backfill_peak_mb: peak.serve,
    backfill_tree_peak_mb: peak.tree,
    ready_full_s: restarted.readySeconds,
    sigterm_exit: idleStop.code,
    sigterm_s: Math.max(idleStop.seconds, stopped.seconds),
    sigterm_orphaned: idleStop.orphaned || stopped.orphaned,
    stop_line: idleStop.stopLine && stopped.stopLine
  }
}

const rows: Array<Row> = [await measure("binary")]
if (!values["skip-npm"]) rows.push(await measure("npm start"))
const fullDir = join(temp, "binary-full")
const fullMb = Math.round(Number(Bun.spawnSync(["du", "-sk", fullDir]).stdout.toString().split("\t")[0]) / 1024)

const columns = Object.keys(rows[0]!) as Array<keyof Row>
console.log(`binary ${(built.bytes / 2 ** 20).toFixed(1)} MiB (${built.bytes} bytes), built in ${built.seconds} s at ${built.commit}; ${barCount} bars over ${symbols} symbols; full DATA_DIR ${fullMb} MiB`)
console.log(columns.join("  "))
for (const row of rows) console.log(columns.map((c) => String(row[c])).join("  "))
console.log(
  JSON.stringify({
    bench: "binary",
    bytes: built.bytes,
    build_s: built.seconds,
    bars: barCount,
    symbols,
    data_dir_mb: fullMb,
    size_check: statSync(binary).size === built.bytes,
    runs: rows
  })
)
fake.stdin.end()
process.exit(0)
