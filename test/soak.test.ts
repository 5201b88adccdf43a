import { expect, test } from "bun:test"
import { join } from "node:path"
import { hasSharedData, noSharedDataReason, sharedDataDir } from "./support/shared-data.ts"

// The whole service for one minute on the embedded database, through SIGKILLs (one of them in the middle of a
// page), a vendor answering 429s, 502 pages, truncated and slow answers, a late ticker, a delayed plan and a
// cut-off, then compared bar by bar and rollup bucket by bucket with the vendor's source (scripts/soak.ts).
if (!hasSharedData) console.log(`one-minute soak ${noSharedDataReason}`)

test.skipIf(!hasSharedData)("a one-minute soak on the embedded database loses, duplicates and alters no bar and no rollup bucket", async () => {
  const child = Bun.spawn(
    [process.execPath, "scripts/soak.ts", "--minutes", "1", "--database", "embedded", "--data-dir", sharedDataDir, "--seed", "15"],
    { cwd: join(import.meta.dir, ".."), stdout: "pipe", stderr: "pipe" }
  )
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
  const last = out.trim().split("\n").at(-1) ?? ""
  if (code !== 0 || !last.startsWith("{")) throw new Error(`the soak ended with ${code}: ${out.slice(-2000)}\n${err.slice(-3000)}`)
  console.log(out)
  const summary = JSON.parse(last) as Record<string, number | string>
  expect(summary.bench).toBe("soak")
  expect(summary.kills as number).toBeGreaterThanOrEqual(3)
  expect(summary.bars_expected as number).toBeGreaterThan(10_000)
  expect({
    missing: summary.missing,
    duplicates: summary.duplicates,
    mismatched: summary.mismatched,
    rollups_mismatched: summary.rollups_mismatched
  }).toEqual({ missing: 0, duplicates: 0, mismatched: 0, rollups_mismatched: 0 })
  expect(summary.bars_stored).toBe(summary.bars_expected)
}, 900_000)
