import { Clock, Effect, Metric, MetricState, Option } from "effect"
import { AppConfig, configuredStreams } from "../config.ts"
import { streamName } from "../domain/stream.ts"
import { Broker } from "../pipeline/broker.ts"
import { GapRepo } from "../store/gap-repo.ts"
import { QuarantineRepo } from "../store/quarantine-repo.ts"
import { SyncRepo } from "../store/sync-repo.ts"
import type { Api } from "./api.ts"
import { MetricsText } from "./contract.ts"
import { streamLagSeconds } from "./status.ts"

/** Prometheus' text format, one family at a time. */
class Exposition {
  private readonly lines: Array<string> = []
  family(name: string, type: "counter" | "gauge" | "histogram", help: string) {
    this.lines.push(`# HELP ${name} ${help.replace(/\n/g, " ")}`, `# TYPE ${name} ${type}`)
    return this
  }
  sample(name: string, labels: Readonly<Record<string, string>>, value: number) {
    const pairs = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`)
    this.lines.push(`${name}${pairs.length === 0 ? "" : `{${pairs.join(",")}}`} ${Number.isFinite(value) ? value : value > 0 ? "+Inf" : "NaN"}`)
    return this
  }
  text() {
    return `${this.lines.join("\n")}\n`
  }
}

const brokerStreamStates = ["not_started", "starting", "live", "degraded", "failed", "off"] as const
const streamStates = ["not_started", "starting", "backfilling", "live", "degraded", "failed", "stopped"] as const

/** `GET /metrics`: this process's counters (Effect metrics) and the store's gauges, read at scrape time. */
export const metricsRoutes = (api: Api<AppConfig | SyncRepo | GapRepo | QuarantineRepo | Broker>) =>
  api.route(
    { method: "get", path: "/metrics", tag: "service", summary: "Prometheus metrics", access: "read", responses: { 200: MetricsText } },
    (_, c) =>
      Effect.gen(function* () {
        const config = yield* AppConfig
        const now = yield* Clock.currentTimeMillis
        const out = new Exposition()

        // Counters and histograms this process keeps (vendor requests, retries, bars, HTTP).
        const pairs = yield* Metric.snapshot
        const families = new Map<string, Array<(typeof pairs)[number]>>()
        for (const pair of pairs) families.set(pair.metricKey.name, [...(families.get(pair.metricKey.name) ?? []), pair])
        for (const [name, members] of [...families.entries()].sort(([a], [b]) => a.localeCompare(b))) {
          if (!name.startsWith("candlekeep_")) continue
          const help = Option.getOrElse(members[0]!.metricKey.description, () => name)
          const state = members[0]!.metricState
          if (MetricState.isCounterState(state)) {
            out.family(name, "counter", help)
            for (const m of members) out.sample(name, labelsOf(m.metricKey.tags), Number((m.metricState as MetricState.MetricState.Counter<number>).count))
          } else if (MetricState.isHistogramState(state)) {
            out.family(name, "histogram", help)
            for (const m of members) {
              const h = m.metricState as MetricState.MetricState.Histogram
              const labels = labelsOf(m.metricKey.tags)
              for (const [bound, count] of h.buckets) if (Number.isFinite(bound)) out.sample(`${name}_bucket`, { ...labels, le: String(bound) }, count)
              out.sample(`${name}_bucket`, { ...labels, le: "+Inf" }, h.count)
              out.sample(`${name}_sum`, labels, h.sum)
              out.sample(`${name}_count`, labels, h.count)
            }
          }
        }

        // Gauges from the shared database: true for the whole cluster, whichever instance is scraped.
        const states = new Map((yield* SyncRepo.use((r) => r.states)).map((s) => [streamName(s), s]))
        out.family("candlekeep_stream_state", "gauge", "1 for the state each configured stream is in")
        for (const stream of configuredStreams(config)) {
          const state = states.get(streamName(stream))?.status ?? "not_started"
          for (const s of streamStates) out.sample("candlekeep_stream_state", { stream: streamName(stream), state: s }, s === state ? 1 : 0)
        }
        out.family("candlekeep_stream_lag_seconds", "gauge", "How far each stream's watermark trails what the plan can deliver, in open-market seconds")
        for (const stream of configuredStreams(config)) {
          const lag = streamLagSeconds(config, states.get(streamName(stream)), now)
          if (lag !== null) out.sample("candlekeep_stream_lag_seconds", { stream: streamName(stream) }, Math.round(lag))
        }
        out.family("candlekeep_stream_bars", "gauge", "Bars each stream has stored (all instances, all time)")
        for (const stream of configuredStreams(config)) {
          out.sample("candlekeep_stream_bars", { stream: streamName(stream) }, states.get(streamName(stream))?.barsStored ?? 0)
        }
        out.family("candlekeep_rejected_bars", "gauge", "Bars in quarantine, by stream and rule")
        for (const row of yield* QuarantineRepo.use((r) => r.countsByRule)) {
          out.sample("candlekeep_rejected_bars", { stream: `${row.symbol}:${row.timeframe}`, rule: row.rule }, row.n)
        }
        out.family("candlekeep_gaps", "gauge", "Gaps by stream and status")
        const gaps = yield* GapRepo.use((r) => r.countsByStatus)
        for (const row of gaps) out.sample("candlekeep_gaps", { stream: `${row.symbol}:${row.timeframe}`, status: row.status }, row.n)
        out.family("candlekeep_gap_missing_bars", "gauge", "Missing bars in gaps, by stream and status")
        for (const row of gaps) out.sample("candlekeep_gap_missing_bars", { stream: `${row.symbol}:${row.timeframe}`, status: row.status }, row.missing)

        const broker = yield* Broker
        const brokerStates = new Map((yield* broker.states()).streams.map((s) => [`${s.account}:${s.symbol}`, s]))
        out.family("candlekeep_broker_stream_state", "gauge", "1 for the state each broker quote stream (account, symbol) is in")
        for (const stream of broker.streams) {
          const state = brokerStates.get(`${stream.account}:${stream.symbol}`)?.status ?? "not_started"
          for (const s of brokerStreamStates) out.sample("candlekeep_broker_stream_state", { account: stream.account, symbol: stream.symbol, state: s }, s === state ? 1 : 0)
        }
        out.family("candlekeep_broker_quote_age_seconds", "gauge", "Seconds since the newest sampled broker quote")
        for (const stream of broker.streams) {
          const last = brokerStates.get(`${stream.account}:${stream.symbol}`)?.lastQuoteAt
          if (last !== null && last !== undefined) out.sample("candlekeep_broker_quote_age_seconds", { account: stream.account, symbol: stream.symbol }, Math.round((now - last) / 1000))
        }

        return c.text(out.text(), 200, { "Content-Type": `${MetricsText.contentType}; version=0.0.4; charset=utf-8` })
      })
  )

const labelsOf = (tags: ReadonlyArray<{ readonly key: string; readonly value: string }>) => Object.fromEntries(tags.map((t) => [t.key, t.value]))
