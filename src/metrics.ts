import { Metric, MetricBoundaries } from "effect"

/**
 * The process's counters, kept with Effect's Metric and rendered by `GET /metrics`. Like config.ts this file
 * sits beside the layers that feed it (sources, pipeline, http), so each counts where the event happens.
 */
export const vendorRequests = Metric.counter("candlekeep_vendor_requests_total", {
  description: "Requests to the market-data vendor (massive) and the broker (metaapi), by outcome: ok, empty, or the error's kind",
  incremental: true
})
export const vendorRetries = Metric.counter("candlekeep_vendor_retries_total", { description: "Requests to the vendor or the broker retried after a transient failure", incremental: true })
export const barsStored = Metric.counter("candlekeep_bars_stored_total", { description: "Bars written (new or changed) by this process", incremental: true })
export const barsRejected = Metric.counter("candlekeep_bars_rejected_total", { description: "Bars quarantined by a validation rule by this process", incremental: true })
export const httpRequests = Metric.counter("candlekeep_http_requests_total", { description: "HTTP requests answered, by method, route and status", incremental: true })
export const httpLatency = Metric.histogram(
  "candlekeep_http_request_duration_seconds",
  MetricBoundaries.fromIterable([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]),
  "HTTP request latency, by method and route"
)
