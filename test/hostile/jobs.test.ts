import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { join } from "node:path"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { databaseKinds } from "../support/databases.ts"
import { iso, post, seedFrom, seedHoles, startApi, type ApiHarness } from "../support/http.ts"

const minute = 60_000
const json = async (response: Response) => (await response.json()) as any

/** Issue 16, item 4: jobs are merged, bounded, stopped by a permanent vendor error, and gap attempts stay capped. */
describe.each(databaseKinds)("jobs under pressure on the %s database", (kind) => {
  let api: ApiHarness
  beforeAll(async () => {
    api = await startApi(kind)
  }, 60_000)
  afterAll(async () => {
    await api?.close()
  })

  const sql = <A extends object>(run: (sql: SqlClient.SqlClient) => Effect.Effect<ReadonlyArray<A>, unknown>) =>
    api.runtime.runPromise(Effect.flatMap(SqlClient.SqlClient, run)) as Promise<ReadonlyArray<A>>

  /** Polls a job until it has finished, for at most `limitMillis`. */
  const finished = async (url: string, limitMillis = 30_000) => {
    const deadline = Date.now() + limitMillis
    for (;;) {
      const job = await json(await api.request(url))
      if (job.status === "succeeded" || job.status === "failed") return job
      if (Date.now() > deadline) throw new Error(`job ${url} still ${job.status} after ${limitMillis} ms`)
      await Bun.sleep(25)
    }
  }

  test("five identical POST /gaps/fill at once are one job: one vendor request for the gap, and its attempts stay at 1", async () => {
    const range = { symbol: "EURUSD", timeframe: "M1", from: iso(seedFrom), to: iso(seedFrom + 4 * 86_400_000) }
    const detected = await json(await api.request("/api/data/gaps/detect", post(range)))
    expect(detected.count).toBe(1)
    const before = api.fake.requests.length
    const answers = await Promise.all(Array.from({ length: 5 }, () => api.request("/api/data/gaps/fill", post(range))))
    expect(answers.map((a) => a.status)).toEqual([202, 202, 202, 202, 202])
    const jobs = await Promise.all(answers.map(json))
    const ids = new Set(jobs.map((j) => j.job.id))
    expect(ids.size).toBe(1)
    expect(jobs.filter((j) => j.job.merged === true).length).toBe(4)
    const done = await finished(jobs[0].job.url)
    expect(done.status).toBe("succeeded")
    const vendorRequests = api.fake.requests.length - before
    console.log(`${kind}: five identical POST /gaps/fill → ${ids.size} job, ${vendorRequests} vendor request(s)`)
    expect(vendorRequests).toBe(1)
    const [gap] = await sql<{ attempts: number }>((s) => s`SELECT attempts FROM data_gaps WHERE symbol = 'EURUSD' AND gap_start = ${new Date(seedHoles[0]![0])}`)
    expect(gap!.attempts).toBe(1)
    // Once it has finished, the same request is a new job.
    const again = await json(await api.request("/api/data/gaps/fill", post(range)))
    expect(ids.has(again.job.id)).toBe(false)
    await finished(again.job.url)
  })

  test("attempts never pass GAP_FILL_MAX_ATTEMPTS, even for fills of overlapping ranges at once; gaps/reset gives them back", async () => {
    const start = Date.parse("2021-01-07T09:00:00Z")
    await sql((s) => s`INSERT INTO data_gaps (symbol, timeframe, gap_start, gap_end, missing_bars, attempts) VALUES ('EURUSD', 'M1', ${new Date(start)}, ${new Date(start + 4 * minute)}, 5, 2)`)
    const ranges = [0, 1, 2, 3].map((i) => ({ symbol: "EURUSD", from: start - (i + 1) * minute, to: start + 10 * minute }))
    const jobs = await Promise.all(ranges.map(async (range) => json(await api.request("/api/data/gaps/fill", post(range)))))
    expect(new Set(jobs.map((j) => j.job.id)).size).toBe(4)
    await Promise.all(jobs.map((j) => finished(j.job.url)))
    const [gap] = await sql<{ attempts: number; status: string }>((s) => s`SELECT attempts, status FROM data_gaps WHERE symbol = 'EURUSD' AND gap_start = ${new Date(start)}`)
    expect(gap!.attempts).toBe(api.config.gaps.maxAttempts)

    await sql((s) => s`UPDATE data_gaps SET status = 'detected', attempts = ${api.config.gaps.maxAttempts} WHERE symbol = 'EURUSD' AND gap_start = ${new Date(start)}`)
    const reset = await api.request("/api/data/gaps/reset", post({ symbol: "eurusd", timeframe: "M1" }))
    expect(reset.status).toBe(200)
    expect((await json(reset)).reset).toBeGreaterThanOrEqual(1)
    const [after] = await sql<{ attempts: number }>((s) => s`SELECT attempts FROM data_gaps WHERE symbol = 'EURUSD' AND gap_start = ${new Date(start)}`)
    expect(after!.attempts).toBe(0)
    expect((await api.request("/api/data/gaps/reset", post({ symbol: "NOPE" }))).status).toBe(404)
  })

  test("a refused key (401) ends a gap fill `failed` with the vendor's reason after one request, not one per gap", async () => {
    const day = Date.parse("2021-01-08T00:00:00Z")
    for (let i = 0; i < 5; i++) {
      const at = day + i * 60 * minute
      await sql((s) => s`INSERT INTO data_gaps (symbol, timeframe, gap_start, gap_end, missing_bars) VALUES ('EURUSD', 'M1', ${new Date(at)}, ${new Date(at + 9 * minute)}, 10)`)
    }
    api.refuseKey()
    const before = api.fake.requests.length
    const accepted = await json(await api.request("/api/data/gaps/fill", post({ symbol: "EURUSD", from: iso(day), to: iso(day + 6 * 60 * minute) })))
    const done = await finished(accepted.job.url)
    expect(done.status).toBe("failed")
    expect(done.error).toContain("Unknown API Key")
    expect(done.error).toContain("401")
    expect(api.fake.requests.length - before).toBe(1)
  })

  test(`at most JOBS_MAX_QUEUED jobs wait: one more is a 429 with Retry-After; an identical one is still merged`, async () => {
    const max = api.config.supervisor.jobsMaxQueued
    // Jobs another instance is running: they count as much as this instance's own.
    const verifying = crypto.randomUUID()
    await sql((s) => s`INSERT INTO jobs (id, kind, symbol, timeframe, args, instance, status) VALUES (${verifying}, 'verify', 'EURUSD', 'M5', '{"from":0,"levels":"M5"}', 'elsewhere:1', 'running')`)
    for (let i = 1; i < max; i++) {
      await sql((s) => s`INSERT INTO jobs (id, kind, symbol, timeframe, args, instance, status) VALUES (${crypto.randomUUID()}, 'verify', 'EURUSD', 'M1', ${`{"n":${i}}`}, 'elsewhere:1', 'running')`)
    }
    const refused = await api.request("/api/data/sync", post({ symbol: "EURUSD" }))
    expect(refused.status).toBe(429)
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0)
    expect(await json(refused)).toMatchObject({ error: "too_many_jobs" })
    const merged = await api.request("/api/data/verify", post({ symbol: "EURUSD", timeframe: "m5", from: 0 }))
    expect(merged.status).toBe(202)
    expect((await json(merged)).job).toMatchObject({ id: verifying, status: "running", merged: true })
    await sql((s) => s`UPDATE jobs SET status = 'succeeded', finished_at = now() WHERE instance = 'elsewhere:1'`)
    const accepted = await api.request("/api/data/sync", post({ symbol: "EURUSD" }))
    expect(accepted.status).toBe(202)
  })
})

describe("gaps reset on the command line", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "candlekeep-reset-"))
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }))
  const run = (args: ReadonlyArray<string>) => {
    const env = { ...process.env, DATA_DIR: dataDir, LOG_LEVEL: "warning" } as Record<string, string>
    delete env.DATABASE_URL
    const result = Bun.spawnSync([process.execPath, "src/main.ts", ...args], { cwd: join(import.meta.dir, "../.."), env, stdout: "pipe", stderr: "pipe" })
    return { code: result.exitCode, last: JSON.parse(result.stdout.toString().trim().split("\n").at(-1)!) }
  }

  test("gaps reset --symbol S ends with one JSON line; an unknown symbol fails in one", () => {
    const ok = run(["gaps", "reset", "--symbol", "EURUSD"])
    expect(ok.code).toBe(0)
    expect(ok.last).toEqual({ command: "gaps reset", status: "ok", symbol: "EURUSD", timeframe: null, reset: 0 })
    const bad = run(["gaps", "reset", "--symbol", "NOPE"])
    expect(bad.code).toBe(1)
    expect(bad.last).toMatchObject({ command: "gaps reset", status: "failed" })
  }, 60_000)
})
