import { afterEach, describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, Option, Redacted } from "effect"
import { join } from "node:path"
import { quietBars } from "./support/bars.ts"
import { startMassiveFake, type MassiveFake } from "./fakes/massive.ts"
import { createTestDatabase, databaseEnv, serverAdminUrl, serverKinds, type TestDatabase } from "./support/databases.ts"

const minute = 60_000
if (serverKinds.length === 0) console.log("shutdown and outage tests on the server skipped: they need a PostgreSQL server (see TEST_DATABASE_URL)")

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})


const freePort = async () => {
  const probe = Bun.serve({ port: 0, fetch: () => new Response() })
  const port = probe.port
  await probe.stop()
  return port
}

/** `serve` as a user runs it, keeping EURUSD:M1 from `from`. */
const startServe = async (db: TestDatabase, fake: MassiveFake, from: number) => {
  const child = Bun.spawn([process.execPath, "src/main.ts", "serve"], {
    cwd: join(import.meta.dir, ".."),
    env: {
      ...process.env,
      LOG_LEVEL: "warning",
      ...databaseEnv(db),
      PORT: String(await freePort()),
      RUNNER_PORT: String(await freePort()),
      STREAMS: "EURUSD:M1",
      BACKFILL_FROM: new Date(from).toISOString(),
      MASSIVE_API_KEY: "serve-key",
      MASSIVE_BASE_URL: fake.baseUrl,
      MASSIVE_PLAN: "paid"
    },
    stdout: "pipe",
    stderr: "pipe"
  })
  cleanups.push(async () => {
    child.kill("SIGKILL")
    await child.exited
  })
  return child
}

/** The stream's row and its bars; on the embedded database only once no other process holds it open. */
const stream = (db: TestDatabase) =>
  db.run(
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.all({
        state: sql<{ status: string; watermark: Date | null }>`SELECT status, watermark FROM sync_state WHERE symbol = 'EURUSD' AND timeframe = 'M1'`,
        bars: sql<{ n: number; behind: number; last: Date | null }>`
          SELECT count(*)::int AS n, max(ts) AS last,
                 (count(*) FILTER (WHERE ts < (SELECT watermark FROM sync_state WHERE symbol = 'EURUSD' AND timeframe = 'M1')))::int AS behind
          FROM candles WHERE symbol = 'EURUSD'`
      })
    ).pipe(Effect.map(({ state, bars }) => ({ status: state[0]?.status, watermark: state[0]?.watermark?.getTime() ?? null, stored: bars[0]!.n, storedBehindWatermark: bars[0]!.behind, last: bars[0]!.last?.getTime() ?? null })))
  )

/** Polls the shared database until a condition holds. */
const waitFor = async (label: string, check: () => Promise<boolean>, limitMillis: number) => {
  const started = Date.now()
  while (Date.now() - started < limitMillis) {
    if (await check()) return
    await Bun.sleep(100)
  }
  throw new Error(`${label}: not within ${limitMillis} ms`)
}

for (const kind of serverKinds)
describe(`serve on the server database (${kind})`, () => {
  test("SIGTERM during a backfill exits 0 within 10 s, nothing stored lies past the watermark, and the next start resumes from it", async () => {
    const db = await createTestDatabase(kind)
    cleanups.push(() => db.drop())
    cleanups.push(() => db.close())
    const from = Date.parse("2021-03-01T00:00:00Z")
    const bars = quietBars(from, 30 * 1440)
    // Small, slow pages: the backfill is still running when the signal comes.
    const fake = startMassiveFake({ apiKeys: ["serve-key"], bars: new Map([["C:EURUSD", bars]]), pageSize: 2_000, slowMillis: 200, faults: () => "slow" })
    cleanups.push(() => fake.stop())

    const first = await startServe(db, fake, from)
    await waitFor("backfill under way", async () => ((await stream(db)).watermark ?? 0) > from + 3 * 2_000 * minute, 30_000)
    const signalled = Date.now()
    first.kill("SIGTERM")
    const code = await first.exited
    const tookMillis = Date.now() - signalled
    console.log(`SIGTERM during a backfill: exited ${code} after ${tookMillis} ms`)
    expect(code).toBe(0)
    expect(tookMillis).toBeLessThan(10_000)
    const afterStop = await stream(db)
    expect(afterStop.status).not.toBe("live")
    // The page in flight either committed with its watermark or rolled back: nothing beyond, no hole behind.
    expect(afterStop.last! + minute).toBe(afterStop.watermark!)
    expect(afterStop.stored).toBe(bars.filter((b) => b.ts < afterStop.watermark!).length)

    const asked = fake.requests.length
    await startServe(db, fake, from)
    await waitFor("caught up after the restart", async () => (await stream(db)).status === "live", 60_000)
    const resumedAt = Number(new URL(fake.requests[asked]!.url).pathname.split("/").at(-2))
    expect(resumedAt).toBe(afterStop.watermark!)
    expect((await stream(db)).stored).toBe(bars.length)
  }, 120_000)

  test("connections cut under a running supervisor: the stream recovers by itself and loses no bar", async () => {
    const db = await createTestDatabase(kind)
    cleanups.push(() => db.drop())
    cleanups.push(() => db.close())
    const now = Date.now()
    const from = now - (now % minute) - 20 * minute
    const bars = quietBars(from, 120)
    const fake = startMassiveFake({ apiKeys: ["serve-key"], bars: new Map([["C:EURUSD", bars]]) })
    cleanups.push(() => fake.stop())

    await startServe(db, fake, from)
    await waitFor("live", async () => (await stream(db)).status === "live", 30_000)
    const before = await stream(db)
    const name = new URL(Redacted.value(Option.getOrThrow(db.config.databaseUrl))).pathname.slice(1)
    // What a server restart does to a client: every connection to the database dropped at once.
    const admin = Bun.spawnSync(["psql", serverAdminUrl, "-Atc", `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '${name}'`])
    expect(Number(admin.stdout.toString().trim())).toBeGreaterThan(0)
    // The next minute's sync must land: the watermark moves on, the stream is live, no bar is missing or doubled.
    await waitFor("a sync after the cut", async () => {
      const now = await stream(db).catch(() => before)
      return now.status === "live" && (now.watermark ?? 0) > before.watermark!
    }, 90_000)
    const after = await stream(db)
    // Every bar behind the watermark is stored; past it (unsettled minutes, asked again) only what was published.
    expect(after.storedBehindWatermark).toBe(bars.filter((b) => b.ts < after.watermark!).length)
    expect(after.stored).toBe(bars.filter((b) => b.ts <= after.last!).length)
    expect(after.last!).toBeLessThan(Date.now())
  }, 120_000)
})

describe("serve on the embedded database", () => {
  test("SIGTERM during a backfill exits 0 within 10 s and the next start resumes from the watermark", async () => {
    const db = await createTestDatabase("embedded")
    cleanups.push(() => db.drop())
    const from = Date.parse("2021-03-01T00:00:00Z")
    const bars = quietBars(from, 20 * 1440)
    const fake = startMassiveFake({ apiKeys: ["serve-key"], bars: new Map([["C:EURUSD", bars]]), pageSize: 2_000, slowMillis: 200, faults: () => "slow" })
    cleanups.push(() => fake.stop())
    // One process holds PGlite at a time: progress is read from the vendor's side while serve runs.
    const served = (n: number) => waitFor(`${n} pages served`, async () => fake.requests.length >= n, 30_000)

    const first = await startServe(db, fake, from)
    await served(4)
    const signalled = Date.now()
    first.kill("SIGTERM")
    const code = await first.exited
    const tookMillis = Date.now() - signalled
    console.log(`SIGTERM during a backfill (embedded): exited ${code} after ${tookMillis} ms`)
    expect(code).toBe(0)
    expect(tookMillis).toBeLessThan(10_000)
    const afterStop = await stream(db)
    await db.close()
    expect(afterStop.watermark).not.toBeNull()
    expect(afterStop.last! + minute).toBe(afterStop.watermark!)
    expect(afterStop.stored).toBe(bars.filter((b) => b.ts < afterStop.watermark!).length)

    const asked = fake.requests.length
    const second = await startServe(db, fake, from)
    await served(asked + 3)
    expect(Number(new URL(fake.requests[asked]!.url).pathname.split("/").at(-2))).toBe(afterStop.watermark!)
    second.kill("SIGTERM")
    expect(await second.exited).toBe(0)
    const reopened = db.reopen()
    const afterRestart = await stream(reopened)
    await reopened.close()
    expect(afterRestart.stored).toBeGreaterThan(afterStop.stored)
    expect(afterRestart.stored).toBe(bars.filter((b) => b.ts < afterRestart.watermark!).length)
  }, 120_000)
})
