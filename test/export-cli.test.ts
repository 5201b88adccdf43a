import { afterAll, describe, expect, test } from "bun:test"
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const root = join(import.meta.dir, "..")
const dirs: Array<string> = []
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "candlekeep-export-cli-"))
  dirs.push(dir)
  return dir
}
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })))

const run = (args: ReadonlyArray<string>, dataDir: string) => {
  const env: Record<string, string | undefined> = { ...process.env, LOG_LEVEL: "warning", DATA_DIR: dataDir }
  delete env.DATABASE_URL
  const result = Bun.spawnSync([process.execPath, "src/main.ts", ...args], { cwd: root, env, stdout: "pipe", stderr: "pipe" })
  return { code: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() }
}
const lastJson = (text: string) => JSON.parse(text.trim().split("\n").at(-1)!)

/** A real MT5 broker's "export bars" as the issue shows it: `time,Open,High,Low,Close,Volume`, server time (New York + 7). */
const mt5File = (dir: string, bars: number, badLines: ReadonlyArray<number> = []) => {
  const lines = ["time,Open,High,Low,Close,Volume"]
  let price = 3170
  for (let i = 0; i < bars; i++) {
    const at = new Date(Date.UTC(2025, 4, 15, 7, 35 + i)).toISOString().slice(0, 19).replace("T", " ")
    const close = Math.round((price + ((i * 7) % 5) * 0.1 - 0.2) * 100) / 100
    lines.push(badLines.includes(i) ? `${at},3170.1,n/a,3169.5,3170.8,12` : `${at},${price},${Math.max(price, close) + 0.3},${Math.min(price, close) - 0.3},${close},${100 + i}`)
    price = close
  }
  const file = join(dir, "XAUUSD_M1_mt5.csv")
  writeFileSync(file, `${lines.join("\n")}\n`)
  return file
}

const exportRows = (dataDir: string) => {
  const exported = run(["export", "--symbol", "XAUUSD", "--from", "2025-05-15", "--to", "2025-05-16", "--format", "csv", "--out", "-"], dataDir)
  expect(exported.code).toBe(0)
  return { lines: exported.stdout.trimEnd().split("\n"), summary: lastJson(exported.stderr) }
}

describe("export and import on the command line", () => {
  test("a file in the wrong format fails with its first bad lines and the format tried, exit 1, and stores nothing", () => {
    const dir = tempDir()
    const data = join(dir, "data")
    const wrong = run(["import", "--file", mt5File(dir, 50), "--format", "histdata", "--symbol", "XAUUSD"], data)
    expect(wrong.code).toBe(1)
    const summary = lastJson(wrong.stdout)
    expect(summary).toMatchObject({ command: "import", status: "failed", format: "histdata", lines: 51, bad_lines: 51, stored: 0 })
    expect(summary.error).toContain("reads as histdata")
    expect(summary.first_errors[0]).toMatchObject({ line: 1, text: "time,Open,High,Low,Close,Volume" })
    expect(summary.first_errors.length).toBe(10)
    expect(wrong.stderr).toContain('line 2: expected 6 fields separated by ";"')

    // Two bad lines in 150 (1.3 %): refused whole, although 148 would parse.
    const mostly = run(["import", "--file", mt5File(dir, 150, [40, 90]), "--format", "csv", "--symbol", "XAUUSD", "--source-tz", "new-york+7"], data)
    expect(mostly.code).toBe(1)
    expect(lastJson(mostly.stdout)).toMatchObject({ status: "failed", format: "csv", lines: 150, bad_lines: 2, first_errors: [{ line: 42 }, { line: 92 }] })
    const nothing = exportRows(data)
    expect(nothing.lines).toEqual(["symbol,ts,open,high,low,close,volume,trades,vwap"])
    expect(nothing.summary).toMatchObject({ command: "export", status: "ok", rows: 0 })
  }, 120_000)

  test("the issue's MT5 export imports through the generic csv format on the broker's clock, and exports to stdout with the summary on stderr", () => {
    const dir = tempDir()
    const data = join(dir, "data")
    // One bad line in 200 (0.5 %) is within the 1 % and reported.
    const imported = run(["import", "--file", mt5File(dir, 200, [100]), "--format", "csv", "--symbol", "XAUUSD", "--source-tz", "new-york+7"], data)
    expect(imported.code).toBe(0)
    expect(lastJson(imported.stdout)).toMatchObject({ command: "import", status: "ok", lines: 200, bars: 199, stored: 199, bad_lines: 1 })
    const { lines, summary } = exportRows(data)
    expect(summary).toMatchObject({ command: "export", status: "ok", format: "csv", rows: 199, out: "-" })
    // 07:35 on a New York + 7 server in May (US summer time, GMT+3) is 04:35 UTC.
    expect(lines[1]).toStartWith("XAUUSD,2025-05-15T04:35:00.000Z,3170,")
    expect(lines.length).toBe(200)
  }, 120_000)

  test("a wrong --format or --fill fails with one clear line and writes no file", () => {
    const dir = tempDir()
    const out = join(dir, "x.xlsx")
    const result = run(["export", "--symbol", "EURUSD", "--from", "2021-01-04", "--to", "2021-01-05", "--format", "xlsx", "--out", out], join(dir, "data"))
    expect(result.code).toBe(1)
    expect(lastJson(result.stdout)).toMatchObject({ command: "export", status: "failed", error: "unknown --format xlsx: use csv, jsonl or parquet" })
    expect(result.stderr.trim().split("\n")).toEqual(["candlekeep: unknown --format xlsx: use csv, jsonl or parquet"])
    expect(existsSync(out)).toBe(false)
    const fill = run(["export", "--symbol", "EURUSD", "--from", "2021-01-04", "--to", "2021-01-05", "--format", "csv", "--fill", "zero", "--out", out], join(dir, "data"))
    expect(lastJson(fill.stdout)).toMatchObject({ status: "failed", error: "unknown --fill zero: use none, null or prev" })
    expect(existsSync(out)).toBe(false)
    expect(existsSync(join(dir, "data"))).toBe(false)
  }, 60_000)
})
