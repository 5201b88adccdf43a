import { Layer, ManagedRuntime, Option, Redacted } from "effect"
import type { AppConfigShape } from "../../src/config.ts"
import { isOpen } from "../../src/domain/calendar.ts"
import type { Candle } from "../../src/domain/candle.ts"
import { makeApp } from "../../src/http/app.ts"
import { runEffectWith } from "../../src/http/run-effect.ts"
import { Backfill } from "../../src/pipeline/backfill.ts"
import { ClusterLive } from "../../src/supervisor/cluster.ts"
import { Jobs } from "../../src/supervisor/jobs.ts"
import { Readiness } from "../../src/supervisor/readiness.ts"
import { SupervisorLive } from "../../src/supervisor/supervisor.ts"
import { startMassiveFake, type MassiveFake } from "../fakes/massive.ts"
import { startMetaApiFake, type MetaApiFake, type MetaApiFakeOptions } from "../fakes/metaapi.ts"
import { quietBars } from "./bars.ts"
import { createTestDatabase, storeLayer, type DatabaseKind } from "./databases.ts"

const minute = 60_000

/** The seeded history: Monday 2021-01-04 00:00 UTC to Saturday 2021-01-09 00:00 (a whole forex week). */
export const seedFrom = Date.parse("2021-01-04T00:00:00Z")
export const seedTo = Date.parse("2021-01-09T00:00:00Z")

/** Holes cut into the seeded week (open minutes the vendor has no bar for): [first missing, count]. */
export const seedHoles: ReadonlyArray<readonly [number, number]> = [
  [Date.parse("2021-01-05T10:00:00Z"), 7],
  [Date.parse("2021-01-06T14:30:00Z"), 2]
]

/** A deterministic random walk over the week's open forex minutes, without the holes. */
export const seedBars = (): ReadonlyArray<Candle> => {
  let seed = 42
  const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31)
  const missing = new Set(seedHoles.flatMap(([start, count]) => Array.from({ length: count }, (_, i) => start + i * minute)))
  const bars: Array<Candle> = []
  let price = 1.2250
  for (let ts = seedFrom; ts < seedTo; ts += minute) {
    if (!isOpen("forex", ts) || missing.has(ts)) continue
    const open = price
    const close = Math.round((open + (random() - 0.5) * 0.0004) * 100_000) / 100_000
    const high = Math.round((Math.max(open, close) + random() * 0.0002) * 100_000) / 100_000
    const low = Math.round((Math.min(open, close) - random() * 0.0002) * 100_000) / 100_000
    bars.push({ ts, open, high, low, close, volume: 1 + Math.floor(random() * 50), vwap: null, trades: null })
    price = close
  }
  return bars
}

/** The broker side of a harness: account `acc-1` quotes EURUSD as `EURUSDm`, its closes `brokerOffset` above the vendor's. */
export const brokerOffset = 0.0003
export const brokerAccount = "acc-1"
/** Minutes the broker lacks (the vendor has them) in the seeded week. */
export const brokerMissing: ReadonlyArray<number> = [Date.parse("2021-01-05T11:10:00Z"), Date.parse("2021-01-05T11:11:00Z"), Date.parse("2021-01-05T11:40:00Z")]

export interface ApiHarness {
  readonly config: AppConfigShape
  readonly fake: MassiveFake
  readonly broker: MetaApiFake | null
  readonly bars: ReadonlyArray<Candle>
  readonly request: (path: string, init?: RequestInit) => Promise<Response>
  /** The app's own fetch handler, to serve it on a real socket (Bun.serve) where connections matter. */
  readonly fetch: (request: Request) => Response | Promise<Response>
  readonly runtime: ManagedRuntime.ManagedRuntime<any, unknown>
  readonly markReady: () => Promise<void>
  /** From now on the vendor takes two minutes to answer. */
  readonly stallVendor: () => void
  /** From now on the vendor refuses the key (401 Unknown API Key). */
  readonly refuseKey: () => void
  readonly close: () => Promise<void>
}

/** A port nobody listens on now, for the cluster's runner socket: other test runs on this machine take fixed ones. */
const freeRunnerPort = (): number => {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } })
  const port = listener.port
  listener.stop(true)
  return port
}

/**
 * The HTTP app over a fresh database seeded through the pipeline (the vendor fake's week, fetched by a
 * backfill), with the cluster, the job runner and — when asked — the supervisor running EURUSD:M1 live.
 */
export const startApi = async (
  kind: DatabaseKind,
  options: {
    readonly supervisor?: boolean
    readonly http?: Partial<AppConfigShape["http"]>
    readonly broker?: boolean
    /** Faults the MetaApi fake injects (with `broker`). */
    readonly brokerFaults?: MetaApiFakeOptions["faults"]
  } = {}
): Promise<ApiHarness> => {
  const now = Date.now()
  const recentFrom = now - (now % minute) - 90 * minute
  const bars = seedBars()
  let vendorFault: "slow" | "401" | null = null
  const fake = startMassiveFake({
    apiKeys: ["api-test-key"],
    bars: new Map([["C:EURUSD", [...bars, ...quietBars(recentFrom, 120)]]]),
    faults: () => vendorFault,
    slowMillis: 120_000
  })
  const brokerBars = bars
    .filter((b) => !brokerMissing.includes(b.ts))
    .map((b) => ({ ...b, open: b.open + brokerOffset, high: b.high + brokerOffset, low: b.low + brokerOffset, close: b.close + brokerOffset }))
  const broker = options.broker ? startMetaApiFake({ tokens: ["meta-token"], accounts: new Map([[brokerAccount, new Map([["EURUSDm", brokerBars]])]]), ...(options.brokerFaults ? { faults: options.brokerFaults } : {}) }) : null
  const db = await createTestDatabase(kind)
  // The test database's own runtime is not used: one runtime per database (PGlite opens its directory once).
  await db.close()
  const config: AppConfigShape = {
    ...db.config,
    streams: Option.some([{ symbol: "EURUSD", timeframe: "M1" }]),
    backfillFrom: Option.some(recentFrom),
    massive: { ...db.config.massive, apiKey: Option.some(Redacted.make("api-test-key")), baseUrl: fake.baseUrl, plan: "paid", timeoutSeconds: 10 },
    supervisor: { ...db.config.supervisor, runnerPort: freeRunnerPort() },
    http: { ...db.config.http, ...options.http },
    broker: broker
      ? {
          ...db.config.broker,
          token: Option.some(Redacted.make("meta-token")),
          accounts: [brokerAccount],
          baseUrl: broker.baseUrl,
          marketDataUrl: broker.baseUrl,
          symbols: Option.some({ EURUSD: "EURUSDm" }),
          timeoutSeconds: 10
        }
      : db.config.broker
  }
  const base = Layer.mergeAll(Jobs.Default, Readiness.Default).pipe(Layer.provideMerge(ClusterLive), Layer.provideMerge(storeLayer(config)))
  const runtime = options.supervisor ? ManagedRuntime.make(Layer.merge(SupervisorLive.pipe(Layer.provide(base)), base)) : ManagedRuntime.make(base)
  await runtime.runPromise(
    Backfill.use((b) => b.run({ symbol: "EURUSD", timeframe: "M1", from: seedFrom, to: seedTo, purpose: "backfill", refetch: true }))
  )
  const app = makeApp(runEffectWith(await runtime.runtime()), config.http, "test")
  return {
    config,
    fake,
    broker,
    bars,
    request: (path, init) => Promise.resolve(app.request(path, init)),
    fetch: (request) => app.fetch(request),
    runtime,
    markReady: () => runtime.runPromise(Readiness.use((r) => r.markRunning)),
    stallVendor: () => void (vendorFault = "slow"),
    refuseKey: () => void (vendorFault = "401"),
    close: async () => {
      await runtime.dispose()
      await db.drop()
      await fake.stop()
      await broker?.stop()
    }
  }
}

/** A JSON request body. */
export const post = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: "POST",
  headers: { "Content-Type": "application/json", ...headers },
  body: typeof body === "string" ? body : JSON.stringify(body)
})

export const iso = (ms: number) => new Date(ms).toISOString()

