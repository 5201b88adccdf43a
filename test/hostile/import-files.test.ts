import { afterAll, describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, Either } from "effect"
import { createWriteStream, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { gzipSync, createGzip } from "node:zlib"
import { Importer } from "../../src/pipeline/import.ts"
import { csvFileLines, maxLineBytes, OverlongLine } from "../../src/sources/csv/file-lines.ts"
import { csvPages, type CsvSummary } from "../../src/sources/csv/pages.ts"
import { createTestDatabase, databaseKinds } from "../support/databases.ts"

const dir = mkdtempSync(join(tmpdir(), "candlekeep-hostile-import-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** `count` HistData lines of consecutive minutes from Monday 2021-01-04 00:00 (file clock), a gentle walk. */
const histdataLines = (count: number) => {
  const lines: Array<string> = []
  const start = Date.UTC(2021, 0, 4)
  for (let i = 0; i < count; i++) {
    const t = new Date(start + i * 60_000).toISOString()
    const stamp = `${t.slice(0, 4)}${t.slice(5, 7)}${t.slice(8, 10)} ${t.slice(11, 13)}${t.slice(14, 16)}00`
    const open = (1.2 + Math.sin(i / 500) * 0.01).toFixed(5)
    const close = (1.2 + Math.sin((i + 1) / 500) * 0.01).toFixed(5)
    const high = (Math.max(Number(open), Number(close)) + 0.0001).toFixed(5)
    const low = (Math.min(Number(open), Number(close)) - 0.0001).toFixed(5)
    lines.push(`${stamp};${open};${high};${low};${close};0`)
  }
  return lines
}

const summaryOf = async (path: string): Promise<CsvSummary> => {
  let summary: CsvSummary | undefined
  for await (const page of csvPages(csvFileLines(path), { format: "histdata", clock: "histdata" })) if (page.final) summary = page.summary
  return summary!
}

describe("a line over 64 KiB is a bad line, counted and never held whole (issue 16, item 8)", () => {
  test("a 256 MB line in a .gz file: one bad line naming its length, the lines around it read, memory flat", async () => {
    const path = join(dir, "long-line.csv.gz")
    const [before, after] = histdataLines(2)
    const lineBytes = 256 * 1024 * 1024
    // Written as a stream of 1 MiB chunks: the file is a few hundred KB, the line a quarter of a gigabyte.
    await new Promise<void>((resolve, reject) => {
      const gzip = createGzip()
      const out = createWriteStream(path)
      gzip.pipe(out).on("finish", resolve).on("error", reject)
      gzip.write(`${before}\n`)
      const chunk = Buffer.alloc(1024 * 1024, "7")
      let left = lineBytes / chunk.length
      const more = () => {
        while (left > 0) {
          left--
          if (!gzip.write(chunk)) return void gzip.once("drain", more)
        }
        gzip.end(`\n${after}\n`)
      }
      more()
    })

    // Read in a process of its own, so that memory other tests left behind does not count.
    const reader = `
      import { csvFileLines } from ${JSON.stringify(join(import.meta.dir, "../../src/sources/csv/file-lines.ts"))}
      Bun.gc(true)
      const baseline = process.memoryUsage().rss
      let peak = baseline
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 2)
      const seen = []
      for await (const line of csvFileLines(process.argv[2])) {
        peak = Math.max(peak, process.memoryUsage().rss)
        seen.push(typeof line === "string" ? line : { bytes: line.bytes })
      }
      clearInterval(sampler)
      console.log(JSON.stringify({ seen, peak: peak - baseline }))`
    writeFileSync(join(dir, "read-lines.ts"), reader)
    const child = Bun.spawn([process.execPath, join(dir, "read-lines.ts"), path], { stdout: "pipe", stderr: "inherit" })
    const [text, code] = await Promise.all([new Response(child.stdout).text(), child.exited])
    expect(code).toBe(0)
    const read = JSON.parse(text.trim().split("\n").at(-1)!) as { seen: Array<unknown>; peak: number }
    expect(read.seen).toEqual([before!, { bytes: lineBytes }, after!])
    // Reading the line whole would take at least its 256 MB; chunks that wait for the collector stay far below.
    console.log(`a ${lineBytes / 1024 / 1024} MB line read with RSS +${(read.peak / 1024 / 1024).toFixed(1)} MB at the peak`)
    expect(read.peak).toBeLessThan(128 * 1024 * 1024)

    const summary = await summaryOf(path)
    expect(summary).toMatchObject({ lines: 3, bars: 2, badLines: 1 })
    expect(summary.firstErrors[0]).toMatchObject({ line: 2 })
    expect(summary.firstErrors[0]!.reason).toContain(`longer than ${maxLineBytes.toLocaleString("en")} bytes`)
  }, 120_000)

  test("a line of exactly 64 KiB is still read (and judged by the format); one byte more is not", async () => {
    const path = join(dir, "edge.csv")
    writeFileSync(path, `${"1".repeat(maxLineBytes)}\n${"1".repeat(maxLineBytes + 1)}\r\n`)
    const seen: Array<unknown> = []
    for await (const line of csvFileLines(path)) seen.push(typeof line === "string" ? line.length : line)
    expect(seen).toEqual([maxLineBytes, new OverlongLine({ bytes: maxLineBytes + 2 })])
  })
})

describe.each(databaseKinds)("a broken file ends with its name, the line reached and what was stored, on the %s database (issue 16, item 8)", (kind) => {
  test("a truncated .gz after more than a page: nothing stored (the file is read whole first), the failure names file, line and count", async () => {
    const db = await createTestDatabase(kind)
    try {
      const lines = histdataLines(70_000)
      const whole = gzipSync(`${lines.join("\n")}\n`)
      const path = join(dir, `truncated-${kind}.csv.gz`)
      // Cut at 90%: more than a page of lines is readable before the archive ends.
      writeFileSync(path, whole.subarray(0, Math.floor(whole.length * 0.9)))

      const outcome = await db.run(Effect.either(Importer.use((i) => i.run({ file: path, format: "histdata", symbol: "EURUSD", clock: "histdata" }))))
      expect(Either.isLeft(outcome)).toBe(true)
      const failure = (outcome as Either.Left<{ _tag: string; file: string; line: number; stored: number; pages: number; storedThroughLine: number; message: string }, unknown>).left
      expect(failure._tag).toBe("ImportFailed")
      expect(failure).toMatchObject({ file: path, stored: 0, pages: 0, storedThroughLine: 0 })
      expect(failure.line).toBeGreaterThan(50_000)
      expect(failure.line).toBeLessThanOrEqual(70_000)
      expect(failure.message).toContain(path)
      expect(failure.message).toContain(`at line ${failure.line.toLocaleString("en")}`)
      expect(failure.message).toContain("nothing stored")

      // What it says was stored is what the database holds: nothing of a file that breaks off.
      const [row] = await db.run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`SELECT count(*)::int AS n FROM candles WHERE symbol = 'EURUSD' AND timeframe = 'M1'`))
      expect(row!.n).toBe(0)
    } finally {
      await db.close()
      await db.drop()
    }
  }, 120_000)
})
