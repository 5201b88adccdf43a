import { afterEach, describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, Option, Redacted } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { isOpen } from "../src/domain/calendar.ts"
import type { Candle } from "../src/domain/candle.ts"
import { Gaps } from "../src/pipeline/gaps.ts"
import { Importer } from "../src/pipeline/import.ts"
import { CandleStore } from "../src/store/candle-store.ts"
import { GapRepo } from "../src/store/gap-repo.ts"
import { gapScan } from "../src/supervisor/supervisor.ts"
import { startMassiveFake } from "./fakes/massive.ts"
import { quietBars } from "./support/bars.ts"
import { iso, post, seedFrom, seedHoles, seedTo, startApi } from "./support/http.ts"
import { createTestDatabase, databaseKinds, type DatabaseKind, type TestDatabase } from "./support/databases.ts"
import { hasSharedData, loadHistdata, noSharedDataReason } from "./support/shared-data.ts"

const minute = 60_000
const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

const database = async (kind: DatabaseKind, vendorBars: ReadonlyArray<Candle> = []) => {
  const fake = startMassiveFake({ apiKeys: ["gap-key"], bars: new Map([["C:EURUSD", vendorBars]]) })
  const db = await createTestDatabase(kind, {
    massive: { apiKey: Option.some(Redacted.make("gap-key")), baseUrl: fake.baseUrl, plan: "paid", requestsPerMinute: Option.none(), maxConcurrency: 2, timeoutSeconds: 5, settleSeconds: 120, delayMinutes: Option.none() }
  })
  cleanups.push(async () => {
    await db.close()
    await db.drop()
    await fake.stop()
  })
  return { db, fake }
}

const store = (db: TestDatabase, candles: ReadonlyArray<Candle>) =>
  db.run(CandleStore.use((s) => s.upsertPage({ symbol: "EURUSD", timeframe: "M1", source: "import", candles })))

/** Gaps found independently: minute by minute, runs of open minutes without a bar, split by closed minutes. */
const gapsByMinute = (bars: ReadonlyArray<Candle>, from: number, to: number, minBars: number) => {
  const present = new Set(bars.map((b) => b.ts))
  const found: Array<[number, number, number]> = []
  let run: [number, number] | null = null
  for (let t = from; t < to; t += minute) {
    const missing = !present.has(t) && isOpen("forex", t)
    if (missing) run = run === null ? [t, 1] : [run[0], run[1] + 1]
    else if (run !== null) {
      if (run[1] > minBars) found.push([run[0], run[0] + (run[1] - 1) * minute, run[1]])
      run = null
    }
  }
  if (run !== null && run[1] > minBars) found.push([run[0], run[0] + (run[1] - 1) * minute, run[1]])
  return found
}

describe.each(databaseKinds)("gaps on the %s database", (kind) => {
  test.skipIf(!hasSharedData)("detection on the real EURUSD file matches a minute-by-minute count, and re-running adds nothing", async () => {
    const bars = loadHistdata("EURUSD").filter((b) => b.ts < Date.parse("2021-03-01T00:00:00Z"))
    const { db } = await database(kind)
    for (let i = 0; i < bars.length; i += 50_000) await store(db, bars.slice(i, i + 50_000))
    const from = bars[0]!.ts
    const to = bars.at(-1)!.ts + minute
    const first = await db.run(Gaps.use((g) => g.detect({ symbol: "EURUSD", timeframe: "M1", from, to })))
    expect(first.gaps.map((g) => [g.start, g.end, g.missingBars])).toEqual(gapsByMinute(bars, from, to, 3))
    expect(first.recorded).toBe(first.gaps.length)
    // Weekends and holidays are never gaps: every gap lies in open minutes.
    expect(first.gaps.every((g) => isOpen("forex", g.start) && isOpen("forex", g.end))).toBe(true)
    const again = await db.run(Gaps.use((g) => g.detect({ symbol: "EURUSD", timeframe: "M1", from, to })))
    expect(again.recorded).toBe(0)
    const stored = await db.run(GapRepo.use((r) => r.list("EURUSD", "M1", null)))
    expect(stored.length).toBe(first.gaps.length)
  })

  test("filling: found again → filled, nothing from the vendor → unfillable with evidence, some → shrunk, short holes are no gaps", async () => {
    const start = Date.parse("2021-01-04T10:00:00Z")
    const vendor = quietBars(start, 240)
    const hole = (from: number, count: number) => vendor.slice(from, from + count).map((b) => b.ts)
    const filledLater = hole(30, 10)
    const neverThere = hole(90, 8)
    const partly = hole(150, 12)
    const short = hole(180, 2)
    const missingInStore = new Set([...filledLater, ...neverThere, ...partly, ...short])
    // The vendor lacks the 8 bars at 11:30 and the last 7 of the 12 at 12:30.
    const vendorHas = vendor.filter((b) => !neverThere.includes(b.ts) && !partly.slice(5).includes(b.ts))
    const { db } = await database(kind, vendorHas)
    await store(db, vendor.filter((b) => !missingInStore.has(b.ts)))
    const range = { symbol: "EURUSD", timeframe: "M1" as const, from: start, to: start + 240 * minute }

    const detected = await db.run(Gaps.use((g) => g.detect(range)))
    expect(detected.gaps.map((g) => g.missingBars)).toEqual([10, 8, 12])
    const report = await db.run(Gaps.use((g) => g.fill(range)))
    expect(report).toEqual({ attempted: 3, filled: 1, partiallyFilled: 1, unfillable: 1, failed: 0, barsRecovered: 15 })
    const gaps = await db.run(GapRepo.use((r) => r.list("EURUSD", "M1", null)))
    expect(gaps.map((g) => [g.status, g.missingBars, g.start, g.attempts])).toEqual([
      ["filled", 10, filledLater[0]!, 1],
      ["unfillable", 8, neverThere[0]!, 1],
      ["partially_filled", 7, partly[5]!, 1]
    ])
    expect((gaps[1]!.evidence as { vendorBars: number }).vendorBars).toBe(0)
    // The evidence is in fetch_log too: the exact range asked, answered empty.
    const [asked] = await db.run(
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ status: string; bars_received: number }>`
        SELECT status, bars_received FROM fetch_log WHERE purpose = 'gap_fill' AND range_from = ${new Date(neverThere[0]!)}`)
    )
    expect(asked).toEqual({ status: "empty", bars_received: 0 })
    // Never invented: the bars the vendor does not have are still absent.
    const stored = await db.run(CandleStore.use((s) => s.range({ symbol: "EURUSD", timeframe: "M1", from: start, to: start + 240 * minute, limit: 1000 })))
    expect(stored.length).toBe(240 - 8 - 7 - 2)

    // Detection again reopens nothing. Asked once more, the vendor has nothing for the rest of the partial gap:
    // it becomes unfillable too, and a further fill asks for nothing at all.
    expect((await db.run(Gaps.use((g) => g.detect(range)))).recorded).toBe(0)
    expect(await db.run(Gaps.use((g) => g.fill(range)))).toMatchObject({ attempted: 1, unfillable: 1, barsRecovered: 0 })
    expect((await db.run(Gaps.use((g) => g.fill(range)))).attempted).toBe(0)
    const final = await db.run(GapRepo.use((r) => r.list("EURUSD", "M1", null)))
    expect(final.map((g) => [g.status, g.missingBars, g.attempts])).toEqual([
      ["filled", 10, 1],
      ["unfillable", 8, 1],
      ["unfillable", 7, 2]
    ])
    // The quality report: the calendar expects 240 bars on that Monday morning; 223 are there.
    const quality = await db.run(Gaps.use((g) => g.report(range)))
    expect(quality.months).toEqual([
      { month: "2021-01", expected: 240, present: 223, completeness: 92.92, gapsOpen: 0, gapsFilled: 1, gapsUnfillable: 2, rejected: {} }
    ])
  })
})

if (!hasSharedData) console.log(`gap detection real-data test ${noSharedDataReason}`)

const everything = { from: Date.UTC(1970, 0, 1), to: Date.UTC(2099, 0, 1) }
const timed = async <A>(run: () => Promise<A>) => {
  const started = performance.now()
  const result = await run()
  return { result, millis: performance.now() - started }
}

describe.each(databaseKinds)("gaps only where history exists on the %s database", (kind) => {
  test("1970 → 2099 on a symbol without bars finds 0 gaps in well under a second; the quality report has no month", async () => {
    const { db } = await database(kind)
    await db.run(Effect.void) // the database opened and migrated: not part of what is timed
    for (const symbol of ["GBPUSD", "EURUSD"]) {
      const detect = await timed(() => db.run(Gaps.use((g) => g.detect({ symbol, timeframe: "M1", ...everything }))))
      expect(detect.result.gaps).toEqual([])
      expect(detect.result.recorded).toBe(0)
      expect(detect.millis).toBeLessThan(1000)
      const report = await timed(() => db.run(Gaps.use((g) => g.report({ symbol, timeframe: "M1", ...everything }))))
      expect(report.result.months).toEqual([])
      expect(report.millis).toBeLessThan(1000)
    }
    expect(await db.run(GapRepo.use((r) => r.list("GBPUSD", null, null)))).toEqual([])
  })

  test("detection is clamped to the first stored bar and the end of the history, whatever range is asked", async () => {
    const start = Date.parse("2021-01-04T10:00:00Z")
    const { db } = await database(kind)
    const bars = quietBars(start, 240)
    await store(db, bars.filter((_, i) => i < 100 || i >= 110))
    const found = await db.run(Gaps.use((g) => g.detect({ symbol: "EURUSD", timeframe: "M1", ...everything })))
    expect([found.from, found.to]).toEqual([start, start + 240 * minute])
    expect(found.gaps).toEqual([{ start: start + 100 * minute, end: start + 109 * minute, missingBars: 10 }])
  })

  test("a derived timeframe (H1 of the M1 stream) is refused with a message that says to ask M1", async () => {
    const { db } = await database(kind)
    const refused = await db.run(Effect.flip(Gaps.use((g) => g.detect({ symbol: "EURUSD", timeframe: "H1", ...everything }))))
    expect(refused._tag).toBe("DerivedTimeframe")
    expect(refused.message).toContain("ask for timeframe M1")
    const report = await db.run(Effect.flip(Gaps.use((g) => g.report({ symbol: "EURUSD", timeframe: "D1" }))))
    expect(report._tag).toBe("DerivedTimeframe")
  })

  test("after importing a file with a line dated 10000101, the daily scan and the quality report see only the real bars, at once", async () => {
    const { db } = await database(kind)
    const dir = mkdtempSync(join(tmpdir(), "candlekeep-year-1000-"))
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, "histdata.csv")
    const lines = Array.from({ length: 30 }, (_, i) => `20210104 10${String(i).padStart(2, "0")}00;1.2;1.2002;1.1999;1.2001;0`)
    writeFileSync(file, ["10000101 000000;1.2;1.2002;1.1999;1.2001;0", ...lines].join("\n") + "\n")
    await db.run(Importer.use((i) => i.run({ file, format: "histdata", symbol: "EURUSD", clock: "utc" })))
    const scan = await timed(() => db.run(gapScan))
    expect(scan.millis).toBeLessThan(1000)
    const [row] = await db.run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`SELECT count(*)::int AS n FROM data_gaps`))
    expect(row!.n).toBe(0)
    const quality = await db.run(Gaps.use((g) => g.report({ symbol: "EURUSD", timeframe: "M1" })))
    expect(quality.months).toEqual([{ month: "2021-01", expected: 30, present: 30, completeness: 100, gapsOpen: 0, gapsFilled: 0, gapsUnfillable: 0, rejected: {} }])
  })

  test("the command line: gaps detect 1970 → 2099 on an unconfigured-stream symbol prints 0 gaps", async () => {
    const { db } = await database(kind)
    await db.close()
    const target = Option.match(db.config.databaseUrl, { onNone: () => ({ DATA_DIR: db.config.dataDir }), onSome: (url) => ({ DATABASE_URL: Redacted.value(url) }) })
    const env: Record<string, string | undefined> = { ...process.env, LOG_LEVEL: "warning", STREAMS: "EURUSD:M1", ...target }
    if (!("DATABASE_URL" in target)) delete env.DATABASE_URL
    const cli = Bun.spawnSync([process.execPath, "src/main.ts", "gaps", "detect", "--symbol", "GBPUSD", "--from", "1970-01-01", "--to", "2099-01-01"], {
      cwd: join(import.meta.dir, ".."),
      env,
      stdout: "pipe",
      stderr: "pipe"
    })
    expect(cli.stderr.toString()).toBe("")
    expect(JSON.parse(cli.stdout.toString().trim().split("\n").at(-1)!)).toMatchObject({ command: "gaps detect", status: "ok", gaps: 0, new: 0, missing_bars: 0 })
  })

  test("HTTP: detect and quality on an empty symbol answer 0 gaps and no month; a derived timeframe is a 400; the seeded week keeps its one real gap", async () => {
    const api = await startApi(kind)
    cleanups.push(api.close)
    const body = { from: iso(everything.from), to: iso(everything.to) }
    const empty = await timed(() => api.request("/api/data/gaps/detect", post({ symbol: "GBPUSD", ...body })))
    expect(empty.result.status).toBe(200)
    expect(await empty.result.json()).toMatchObject({ count: 0, recorded: 0, gaps: [] })
    expect(empty.millis).toBeLessThan(1000)
    const quality = await api.request(`/api/data/quality/GBPUSD?from=${body.from}&to=${body.to}`)
    expect(quality.status).toBe(200)
    expect(((await quality.json()) as { months: unknown }).months).toEqual([])
    const derived = await api.request("/api/data/gaps/detect", post({ symbol: "EURUSD", timeframe: "H1", ...body }))
    expect(derived.status).toBe(400)
    expect(await derived.json()).toMatchObject({ error: "bad_request", field: "timeframe" })
    // The seeded week: only its 7-bar hole (the 2-bar one is under the tolerance), nothing before or after it.
    const seeded = (await (await api.request("/api/data/gaps/detect", post({ symbol: "EURUSD", ...body }))).json()) as { from: string; to: string; gaps: unknown }
    expect(seeded.gaps).toEqual([{ gap_start: iso(seedHoles[0]![0]), gap_end: iso(seedHoles[0]![0] + 6 * minute), missing_bars: 7 }])
    expect(Date.parse(seeded.from)).toBeGreaterThanOrEqual(seedFrom)
    expect(Date.parse(seeded.to)).toBeLessThanOrEqual(seedTo)
  })
})
