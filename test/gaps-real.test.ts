import { afterEach, describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, Option, Redacted } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { AppConfigShape } from "../src/config.ts"
import { isOpen, sessions } from "../src/domain/calendar.ts"
import type { Candle } from "../src/domain/candle.ts"
import type { Gap } from "../src/domain/gaps.ts"
import { Gaps } from "../src/pipeline/gaps.ts"
import { Importer } from "../src/pipeline/import.ts"
import { csvFileLines } from "../src/sources/csv/file-lines.ts"
import { CandleStore } from "../src/store/candle-store.ts"
import { GapRepo } from "../src/store/gap-repo.ts"
import { SyncRepo } from "../src/store/sync-repo.ts"
import { type MassiveFault, startMassiveFake } from "./fakes/massive.ts"
import { createTestDatabase, databaseKinds, type DatabaseKind, type TestDatabase } from "./support/databases.ts"
import { hasSharedData, loadHistdata, noSharedDataReason, sharedDataDir } from "./support/shared-data.ts"

const minute = 60_000
const at = (iso: string) => Date.parse(iso)
const iso = (ms: number) => new Date(ms).toISOString().slice(0, 16)
const asTuples = (gaps: ReadonlyArray<Gap>) => gaps.map((g) => [iso(g.start), iso(g.end), g.missingBars] as const)

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

const database = async (kind: DatabaseKind, overrides: Partial<AppConfigShape> = {}) => {
  const db = await createTestDatabase(kind, overrides)
  cleanups.push(async () => {
    await db.close()
    await db.drop()
  })
  return db
}

const store = (db: TestDatabase, symbol: string, candles: ReadonlyArray<Candle>) =>
  db.run(CandleStore.use((s) => s.upsertPage({ symbol, timeframe: "M1", source: "import", candles })))

const storedStamps = (db: TestDatabase, symbol: string, from: number, to: number) =>
  db.run(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ ts: Date }>`
      SELECT ts FROM candles WHERE symbol = ${symbol} AND timeframe = 'M1' AND ts >= ${new Date(from)} AND ts < ${new Date(to)} ORDER BY ts`)
  ).then((rows) => rows.map((r) => r.ts.getTime()))

/**
 * How stored EURUSD bars in [from, to) sit in the forex calendar: bars in closed minutes, each weekly session's
 * first and last bar against its open and close, and the gaps detection finds at a session's edge.
 */
const weeklyStructure = async (db: TestDatabase, from: number, to: number) => {
  const stamps = await storedStamps(db, "EURUSD", from, to)
  const weeks = sessions("forex", from, to).map((session) => {
    const inside = stamps.filter((t) => t >= session.from && t < session.to)
    return { open: session.from, close: session.to, firstBar: inside[0] ?? Number.NaN, lastBar: inside.at(-1) ?? Number.NaN }
  })
  const { gaps } = await db.run(Gaps.use((g) => g.detect({ symbol: "EURUSD", timeframe: "M1", from, to })))
  return {
    barsWhileClosed: stamps.filter((t) => !isOpen("forex", t)).length,
    weeks,
    /** Minutes from each session's open to its first bar, and from its last bar to its close. */
    edgeMinutes: weeks.map((w) => [(w.firstBar - w.open) / minute, (w.close - minute - w.lastBar) / minute]),
    gaps,
    gapsAtAWeekend: gaps.filter((g) => weeks.some((w) => g.start === w.open || g.end === w.close - minute))
  }
}

describe.each(databaseKinds)("gaps in real files on the %s database", (kind) => {
  test.skipIf(!hasSharedData)(
    "Dukascopy imported with its flat bars dropped sits in the forex week exactly like the HistData file: no bar while closed, every week from the open to the close, no gap at a weekend",
    async () => {
      const db = await database(kind)
      const dukascopy = await db.run(
        Importer.use((i) =>
          i.run({ file: join(sharedDataDir, "dukascopy_EURUSD_M1_BID_GMT_2018-10_weekends-filled.csv.gz"), format: "dukascopy", symbol: "EURUSD", clock: "utc" })
        )
      )
      expect(dukascopy).toMatchObject({ lines: 44_640, droppedFlatBars: 11_531, bars: 33_109, stored: 33_109, rejected: 0 })

      // Four weeks of HistData across both 2021 clock changes (US 03-14, Europe 03-28), imported by the exporter's real clock.
      const dir = mkdtempSync(join(tmpdir(), "candlekeep-gaps-real-"))
      cleanups.push(async () => rmSync(dir, { recursive: true, force: true }))
      const marchLines: Array<string> = []
      for await (const line of csvFileLines(join(sharedDataDir, "histdata_EURUSD_M1_2021-01-03_to_2021-05-21.csv.gz"))) {
        const day = typeof line === "string" ? line.slice(0, 8) : ""
        if (typeof line === "string" && day >= "20210307" && day <= "20210402") marchLines.push(line)
      }
      writeFileSync(join(dir, "histdata-march.csv"), `${marchLines.join("\n")}\n`)
      const histdata = await db.run(
        Importer.use((i) => i.run({ file: join(dir, "histdata-march.csv"), format: "histdata", symbol: "EURUSD", clock: "histdata" }))
      )
      expect(histdata).toMatchObject({ bars: marchLines.length, droppedFlatBars: 0, stored: marchLines.length, rejected: 0 })

      const october = await weeklyStructure(db, at("2018-10-01T00:00:00Z"), at("2018-11-01T00:00:00Z"))
      const march = await weeklyStructure(db, at("2021-03-07T22:00:00Z"), at("2021-04-02T21:00:00Z"))
      // New York is on summer time all October 2018 (until 11-04): the week is Sunday 21:00 → Friday 21:00 UTC,
      // also on 10-28 when Europe had already changed. The file's own month cuts the first and last week.
      expect(october.weeks.map((w) => [iso(w.firstBar), iso(w.lastBar)])).toEqual([
        ["2018-10-01T00:00", "2018-10-05T20:59"],
        ["2018-10-07T21:00", "2018-10-12T20:59"],
        ["2018-10-14T21:00", "2018-10-19T20:59"],
        ["2018-10-21T21:00", "2018-10-26T20:59"],
        ["2018-10-28T21:00", "2018-10-31T23:59"]
      ])
      expect(march.weeks.map((w) => [iso(w.firstBar), iso(w.lastBar)])).toEqual([
        ["2021-03-07T22:00", "2021-03-12T21:59"],
        ["2021-03-14T21:00", "2021-03-19T20:59"],
        ["2021-03-21T21:00", "2021-03-26T20:59"],
        ["2021-03-28T21:00", "2021-04-02T20:59"]
      ])
      // The same structure in both: nothing stored while the market is closed, every week's first and last bar
      // on the calendar's open and close, and no gap against a weekend.
      for (const structure of [october, march]) {
        expect(structure.barsWhileClosed).toBe(0)
        expect(structure.edgeMinutes.flat().filter((m) => m !== 0)).toEqual([])
        expect(structure.gapsAtAWeekend).toEqual([])
      }
      // What is left are holes inside the weeks: none in Dukascopy's month; in HistData's, quiet minutes after the
      // 17:00 rollover and the hour its export lost at the European change.
      expect(asTuples(october.gaps)).toEqual([])
      expect(asTuples(march.gaps)).toEqual([
        ["2021-03-07T22:34", "2021-03-07T22:37", 4],
        ["2021-03-14T21:15", "2021-03-14T21:18", 4],
        ["2021-03-28T21:14", "2021-03-28T21:17", 4],
        ["2021-03-28T23:00", "2021-03-28T23:59", 60],
        ["2021-04-01T23:17", "2021-04-01T23:20", 4]
      ])
    },
    30_000
  )

  test.skipIf(!hasSharedData)(
    "holes cut into real XAUUSD weeks are found exactly: split at gold's daily pause, ending at the early, Friday and Good Friday closes; a 3-bar hole is no gap",
    async () => {
      const db = await database(kind)
      // MLK day (2021-01-18, early close 13:00 New York) and Easter (Good Friday 2021-04-02 closed): gold's own hours.
      const mlkWeek = { from: at("2021-01-17T23:00:00Z"), to: at("2021-01-22T22:00:00Z") }
      const easterWeek = { from: at("2021-03-28T22:00:00Z"), to: at("2021-04-01T21:00:00Z") }
      const gold = loadHistdata("XAUUSD").filter((b) => [mlkWeek, easterWeek].some((w) => b.ts >= w.from && b.ts < w.to))
      await store(db, "XAUUSD", gold)
      // The stream was synced to the Good Friday close: its history ends there, so bars missing before it are gaps.
      await db.run(SyncRepo.use((r) => r.advance({ symbol: "XAUUSD", timeframe: "M1", watermark: easterWeek.to, barsStored: 0 })))
      const detect = (week: { from: number; to: number }) =>
        db.run(Gaps.use((g) => g.detect({ symbol: "XAUUSD", timeframe: "M1", ...week })))

      // The file's own gaps first: gold's daily pauses, the early close and Good Friday are none of them; the hour
      // HistData's export lost at the European clock change (Sunday 19:00 New York, gold open) is one.
      const before = [await detect(mlkWeek), await detect(easterWeek)]
      expect(before.map((d) => asTuples(d.gaps))).toEqual([[], [["2021-03-28T23:00", "2021-03-28T23:59", 60]]])

      // Cut runs of stored bars, each [first, last] inclusive, between bars or closed minutes so the hole is exactly the cut.
      const cuts = [
        ["2021-01-18T17:45", "2021-01-18T17:59"], // MLK day 12:45–12:59 New York, up to the early close
        ["2021-01-19T15:00", "2021-01-19T15:24"], // mid-session
        ["2021-01-21T10:00", "2021-01-21T10:02"], // exactly GAP_MIN_BARS
        ["2021-01-21T12:00", "2021-01-21T12:03"], // GAP_MIN_BARS + 1
        ["2021-01-22T21:40", "2021-01-22T21:59"], // the last twenty bars before the Friday 17:00 close
        ["2021-03-28T22:00", "2021-03-28T22:07"], // the week's first eight bars, from the 18:00 Sunday open
        ["2021-03-30T20:50", "2021-03-30T22:09"], // 16:50–18:09 New York, across the daily pause
        ["2021-04-01T20:40", "2021-04-01T20:59"] // the last twenty bars before the Good Friday weekend
      ].map(([first, last]) => ({ first: at(`${first}:00Z`), last: at(`${last}:00Z`) }))
      const present = new Set(gold.map((b) => b.ts))
      const absentAroundCuts = cuts.flatMap((cut) =>
        Array.from({ length: (cut.last - cut.first) / minute + 3 }, (_, i) => cut.first + (i - 1) * minute)
          .filter((t) => isOpen("metal", t) && !present.has(t))
          .map(iso)
      )
      expect(absentAroundCuts).toEqual([])
      const cutStamps = gold.filter((b) => cuts.some((c) => b.ts >= c.first && b.ts <= c.last)).map((b) => new Date(b.ts))
      expect(cutStamps.length).toBe(15 + 25 + 3 + 4 + 20 + 8 + 20 + 20)
      await db.run(
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql`
          DELETE FROM candles WHERE symbol = 'XAUUSD' AND timeframe = 'M1' AND ts IN ${sql.in(cutStamps)}`)
      )

      const after = [await detect(mlkWeek), await detect(easterWeek)]
      const natural = new Set(before.flatMap((d) => asTuples(d.gaps)).map((g) => g.join()))
      const found = after.flatMap((d) => asTuples(d.gaps))
      expect(found.filter((g) => !natural.has(g.join()))).toEqual([
        ["2021-01-18T17:45", "2021-01-18T17:59", 15],
        ["2021-01-19T15:00", "2021-01-19T15:24", 25],
        ["2021-01-21T12:00", "2021-01-21T12:03", 4],
        ["2021-01-22T21:40", "2021-01-22T21:59", 20],
        ["2021-03-28T22:00", "2021-03-28T22:07", 8],
        ["2021-03-30T20:50", "2021-03-30T20:59", 10],
        ["2021-03-30T22:00", "2021-03-30T22:09", 10],
        ["2021-04-01T20:40", "2021-04-01T20:59", 20]
      ])
      // The natural gap is still there, unchanged, and only the new ones were recorded.
      expect(found.filter((g) => natural.has(g.join())).length).toBe(natural.size)
      expect(after.map((d) => d.recorded)).toEqual([4, 4])
    },
    30_000
  )

  test.skipIf(!hasSharedData)(
    "a gap the vendor keeps failing on is asked GAP_FILL_MAX_ATTEMPTS times, stays open with the vendor's error, and is then left alone",
    async () => {
      const start = at("2021-01-05T08:00:00Z")
      const real = loadHistdata("EURUSD").filter((b) => b.ts >= start && b.ts < start + 240 * minute)
      expect(real.length).toBe(240)
      const failing = real.slice(60, 70)
      const refetchable = real.slice(150, 162)
      // For the failing range the vendor answers JSON the client does not understand: a permanent error, no retry waits.
      const faultFor = (url: URL): MassiveFault | null => (url.pathname.includes(`/${failing[0]!.ts}/`) ? "schema-mismatch" : null)
      const fake = startMassiveFake({ apiKeys: ["gap-key"], bars: new Map([["C:EURUSD", real]]), faults: (_, url) => faultFor(url) })
      cleanups.push(() => fake.stop())
      const db = await database(kind, {
        gaps: { minBars: 3, maxAttempts: 2 },
        massive: { apiKey: Option.some(Redacted.make("gap-key")), baseUrl: fake.baseUrl, plan: "paid", requestsPerMinute: Option.none(), maxConcurrency: 2, timeoutSeconds: 5, settleSeconds: 120, delayMinutes: Option.none() }
      })
      const holes = new Set([...failing, ...refetchable].map((b) => b.ts))
      await store(db, "EURUSD", real.filter((b) => !holes.has(b.ts)))
      const range = { symbol: "EURUSD", timeframe: "M1" as const, from: start, to: start + 240 * minute }
      expect(asTuples((await db.run(Gaps.use((g) => g.detect(range)))).gaps)).toEqual([
        ["2021-01-05T09:00", "2021-01-05T09:09", 10],
        ["2021-01-05T10:30", "2021-01-05T10:41", 12]
      ])
      const fill = () => db.run(Gaps.use((g) => g.fill(range)))
      const gaps = () => db.run(GapRepo.use((r) => r.list("EURUSD", "M1", null)))
      const failedRequests = () => fake.requests.filter((r) => r.fault !== null).length

      expect(await fill()).toEqual({ attempted: 2, filled: 1, partiallyFilled: 0, unfillable: 0, failed: 1, barsRecovered: 12 })
      // The refetchable hole holds the vendor's exact bars again.
      const refilled = await db.run(
        CandleStore.use((s) => s.range({ symbol: "EURUSD", timeframe: "M1", from: refetchable[0]!.ts, to: refetchable.at(-1)!.ts + minute, limit: 100 }))
      )
      expect(refilled.map((b) => [b.ts, b.open, b.high, b.low, b.close])).toEqual(refetchable.map((b) => [b.ts, b.open, b.high, b.low, b.close]))
      expect(await fill()).toEqual({ attempted: 1, filled: 0, partiallyFilled: 0, unfillable: 0, failed: 1, barsRecovered: 0 })
      expect(failedRequests()).toBe(2)

      // Nothing came back, so nothing is claimed about the vendor's data: the gap is still open, its attempts used up,
      // and the vendor's words are its evidence.
      const [capped, filled] = await gaps()
      expect([capped!.status, capped!.attempts, capped!.missingBars, filled!.status]).toEqual(["detected", 2, 10, "filled"])
      expect((capped!.evidence as { error: string }).error).toContain("Massive")
      expect((capped!.evidence as { error: string }).error).toContain("2021-01-05T09:00:00.000Z")

      // Further runs, after a new detection too, do not ask the vendor again and change nothing.
      const requests = fake.requests.length
      expect((await db.run(Gaps.use((g) => g.detect(range)))).recorded).toBe(0)
      expect((await fill()).attempted).toBe(0)
      expect(fake.requests.length).toBe(requests)
      expect((await gaps()).map((g) => [g.status, g.attempts, g.missingBars])).toEqual([["detected", 2, 10], ["filled", 1, 12]])
      const quality = await db.run(Gaps.use((g) => g.report(range)))
      expect(quality.months).toMatchObject([{ month: "2021-01", present: 230, gapsOpen: 1, gapsFilled: 1, gapsUnfillable: 0 }])
    },
    30_000
  )
})

if (!hasSharedData) console.log(`gap real-data tests ${noSharedDataReason}`)
