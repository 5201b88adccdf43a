import { Headers, HttpClient, HttpClientRequest } from "@effect/platform"
import type { HttpClientError } from "@effect/platform/HttpClientError"
import { Clock, Effect, Either, Metric, MetricLabel, Option, Random, Redacted, Schema } from "effect"
import { AppConfig } from "../../config.ts"
import { vendorRequests, vendorRetries } from "../../metrics.ts"
import { attemptTimeout, retryFits } from "../deadline.ts"
import { firstIssue, parseJson, parseRetryAfter, type Answer } from "../http-answer.ts"
import {
  excerptOf,
  type FailedBrokerRequest,
  failureForStatus,
  invalidUrl,
  isTransient,
  type MetaApiError,
  missingToken,
  redactToken,
  timedOut,
  transportFailed,
  undecodable
} from "./errors.ts"
import { ErrorBody, WireCandles, WirePrice } from "./wire.ts"

/** The broker's bid and ask at `time` (Unix ms, UTC); `brokerTime` is the server's wall clock as it wrote it. */
export interface BrokerPrice {
  readonly symbol: string
  readonly bid: number
  readonly ask: number
  readonly time: number
  readonly brokerTime: string
}

/** One broker candle; `ts` is its open time in Unix ms, UTC. Built from bid prices on MT4. */
export interface BrokerCandle {
  readonly ts: number
  readonly open: number
  readonly high: number
  readonly low: number
  readonly close: number
  readonly tickVolume: number | null
  readonly spread: number | null
  readonly brokerTime: string | null
}

export const BrokerTimeframe = ["1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w", "1mn"] as const
export type BrokerTimeframe = (typeof BrokerTimeframe)[number]

/** One request of the candles endpoint: up to `limit` (≤ 1000) candles going backwards from `startTime`. */
export interface CandlePageRequest {
  readonly account: string
  /** The broker's symbol. */
  readonly symbol: string
  readonly timeframe: BrokerTimeframe
  readonly startTime: number
  readonly limit: number
}

/** Every candle with open time in [from, to), Unix ms. */
export interface CandleRange {
  readonly account: string
  readonly symbol: string
  readonly timeframe?: BrokerTimeframe
  readonly from: number
  readonly to: number
}

/** The most candles MetaApi returns for one request. */
export const maxCandlesPerRequest = 1000

/** Backoff for transient failures, as for the vendor: 1 s, 2 s, 4 s … capped at 60 s, jittered ±20 %, at most 8 tries in all. */
export const metaApiRetry = { baseMillis: 1_000, factor: 2, capMillis: 60_000, jitter: 0.2, maxAttempts: 8 } as const

const timeframeMillis: Record<BrokerTimeframe, number> = {
  "1m": 60_000,
  "5m": 300_000,
  "15m": 900_000,
  "30m": 1_800_000,
  "1h": 3_600_000,
  "4h": 14_400_000,
  "1d": 86_400_000,
  "1w": 604_800_000,
  "1mn": 2_678_400_000
}

/** Delay before retry number `retry` (0-based): jittered exponential, never shorter than MetaApi asked. */
const retryDelay = (retry: number, error: MetaApiError): Effect.Effect<number> =>
  Effect.map(Random.nextRange(1 - metaApiRetry.jitter, 1 + metaApiRetry.jitter), (jitter) => {
    const backoff = Math.min(metaApiRetry.capMillis, metaApiRetry.baseMillis * metaApiRetry.factor ** retry * jitter)
    const asked = error._tag === "RateLimited" ? (error.retryAfterMillis ?? 0) : 0
    return Math.round(Math.max(backoff, asked))
  })

const trimSlash = (url: string) => url.replace(/\/+$/, "")

const brokerOutcome = (outcome: string) => [MetricLabel.make("vendor", "metaapi"), MetricLabel.make("outcome", outcome)]

export class MetaApiClient extends Effect.Service<MetaApiClient>()("MetaApi/MetaApiClient", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const http = yield* HttpClient.HttpClient
    const settings = config.broker
    const timeoutMillis = Math.round(settings.timeoutSeconds * 1000)
    const token = Option.getOrNull(settings.token)
    const secret = token === null ? null : Redacted.value(token)

    /** Headers and body within the timeout; `auth-token` is redacted wherever the HTTP layer might show headers. */
    const send = (url: string, key: Redacted.Redacted<string>): Effect.Effect<Answer, HttpClientError | { readonly timeout: number }> =>
      http.execute(HttpClientRequest.get(url).pipe(HttpClientRequest.setHeader("auth-token", Redacted.value(key)), HttpClientRequest.acceptJson)).pipe(
        Effect.flatMap((response) => Effect.map(response.text, (body): Answer => ({ status: response.status, headers: response.headers, body }))),
        (answer) =>
          Effect.flatMap(attemptTimeout(timeoutMillis), (millis) =>
            answer.pipe(Effect.timeoutFail({ duration: millis, onTimeout: () => ({ timeout: millis }) as const }))
          ),
        Effect.locallyWith(Headers.currentRedactedNames, (names) => [...names, "auth-token"])
      )

    /** One request, decoded with `schema`; every failure typed, every string free of the token. */
    const request = <A, I>(target: { readonly account: string; readonly symbol: string; readonly asked: string; readonly url: string }, schema: Schema.Schema<A, I>) =>
      Effect.gen(function* () {
        const facts = (answer: { status?: number; detail: string; body?: string }): FailedBrokerRequest => ({
          account: target.account,
          symbol: target.symbol,
          asked: target.asked,
          url: redactToken(target.url, secret),
          status: answer.status ?? null,
          detail: excerptOf(answer.detail, secret),
          excerpt: excerptOf(answer.body ?? "", secret)
        })
        if (token === null) return yield* Effect.fail(missingToken(facts({ detail: "" })))

        const answer = yield* send(target.url, token).pipe(
          Effect.mapError((error) => {
            if ("timeout" in error) return timedOut(facts({ detail: `no complete answer within ${error.timeout} ms` }), error.timeout)
            const cause = error.cause instanceof Error ? error.cause.message : String(error.cause ?? "")
            const detail = `${error.reason}${cause === "" ? "" : `: ${cause}`}`
            return error._tag === "RequestError" && error.reason === "InvalidUrl" ? invalidUrl(facts({ detail })) : transportFailed(facts({ detail, body: cause }))
          })
        )
        const json = parseJson(answer.body)
        if (answer.status < 200 || answer.status >= 300) {
          const said = Option.flatMap(json, (value) => Option.getRight(Schema.decodeUnknownEither(ErrorBody)(value)))
          const detail = Option.match(said, {
            onNone: () => `HTTP ${answer.status}`,
            onSome: (body) => [body.error, body.message].filter((s) => s !== undefined && s !== "").join(": ") || `HTTP ${answer.status}`
          })
          const now = yield* Clock.currentTimeMillis
          const recommended = Option.flatMapNullable(said, (body) => body.metadata?.recommendedRetryTime).pipe(
            Option.map(Date.parse),
            Option.filter((ms) => !Number.isNaN(ms)),
            Option.getOrNull
          )
          const header = answer.status === 429 ? parseRetryAfter(answer.headers["retry-after"], now) : null
          // The later of the two: MetaApi's recommended instant and the Retry-After header.
          const waits = [recommended === null ? null : Math.max(0, recommended - now), header].filter((w): w is number => w !== null)
          const failed = facts({ status: answer.status, detail, body: answer.body })
          return yield* Effect.fail(
            failureForStatus(answer.status, failed, {
              recommendedRetryTime: answer.status === 429 ? recommended : null,
              retryAfterMillis: answer.status === 429 && waits.length > 0 ? Math.max(...waits) : null
            })
          )
        }
        if (Option.isNone(json)) {
          return yield* Effect.fail(undecodable(facts({ status: answer.status, detail: "the body is not valid JSON", body: answer.body }), "invalid-json"))
        }
        const decoded = Schema.decodeUnknownEither(schema)(json.value)
        if (Either.isLeft(decoded)) {
          return yield* Effect.fail(undecodable(facts({ status: answer.status, detail: firstIssue(decoded.left), body: answer.body }), "schema-mismatch"))
        }
        return decoded.right
      })

    /** Retries transient failures with backoff, each retry logged with its delay; permanent ones fail at once. */
    const withRetry = <A>(attemptOnce: Effect.Effect<A, MetaApiError>, annotations: Record<string, unknown>): Effect.Effect<A, MetaApiError> => {
      const attempt = (retries: number): Effect.Effect<A, MetaApiError> =>
        attemptOnce.pipe(
          Effect.tapBoth({
            onSuccess: () => Metric.increment(Metric.taggedWithLabels(vendorRequests, brokerOutcome("ok"))),
            onFailure: (error) => Metric.increment(Metric.taggedWithLabels(vendorRequests, brokerOutcome(error._tag)))
          }),
          Effect.catchAll((error) =>
            !isTransient(error) || retries + 1 >= metaApiRetry.maxAttempts
              ? Effect.fail(error)
              : Effect.flatMap(retryDelay(retries, error), (delayMillis) =>
                  // A request waiting on this answer must get it, with the reason, before its deadline.
                  Effect.flatMap(retryFits(delayMillis), (fits) =>
                    !fits
                      ? Effect.fail(error)
                      : Effect.logWarning(`retrying in ${delayMillis} ms: ${error.message}`).pipe(
                          Effect.annotateLogs({ error: error._tag, retry: retries + 1, delayMillis }),
                          Effect.zipRight(Metric.increment(Metric.tagged(vendorRetries, "vendor", "metaapi"))),
                          Effect.zipRight(Effect.sleep(delayMillis)),
                          Effect.zipRight(attempt(retries + 1))
                        )
                  )
                )
          )
        )
      return attempt(0).pipe(Effect.annotateLogs({ service: "MetaApi", ...annotations }))
    }

    const accountPath = (account: string) => `/users/current/accounts/${encodeURIComponent(account)}`

    /** The broker's current bid and ask (client API host), retried on transient failures. */
    const currentPrice = (account: string, symbol: string): Effect.Effect<BrokerPrice, MetaApiError> =>
      withRetry(
        request(
          {
            account,
            symbol,
            asked: "current price",
            url: `${trimSlash(settings.baseUrl)}${accountPath(account)}/symbols/${encodeURIComponent(symbol)}/current-price`
          },
          WirePrice
        ).pipe(Effect.map((p): BrokerPrice => ({ symbol: p.symbol, bid: p.bid, ask: p.ask, time: p.time, brokerTime: p.brokerTime }))),
        { account, symbol }
      ).pipe(Effect.withSpan("MetaApi.currentPrice", { attributes: { account, symbol } }))

    /** One page of candles (market-data host): up to `limit` going backwards from `startTime`, oldest first. */
    const candlePage = (page: CandlePageRequest): Effect.Effect<ReadonlyArray<BrokerCandle>, MetaApiError> => {
      const startTime = new Date(page.startTime).toISOString()
      const limit = Math.max(1, Math.min(maxCandlesPerRequest, Math.floor(page.limit)))
      return withRetry(
        request(
          {
            account: page.account,
            symbol: page.symbol,
            asked: `${page.timeframe} candles back from ${startTime}`,
            url:
              `${trimSlash(settings.marketDataUrl)}${accountPath(page.account)}/historical-market-data/symbols/${encodeURIComponent(page.symbol)}` +
              `/timeframes/${page.timeframe}/candles?startTime=${encodeURIComponent(startTime)}&limit=${limit}`
          },
          WireCandles
        ).pipe(
          Effect.map((candles) =>
            candles
              .map(
                (c): BrokerCandle => ({
                  ts: c.time,
                  open: c.open,
                  high: c.high,
                  low: c.low,
                  close: c.close,
                  tickVolume: c.tickVolume ?? null,
                  spread: c.spread ?? null,
                  brokerTime: c.brokerTime ?? null
                })
              )
              .sort((a, b) => a.ts - b.ts)
          )
        ),
        { account: page.account, symbol: page.symbol }
      ).pipe(Effect.withSpan("MetaApi.candlePage", { attributes: { account: page.account, symbol: page.symbol, startTime } }))
    }

    /**
     * Every candle with open time in [from, to), oldest first: pages backwards from the millisecond before `to`
     * (so the bar opening at `to` stays out), each page starting just before the oldest candle of the last,
     * until a page reaches `from`, comes back short (no older history) or empty.
     */
    const candles = (range: CandleRange): Effect.Effect<ReadonlyArray<BrokerCandle>, MetaApiError> =>
      Effect.gen(function* () {
        const timeframe = range.timeframe ?? "1m"
        const limit = Math.min(maxCandlesPerRequest, Math.max(1, Math.ceil((range.to - range.from) / timeframeMillis[timeframe])))
        const byTs = new Map<number, BrokerCandle>()
        let startTime = range.to - 1
        while (startTime >= range.from) {
          const page = yield* candlePage({ account: range.account, symbol: range.symbol, timeframe, startTime, limit })
          for (const candle of page) if (candle.ts >= range.from && candle.ts < range.to) byTs.set(candle.ts, candle)
          const oldest = page[0]?.ts
          // A page that does not reach further back than the last one would repeat forever: stop.
          if (oldest === undefined || page.length < limit || oldest <= range.from || oldest > startTime) break
          startTime = oldest - 1
        }
        return [...byTs.values()].sort((a, b) => a.ts - b.ts)
      }).pipe(Effect.withSpan("MetaApi.candles", { attributes: { account: range.account, symbol: range.symbol } }))

    return { currentPrice, candlePage, candles } as const
  })
}) {}
