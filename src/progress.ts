import { Effect } from "effect"
import type { Progress } from "./pipeline/backfill.ts"

const formatCount = (n: number) => n.toLocaleString("en-US")

const formatDuration = (seconds: number): string => {
  if (!Number.isFinite(seconds)) return "?"
  const s = Math.round(seconds)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`
}

/**
 * Reports a run's progress on stderr: a redrawn bar on a terminal (bars, pages, rate, ETA),
 * one plain line per page otherwise (logs, CI, pipes).
 */
export const progressReporter = (startedAt: number, isTerminal = process.stderr.isTTY === true) => {
  let drawn = false
  const report = (p: Progress) =>
    Effect.sync(() => {
      const elapsed = (Date.now() - startedAt) / 1000
      const share = p.to > p.from ? Math.min(1, (p.reached - p.from) / (p.to - p.from)) : 1
      const rate = elapsed > 0 ? p.fetched / elapsed : 0
      const eta = share > 0 ? (elapsed / share) * (1 - share) : Number.POSITIVE_INFINITY
      const reached = new Date(p.reached).toISOString().slice(0, 16).replace("T", " ")
      if (isTerminal) {
        const width = 24
        const filled = Math.round(share * width)
        const bar = `${"█".repeat(filled)}${"░".repeat(width - filled)}`
        process.stderr.write(
          `\r${p.symbol} ${p.timeframe} ${bar} ${(share * 100).toFixed(1).padStart(5)}%  ${formatCount(p.fetched)} bars  ` +
            `${p.pages} pages  ${formatCount(Math.round(rate))} bars/s  ETA ${formatDuration(eta)}  at ${reached}   `
        )
        drawn = true
      } else {
        process.stderr.write(
          `${p.symbol} ${p.timeframe} page ${p.pages}: at ${reached} (${(share * 100).toFixed(1)}%), ${p.fetched} bars fetched, ` +
            `${p.stored} stored, ${p.rejected} rejected, ${p.retries} retries\n`
        )
      }
    })
  const finish = Effect.sync(() => {
    if (drawn) process.stderr.write("\n")
  })
  return { report, finish }
}
