/**
 * The API benchmark's load generator, run by scripts/bench-api.ts in a process of its own so its CPU is not the
 * server's event loop: `connections` clients each ask for one page of bars over a random range, again and again,
 * for a warm-up and then `seconds`; every answer must be a 200 holding exactly `limit` bars.
 *
 *   bun scripts/bench-api-load.ts '<LoadPlan as JSON>'
 *
 * Prints one JSON line (LoadReport) on stdout.
 */

export interface LoadPlan {
  readonly baseUrl: string
  readonly symbol: string
  readonly timeframe: string
  readonly limit: number
  /** Range starts are drawn, minute-aligned, from [firstStart, lastStart); each range is `spanMillis` long. */
  readonly firstStart: number
  readonly lastStart: number
  readonly spanMillis: number
  readonly connections: number
  readonly warmupSeconds: number
  readonly seconds: number
  /** Ask for gzip as a browser would; otherwise identity, as wrk and most API clients do. */
  readonly gzip: boolean
  readonly seed: number
}

export interface LoadReport {
  readonly requests: number
  readonly failures: number
  /** The first few failures, for a person. */
  readonly failureSamples: ReadonlyArray<string>
  readonly seconds: number
  readonly rps: number
  readonly p50Ms: number
  readonly p90Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  readonly meanBytes: number
  /** Requests sent, warm-up included, and the CPU the sending process spent per request over all of them. */
  readonly totalRequests: number
  readonly cpuMsPerRequest: number
}

const minute = 60_000

/** Nearest-rank percentile of sorted values. */
const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!

/** mulberry32: each connection draws its own reproducible ranges. */
const seeded = (seed: number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The range starts connection `index` asks for, one per call: the same draw for the API and the SQL baseline. */
export const rangeStarts = (plan: Pick<LoadPlan, "firstStart" | "lastStart" | "seed">, index: number) => {
  const random = seeded(plan.seed + index)
  const slots = Math.floor((plan.lastStart - plan.firstStart) / minute)
  return () => plan.firstStart + Math.floor(random() * slots) * minute
}

/**
 * One round's clock and counts: requests sent after the warm-up are measured (those still in flight at the end are
 * waited for and counted); every request, warm-up included, counts for the CPU spent per request.
 */
export const makeTally = (warmupSeconds: number, seconds: number) => {
  const warmupEnd = performance.now() + warmupSeconds * 1000
  const measureEnd = warmupEnd + seconds * 1000
  const cpuStart = process.cpuUsage()
  const latencies: Array<number> = []
  const failureSamples: Array<string> = []
  let failures = 0
  let bytes = 0
  let totalRequests = 0
  let lastDone = warmupEnd
  return {
    /** Whether a request may still be sent. */
    open: () => performance.now() < measureEnd,
    record: (sent: number, done: number, failure: string | null, bodyBytes = 0) => {
      totalRequests++
      if (sent < warmupEnd) return
      lastDone = Math.max(lastDone, done)
      latencies.push(done - sent)
      bytes += bodyBytes
      if (failure !== null && failures++ < 5) failureSamples.push(failure)
    },
    report: (): LoadReport => {
      const cpu = process.cpuUsage(cpuStart)
      const elapsed = (lastDone - warmupEnd) / 1000
      const sorted = [...latencies].sort((a, b) => a - b)
      const round = (ms: number) => Math.round(ms * 100) / 100
      return {
        requests: sorted.length,
        failures,
        failureSamples,
        seconds: round(elapsed),
        rps: Math.round(sorted.length / elapsed),
        p50Ms: round(percentile(sorted, 50)),
        p90Ms: round(percentile(sorted, 90)),
        p99Ms: round(percentile(sorted, 99)),
        maxMs: round(sorted.at(-1) ?? Number.NaN),
        meanBytes: sorted.length === 0 ? 0 : Math.round(bytes / sorted.length),
        totalRequests,
        cpuMsPerRequest: Math.round((cpu.user + cpu.system) / totalRequests) / 1000
      }
    }
  }
}

const run = async (plan: LoadPlan): Promise<LoadReport> => {
  const expected = `"count":${plan.limit},`
  const headers = { "Accept-Encoding": plan.gzip ? "gzip" : "identity" }
  const decoder = new TextDecoder()
  const tally = makeTally(plan.warmupSeconds, plan.seconds)

  const connection = async (index: number) => {
    const nextStart = rangeStarts(plan, index)
    while (tally.open()) {
      const start = nextStart()
      const url =
        `${plan.baseUrl}/api/data/candles?symbol=${plan.symbol}&timeframe=${plan.timeframe}` +
        `&start=${new Date(start).toISOString()}&end=${new Date(start + plan.spanMillis).toISOString()}&limit=${plan.limit}`
      const sent = performance.now()
      let failure: string | null = null
      let bytes = 0
      try {
        const response = await fetch(url, { headers })
        const body = new Uint8Array(await response.arrayBuffer())
        bytes = body.length
        // The count sits near the start of the answer: no need to parse a whole page to check it.
        const head = decoder.decode(body.subarray(0, 80))
        if (response.status !== 200) failure = `${response.status} ${head}`
        else if (!head.includes(expected)) failure = `expected ${expected} in ${head}`
      } catch (error) {
        failure = error instanceof Error ? error.message : String(error)
      }
      tally.record(sent, performance.now(), failure === null ? null : `${url}: ${failure}`, bytes)
    }
  }

  await Promise.all(Array.from({ length: plan.connections }, (_, i) => connection(i)))
  return tally.report()
}

if (import.meta.main) {
  const plan = JSON.parse(process.argv[2] ?? "{}") as LoadPlan
  console.log(JSON.stringify(await run(plan)))
}
