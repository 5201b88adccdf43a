/**
 * The load generator of `bench-api.ts --worst`, in a process of its own: `connections` clients each send the worst
 * reads one after another (every path in turn) for `seconds`, while one more client asks `/api/data/health` every
 * 10 ms and times each answer. Before that, each path is asked alone three times (header `X-Bench-Solo`), so the
 * server can say which one holds its event loop. Prints one JSON report on its last line.
 *
 *   bun scripts/bench-api-worst-load.ts '{"baseUrl":"http://127.0.0.1:PORT","paths":["/…"],"connections":8,"seconds":10}'
 */

export interface WorstPlan {
  readonly baseUrl: string
  readonly paths: ReadonlyArray<string>
  readonly connections: number
  readonly seconds: number
}

export interface Timings {
  readonly requests: number
  readonly failures: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
}

export interface WorstReport {
  readonly health: Timings
  /** Per worst path. */
  readonly reads: Readonly<Record<string, Timings & { readonly meanKB: number }>>
  readonly failureSamples: ReadonlyArray<string>
}

const percentile = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN
const round = (ms: number) => Math.round(ms * 100) / 100
const timings = (samples: ReadonlyArray<number>, failures: number): Timings => {
  const sorted = [...samples].sort((a, b) => a - b)
  return { requests: samples.length, failures, p50Ms: round(percentile(sorted, 50)), p99Ms: round(percentile(sorted, 99)), maxMs: round(sorted.at(-1) ?? Number.NaN) }
}

const main = async (plan: WorstPlan) => {
  for (const path of plan.paths) {
    for (let i = 0; i < 3; i++) await (await fetch(`${plan.baseUrl}${path}`, { headers: { "X-Bench-Solo": "1", "Accept-Encoding": "identity" } })).arrayBuffer()
  }
  const until = performance.now() + plan.seconds * 1000
  const failureSamples: Array<string> = []
  const fail = (what: string) => void (failureSamples.length < 10 && failureSamples.push(what))

  const health: Array<number> = []
  let healthFailures = 0
  const prober = (async () => {
    while (performance.now() < until) {
      const sent = performance.now()
      const response = await fetch(`${plan.baseUrl}/api/data/health`).catch((error) => error as Error)
      if (response instanceof Error || response.status !== 200) {
        healthFailures++
        fail(`health: ${response instanceof Error ? response.message : response.status}`)
      } else await response.arrayBuffer()
      health.push(performance.now() - sent)
      await Bun.sleep(Math.max(0, 10 - (performance.now() - sent)))
    }
  })()

  const reads = new Map(plan.paths.map((path) => [path, { samples: [] as Array<number>, failures: 0, bytes: 0 }]))
  const clients = Array.from({ length: plan.connections }, async (_, client) => {
    for (let i = client; performance.now() < until; i++) {
      const path = plan.paths[i % plan.paths.length]!
      const tally = reads.get(path)!
      const sent = performance.now()
      const response = await fetch(`${plan.baseUrl}${path}`, { headers: { "Accept-Encoding": "identity" } }).catch((error) => error as Error)
      if (response instanceof Error || response.status !== 200) {
        tally.failures++
        fail(`${path}: ${response instanceof Error ? response.message : `${response.status} ${(await response.text()).slice(0, 200)}`}`)
      } else {
        // A read counts when its answer is whole: JSON that parses, a page whose count is its length.
        const text = await response.text()
        tally.bytes += text.length
        const page = (() => {
          try {
            return JSON.parse(text) as { count?: number; candles?: ReadonlyArray<unknown> }
          } catch {
            return null
          }
        })()
        if (page === null || (page.candles !== undefined && page.count !== page.candles.length)) {
          tally.failures++
          fail(`${path}: ${page === null ? `not JSON (${text.length} bytes, ends ${JSON.stringify(text.slice(-80))})` : `count ${page.count}, ${page.candles!.length} bars`}`)
        }
      }
      tally.samples.push(performance.now() - sent)
    }
  })
  await Promise.all([prober, ...clients])

  const report: WorstReport = {
    health: timings(health, healthFailures),
    reads: Object.fromEntries(
      [...reads].map(([path, t]) => [path, { ...timings(t.samples, t.failures), meanKB: round(t.bytes / Math.max(1, t.samples.length - t.failures) / 1024) }])
    ),
    failureSamples
  }
  console.log(JSON.stringify(report))
}

if (import.meta.main) await main(JSON.parse(process.argv[2] ?? "{}") as WorstPlan)
