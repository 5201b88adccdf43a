import { HttpClient, HttpClientRequest } from "@effect/platform"
import type { HttpClientError } from "@effect/platform/HttpClientError"
import { Clock, Effect, Either, Metric, MetricLabel, Option, Random, Redacted, Ref, Schema, Stream } from "effect"
import { vendorRequests, vendorRetries } from "../../metrics.ts"
import { attemptTimeout, retryFits } from "../deadline.ts"
import { firstIssue, parseJson, parseRetryAfter, type Answer } from "../http-answer.ts"
import { AppConfig, massiveDelayMinutes, massiveRequestsPerMinute } from "../../config.ts"
import type { Candle } from "../../domain/candle.ts"
import { settleLine } from "../../domain/settle.ts"
import { type Timeframe, vendorSpan } from "../../domain/timeframe.ts"
import {
  budgetUnavailable,
  excerptOf,
  type FailedRequest,
  failureForStatus,
  invalidUrl,
  isTransient,
  type MassiveError,
  missingApiKey,
  redactSecret,
  refusedNextUrl,
  timedOut,
  transportFailed,
  undecodable,
  type UnknownSymbol,
  unknownSymbol
} from "./errors.ts"
import { MassiveRateLimits } from "./rate-limiter.ts"
import { AggregatesResponse, ErrorBody, wireBarToCandle } from "./wire.ts"

/** A range of one stream: `from` inclusive, `to` exclusive, both Unix ms. */
export interface MassiveRange {
  readonly symbol: string
  readonly timeframe: Timeframe
  readonly from: number
  readonly to: number
}

/** The first page of a range, or a later one reached through the vendor's `next_url`. */
export type MassivePageRequest = MassiveRange | (MassiveRange & { readonly nextUrl: string })

export interface MassivePage {
  readonly candles: ReadonlyArray<Candle>
  readonly requestId: string | null
  /** Where the next page is; null on the last one. */
  readonly nextUrl: string | null
  /** HTTP status of the answer. */
  readonly status: number
}

export interface RetriedPage {
  readonly page: MassivePage
  /** How many failed tries came before this page. */
  readonly retries: number
}

/** Backoff for transient failures: 1 s, 2 s, 4 s … capped at 60 s, jittered ±20 %, at most 8 tries in all. */
export const massiveRetry = { baseMillis: 1_000, factor: 2, capMillis: 60_000, jitter: 0.2, maxAttempts: 8 } as const

/** Delay before retry number `retry` (0-based): jittered exponential, never shorter than the server asked. */
const retryDelay = (retry: number, error: MassiveError): Effect.Effect<number> =>
  Effect.map(Random.nextRange(1 - massiveRetry.jitter, 1 + massiveRetry.jitter), (jitter) => {
    const backoff = Math.min(massiveRetry.capMillis, massiveRetry.baseMillis * massiveRetry.factor ** retry * jitter)
    const asked = error._tag === "RateLimited" ? (error.retryAfterMillis ?? 0) : 0
    return Math.round(Math.max(backoff, asked))
  })

const isoRange = (range: MassiveRange): string => {
  const iso = (ms: number) => (Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms))
  return `${iso(range.from)}/${iso(range.to)}`
}

/** The first page's URL; the key is never part of it (it travels in the Authorization header). */
const aggregatesUrl = (baseUrl: string, ticker: string, range: MassiveRange): string => {
  const { multiplier, timespan } = vendorSpan[range.timeframe]
  // Our `to` is exclusive and the vendor's inclusive: ask up to the millisecond before it.
  const path = `/v2/aggs/ticker/${ticker}/range/${multiplier}/${timespan}/${range.from}/${range.to - 1}`
  // limit counts the base bars scanned, so ask for the maximum.
  return `${baseUrl.replace(/\/+$/, "")}${path}?adjusted=true&sort=asc&limit=50000`
}

/**
 * Why a `next_url` may not be followed with the key, or null when it may: it must name the host (and port) of
 * MASSIVE_BASE_URL, over the same scheme.
 */
export const foreignNextUrl = (nextUrl: string, baseUrl: string): string | null => {
  const base = new URL(baseUrl)
  let next: URL
  try {
    next = new URL(nextUrl)
  } catch {
    return "next_url is not a URL"
  }
  if (next.host !== base.host) return `next_url points to another host, ${next.host} (the key is only sent to ${base.host})`
  if (next.protocol !== base.protocol) return `next_url switches to ${next.protocol.slice(0, -1)} (the key is only sent over ${base.protocol.slice(0, -1)})`
  return null
}

/** Added to the request timeout for how long a place may stay held when its finish is never recorded. */
const leaseSlackMillis = 5_000

/** The delay Massive's delayed plans have; what a plan set to 0 becomes once the vendor answers DELAYED. */
export const delayedPlanMinutes = 15

const vendorOutcome = (outcome: string) => [MetricLabel.make("vendor", "massive"), MetricLabel.make("outcome", outcome)]

export class MassiveClient extends Effect.Service<MassiveClient>()("Massive/MassiveClient", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const http = yield* HttpClient.HttpClient
    const limits = yield* MassiveRateLimits
    const settings = config.massive
    const timeoutMillis = Math.round(settings.timeoutSeconds * 1000)
    const tickers = new Map(config.symbols.map((spec) => [spec.symbol, spec.ticker]))
    const apiKey = Option.getOrNull(settings.apiKey)
    const limiter =
      apiKey === null
        ? null
        : yield* limits.forKey(apiKey, {
            requestsPerMinute: massiveRequestsPerMinute(settings),
            maxConcurrency: settings.maxConcurrency,
            // The vendor has seen a request by the time it times out; the slack covers sending and tearing down.
            leaseMillis: timeoutMillis + leaseSlackMillis
          })
    const secret = apiKey === null ? null : Redacted.value(apiKey)
    // The plan's delay as this process knows it, per ticker: the setting, until the vendor says otherwise. A key's
    // plans are sold per market (currencies, crypto, …), so one ticker answering DELAYED says nothing of another's.
    const delays = yield* Ref.make<ReadonlyMap<string, number>>(new Map())
    const delayOf = (ticker: string | undefined) =>
      Effect.map(Ref.get(delays), (known) => (ticker === undefined ? undefined : known.get(ticker)) ?? massiveDelayMinutes(settings))

    /** A DELAYED answer for a ticker taken to have no delay: its plan is delayed after all (warned once per ticker, not per page). */
    const noteDelayed = (ticker: string) =>
      Effect.flatMap(
        Ref.modify(delays, (known): [boolean, ReadonlyMap<string, number>] =>
          (known.get(ticker) ?? massiveDelayMinutes(settings)) === 0 ? [true, new Map(known).set(ticker, delayedPlanMinutes)] : [false, known]
        ),
        (changed) =>
          changed
            ? Effect.logWarning(
                `Massive answers DELAYED for ${ticker} though MASSIVE_DELAY_MINUTES is 0: its bars are now taken as settled only ${delayedPlanMinutes} minutes after they close (set MASSIVE_DELAY_MINUTES to silence this)`
              )
            : Effect.void
      )

    /** The plan's delay for a symbol's ticker (the setting's for a symbol not configured). */
    const planDelayMinutes = (symbol: string) => delayOf(tickers.get(symbol))

    /** Where the settled bars of a symbol's `timeframe` end at `now`: MASSIVE_SETTLE_SECONDS plus its plan's delay behind it. */
    const settledBefore = (now: number, timeframe: Timeframe, symbol: string) =>
      Effect.map(planDelayMinutes(symbol), (minutes) => settleLine(now, timeframe, settings.settleSeconds * 1000, minutes * 60_000))

    const tickerFor = (symbol: string): Either.Either<string, UnknownSymbol> => {
      const ticker = tickers.get(symbol)
      return ticker === undefined ? Either.left(unknownSymbol(symbol, [...tickers.keys()])) : Either.right(ticker)
    }

    /** Headers and body, within the timeout; the limiter counts the request until its body is in. */
    const send = (url: string, key: Redacted.Redacted<string>): Effect.Effect<Answer, HttpClientError | { readonly timeout: number }> =>
      http.execute(HttpClientRequest.get(url).pipe(HttpClientRequest.bearerToken(key), HttpClientRequest.acceptJson)).pipe(
        Effect.flatMap((response) =>
          Effect.map(response.text, (body): Answer => ({ status: response.status, headers: response.headers, body }))
        ),
        (answer) =>
          Effect.flatMap(attemptTimeout(timeoutMillis), (millis) =>
            answer.pipe(Effect.timeoutFail({ duration: millis, onTimeout: () => ({ timeout: millis }) as const }))
          )
      )

    const fetchPage = (request: MassivePageRequest): Effect.Effect<MassivePage, MassiveError> =>
      Effect.gen(function* () {
        const ticker = yield* tickerFor(request.symbol)
        const url = "nextUrl" in request ? request.nextUrl : aggregatesUrl(settings.baseUrl, ticker, request)
        // Every string that reaches an error passes through here, so the key cannot leak through one.
        const facts = (answer: { status?: number; requestId?: string | null; detail: string; body?: string }): FailedRequest => ({
          ticker,
          range: isoRange(request),
          url: redactSecret(url, secret),
          status: answer.status ?? null,
          requestId: answer.requestId ? redactSecret(answer.requestId, secret) : null,
          detail: excerptOf(answer.detail, secret),
          excerpt: excerptOf(answer.body ?? "", secret)
        })
        if (apiKey === null || limiter === null) return yield* Effect.fail(missingApiKey(facts({ detail: "" })))
        // The key goes only where it was meant to: a next_url on another host, or over another scheme, is refused unsent.
        if ("nextUrl" in request) {
          const foreign = foreignNextUrl(request.nextUrl, settings.baseUrl)
          if (foreign !== null) return yield* Effect.fail(refusedNextUrl(facts({ detail: foreign })))
        }

        const answer = yield* limiter.withPermit(send(url, apiKey)).pipe(
          Effect.mapError((error) => {
            if ("timeout" in error) return timedOut(facts({ detail: `no complete answer within ${error.timeout} ms` }), error.timeout)
            if (error._tag === "RateBudgetUnavailable") return budgetUnavailable(facts({ detail: error.message }))
            const cause = error.cause instanceof Error ? error.cause.message : String(error.cause ?? "")
            const detail = `${error.reason}${cause === "" ? "" : `: ${cause}`}`
            return error._tag === "RequestError" && error.reason === "InvalidUrl"
              ? invalidUrl(facts({ detail }))
              : transportFailed(facts({ detail, body: cause }))
          })
        )

        const json = parseJson(answer.body)
        // Error bodies and most odd 200s still carry the vendor's request id: keep it for the person reading.
        const vendor = Option.flatMap(json, (value) => Option.getRight(Schema.decodeUnknownEither(ErrorBody)(value)))
        const requestId = Option.getOrNull(Option.flatMapNullable(vendor, (body) => body.request_id))
        if (answer.status < 200 || answer.status >= 300) {
          const said = Option.flatMapNullable(vendor, (body) => body.error ?? body.message)
          const retryAfterMillis =
            answer.status === 429 ? parseRetryAfter(answer.headers["retry-after"], yield* Clock.currentTimeMillis) : null
          const failed = facts({
            status: answer.status,
            requestId,
            detail: Option.getOrElse(said, () => `HTTP ${answer.status}`),
            body: answer.body
          })
          return yield* Effect.fail(failureForStatus(answer.status, failed, retryAfterMillis))
        }
        // A cut or foreign (HTML) body on a 2xx is a proxy or connection fault: transient.
        if (Option.isNone(json)) {
          return yield* Effect.fail(
            undecodable(facts({ status: answer.status, detail: "the body is not valid JSON", body: answer.body }), "invalid-json")
          )
        }
        const decoded = Schema.decodeUnknownEither(AggregatesResponse)(json.value)
        if (Either.isLeft(decoded)) {
          return yield* Effect.fail(
            undecodable(facts({ status: answer.status, requestId, detail: firstIssue(decoded.left), body: answer.body }), "schema-mismatch")
          )
        }
        const page = decoded.right
        if (page.status === "DELAYED") yield* noteDelayed(ticker)
        return {
          candles: (page.results ?? []).map(wireBarToCandle),
          // Stored in fetch_log for every page: a vendor echoing part of the key must not put it there.
          requestId: page.request_id ? redactSecret(page.request_id, secret) : null,
          nextUrl: page.next_url ?? null,
          status: answer.status
        } satisfies MassivePage
      }).pipe(
        Effect.tapBoth({
          onSuccess: (page) => Metric.increment(Metric.taggedWithLabels(vendorRequests, vendorOutcome(page.candles.length === 0 ? "empty" : "ok"))),
          onFailure: (error) => Metric.increment(Metric.taggedWithLabels(vendorRequests, vendorOutcome(error._tag)))
        }),
        Effect.withSpan("Massive.fetchPage", { attributes: { symbol: request.symbol, timeframe: request.timeframe } })
      )

    const fetchPageWithRetry = (request: MassivePageRequest): Effect.Effect<RetriedPage, MassiveError> => {
      const attempt = (retries: number): Effect.Effect<RetriedPage, MassiveError> =>
        fetchPage(request).pipe(
          Effect.map((page) => ({ page, retries })),
          Effect.catchAll((error) =>
            !isTransient(error) || retries + 1 >= massiveRetry.maxAttempts
              ? Effect.fail(error)
              : Effect.flatMap(retryDelay(retries, error), (delayMillis) =>
                  // A request waiting on this answer must get it, with the reason, before its deadline.
                  Effect.flatMap(retryFits(delayMillis), (fits) =>
                    !fits
                      ? Effect.fail(error)
                      : Effect.logWarning(`retrying in ${delayMillis} ms: ${error.message}`).pipe(
                          Effect.annotateLogs({ error: error._tag, retry: retries + 1, delayMillis }),
                          Effect.zipRight(Metric.increment(Metric.tagged(vendorRetries, "vendor", "massive"))),
                          Effect.zipRight(Effect.sleep(delayMillis)),
                          Effect.zipRight(attempt(retries + 1))
                        )
                  )
                )
          )
        )
      return attempt(0).pipe(Effect.annotateLogs({ service: "Massive", symbol: request.symbol, timeframe: request.timeframe }))
    }

    /** Every page of a range in order, following `next_url`; pulls one page at a time, so memory holds one page. */
    const pages = (request: MassivePageRequest): Stream.Stream<MassivePage & { readonly retries: number }, MassiveError> =>
      Stream.paginateEffect(request, (current) =>
        Effect.map(fetchPageWithRetry(current), ({ page, retries }) => {
          const next = Option.map(Option.fromNullable(page.nextUrl), (nextUrl): MassivePageRequest => ({
            symbol: request.symbol,
            timeframe: request.timeframe,
            from: request.from,
            to: request.to,
            nextUrl
          }))
          return [{ ...page, retries }, next] as const
        })
      )

    return { tickerFor, fetchPage, fetchPageWithRetry, pages, planDelayMinutes, settledBefore } as const
  }),
  dependencies: [MassiveRateLimits.Default]
}) {}
