import { afterAll, describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { join } from "node:path"
import type { Subprocess } from "bun"
import { quietBars } from "./support/bars.ts"
import { startMassiveFake } from "./fakes/massive.ts"
import { createTestDatabase, databaseEnv, serverKinds, type TestDatabase } from "./support/databases.ts"
import { stalledExitCode } from "../src/supervisor/stall-guard.ts"

const minute = 60_000
const streams = ["XAUUSD:M1", "EURUSD:M1", "GBPUSD:M1", "USDJPY:M1"]
const now = Date.now()
const from = now - (now % minute) - 30 * minute
const bars = quietBars(from, 120)

const freePort = async () => {
  const probe = Bun.serve({ port: 0, fetch: () => new Response() })
  const port = probe.port
  await probe.stop()
  return port
}

/** Polls a condition until it holds; returns how long it took, or fails after `limitMillis`. */
const waitFor = async (label: string, check: () => Promise<boolean>, limitMillis: number): Promise<number> => {
  const started = Date.now()
  while (Date.now() - started < limitMillis) {
    if (await check()) return Date.now() - started
    await Bun.sleep(200)
  }
  throw new Error(`${label}: not within ${limitMillis} ms`)
}

// The shard locks and the stall guard are the cluster's and the process's, whatever the flavour: one server kind is enough.
const kinds = serverKinds.slice(0, 1)
if (kinds.length === 0) console.log("frozen-runner test skipped: it needs a PostgreSQL server (see TEST_DATABASE_URL)")

for (const kind of kinds)
describe(`a runner frozen with SIGSTOP (${kind})`, () => {
  let db: TestDatabase
  const keys = { a: "frozen-a-key", b: "frozen-b-key" }
  const fake = startMassiveFake({ apiKeys: Object.values(keys), bars: new Map(streams.map((s) => [`C:${s.split(":")[0]}`, bars])) })
  const children: Array<Subprocess> = []
  afterAll(async () => {
    for (const child of children) {
      child.kill("SIGCONT")
      child.kill("SIGKILL")
    }
    await db?.close()
    await db?.drop()
    await fake.stop()
  })

  test("loses its streams to the other runner within 30 s, and on waking exits before asking the vendor anything", async () => {
    db = await createTestDatabase(kind)
    const start = async (key: string) => {
      const runnerPort = await freePort()
      const child = Bun.spawn([process.execPath, "src/main.ts", "serve"], {
        cwd: join(import.meta.dir, ".."),
        env: {
          ...process.env,
          LOG_LEVEL: "warning",
          ...databaseEnv(db),
          PORT: String(await freePort()),
          RUNNER_PORT: String(runnerPort),
          STREAMS: streams.join(","),
          BACKFILL_FROM: new Date(from).toISOString(),
          MASSIVE_API_KEY: key,
          MASSIVE_BASE_URL: fake.baseUrl,
          MASSIVE_PLAN: "paid"
        },
        stdout: "ignore",
        stderr: "pipe"
      })
      children.push(child)
      return { child, runner: `127.0.0.1:${runnerPort}`, stderr: new Response(child.stderr).text() }
    }
    const owners = async () =>
      new Map(
        (
          await db.run(
            Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ stream: string; owner: string | null; status: string }>`
              SELECT symbol || ':' || timeframe AS stream, owner, status FROM sync_state`)
          )
        ).map((row) => [row.stream, row])
      )

    const a = await start(keys.a)
    await waitFor("every stream live on A", async () => {
      const rows = await owners()
      return streams.every((s) => rows.get(s)?.status === "live" && rows.get(s)?.owner === a.runner)
    }, 60_000)
    const b = await start(keys.b)
    await waitFor("B runs some streams", async () => [...(await owners()).values()].some((r) => r.owner === b.runner && r.status === "live"), 60_000)

    // A keeps its PostgreSQL sessions while frozen; PostgreSQL ends the shard-lock one, and B takes A's streams.
    const frozenAt = Date.now()
    a.child.kill("SIGSTOP")
    const movedAfter = await waitFor("every stream on B", async () => {
      const rows = await owners()
      return streams.every((s) => rows.get(s)?.owner === b.runner)
    }, 45_000)
    console.log(`a frozen runner's streams ran on the other ${movedAfter} ms after SIGSTOP`)
    expect(movedAfter).toBeLessThan(30_000)

    // Woken, A exits before doing anything: no vendor request with its key after SIGCONT.
    await Bun.sleep(Math.max(0, frozenAt + 17_000 - Date.now()))
    const wokenAt = Date.now()
    a.child.kill("SIGCONT")
    const code = await Promise.race([a.child.exited, Bun.sleep(10_000).then(() => "still running")])
    expect(code).toBe(stalledExitCode)
    expect(await a.stderr).toContain("stood still")
    expect(fake.requests.filter((r) => r.apiKey === keys.a && r.at >= wokenAt).map((r) => r.url)).toEqual([])
    const rows = await owners()
    expect(streams.filter((s) => rows.get(s)?.owner !== b.runner)).toEqual([])
    b.child.kill("SIGTERM")
    await b.child.exited
  }, 240_000)
})
