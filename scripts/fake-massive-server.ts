/**
 * The Massive fake (test/fakes/massive.ts) in a process of its own, serving seeded benchmark bars, so a
 * benchmark's RSS is its own and not the fake's copy of every bar.
 *
 *   bun scripts/fake-massive-server.ts --bars N --api-key KEY [--page-size N] [--seed N]
 *
 * Prints one JSON line on stdout — `{"baseUrl":…,"streams":[{"symbol","ticker","from","to","bars"}]}`, `to`
 * exclusive — and serves until its stdin closes (its parent exited) or it is killed.
 */
import { generateStreams } from "./bench-data.ts"

const minute = 60_000
import { startMassiveFake } from "../test/fakes/massive.ts"

const flag = (name: string): string | undefined => {
  const at = process.argv.indexOf(name)
  return at >= 0 ? process.argv[at + 1] : undefined
}
const positiveInt = (name: string, fallback?: number): number => {
  const value = Number(flag(name) ?? fallback)
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} expects a positive integer, got ${flag(name)}`)
  return value
}

const serve = async () => {
  const apiKey = flag("--api-key")
  if (apiKey === undefined) throw new Error("--api-key is required")
  const streams = generateStreams(positiveInt("--bars"), flag("--seed") === undefined ? undefined : positiveInt("--seed"), positiveInt("--symbols", 5))
  const fake = startMassiveFake({
    bars: new Map(streams.map((stream) => [stream.ticker, stream.candles])),
    apiKeys: [apiKey],
    pageSize: positiveInt("--page-size", 50_000)
  })

  console.log(
    JSON.stringify({
      baseUrl: fake.baseUrl,
      streams: streams.map((stream) => ({
        symbol: stream.symbol,
        ticker: stream.ticker,
        from: stream.candles[0]?.ts ?? 0,
        to: (stream.candles.at(-1)?.ts ?? 0) + minute,
        bars: stream.candles.length
      }))
    })
  )

  // An orphan would serve forever: leave with the parent, whose end closes our stdin.
  for await (const _ of process.stdin) void _
  await fake.stop()
  process.exit(0)
}

if (import.meta.main) await serve()
