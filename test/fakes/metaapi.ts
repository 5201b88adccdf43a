/**
 * A loopback stand-in for MetaApi's two REST calls, speaking its wire format (see shared/reference/metaapi.md):
 * `current-price` on the client-API host and historical `candles` on the market-data host (one server answers
 * both paths), the `auth-token` header, candles going backwards from `startTime` (at most `limit` ≤ 1000, oldest
 * first), MetaApi's JSON error bodies (`UnauthorizedError`, `NotFoundError`, `ValidationError`,
 * `TooManyRequestsError` with `metadata.recommendedRetryTime`), and injected faults.
 *
 * Simplifications, on purpose: candles are served from M1 input (other fixed-length timeframes are aggregated on
 * UTC buckets, `1w`/`1mn` answer empty); the current price is the close of the newest candle at or before `now`
 * (MT4 candles are bid prices) with `ask = bid + spread`; its `time` is `now` inside that candle's minute, else
 * the last second of the candle (the last tick). `brokerTime` is the usual MT4 server clock, New York + 7 h.
 */
import type { Candle } from "../../src/domain/candle.ts"
import { isUsSummerTime } from "../../src/sources/csv/clock.ts"

export type MetaApiFault = "429" | "429-retry-after" | "500" | "504" | "502-html" | "truncated-json" | "schema-mismatch" | "slow"

export interface MetaApiFakeOptions {
  /** account id → the broker's symbol → its M1 candles (bid prices). */
  readonly accounts: ReadonlyMap<string, ReadonlyMap<string, ReadonlyArray<Candle>>>
  /** Tokens accepted in the `auth-token` header. */
  readonly tokens: ReadonlyArray<string>
  /** ask − bid of the current price, in price units (default 0). */
  readonly spread?: number
  /** The clock prices and "latest" candles are judged by (default the wall clock); a test on TestClock passes its time. */
  readonly now?: () => number
  /** `recommendedRetryTime` sent with a 429: now + this (default 30 s). */
  readonly recommendedRetryAfterMillis?: number
  /** Seconds sent in `Retry-After` by the `"429-retry-after"` fault (default 1). */
  readonly retryAfterSeconds?: number
  /** How long a `"slow"` answer takes (default 10 s). */
  readonly slowMillis?: number
  /** Chooses a fault for the n-th request (0-based, counting every request). */
  readonly faults?: (requestIndex: number, url: URL) => MetaApiFault | null
}

export interface LoggedRequest {
  readonly index: number
  /** The URL as received (it must never carry the token). */
  readonly url: string
  readonly kind: "price" | "candles" | "other"
  readonly status: number
  /** Real time of arrival, Unix ms. */
  readonly at: number
  /** The `auth-token` header as received, or null. */
  readonly authToken: string | null
  readonly startTime: string | null
  readonly limit: string | null
  readonly fault: MetaApiFault | null
}

export interface MetaApiFake {
  /** `http://127.0.0.1:PORT`, for both METAAPI_BASE_URL and METAAPI_MARKET_DATA_URL. */
  readonly baseUrl: string
  readonly requests: ReadonlyArray<LoggedRequest>
  readonly stop: () => Promise<void>
}

const minute = 60_000
const hour = 60 * minute

const timeframeMillis: Record<string, number | null> = {
  "1m": minute,
  "5m": 5 * minute,
  "15m": 15 * minute,
  "30m": 30 * minute,
  "1h": hour,
  "4h": 4 * hour,
  "1d": 24 * hour,
  "1w": null,
  "1mn": null
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Response =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } })

let errorId = 0
const metaApiError = (status: number, error: string, message: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): Response =>
  json(status, { id: ++errorId, error, message, ...extra }, headers)

const badGateway = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"

/** The MT4 server's wall clock: GMT+2 in US winter, GMT+3 in US summer, written `2024-03-07 16:31:05.123`. */
export const brokerTimeOf = (utc: number): string =>
  new Date(utc + (isUsSummerTime(utc) ? 3 : 2) * hour).toISOString().replace("T", " ").replace("Z", "")

/** Buckets of `span` ms built from sorted M1 candles. */
const aggregate = (bars: ReadonlyArray<Candle>, span: number): ReadonlyArray<Candle> => {
  if (span === minute) return bars
  const out: Array<Candle> = []
  for (const bar of bars) {
    const ts = bar.ts - (bar.ts % span)
    const last = out[out.length - 1]
    if (last === undefined || last.ts !== ts) out.push({ ...bar, ts })
    else out[out.length - 1] = { ...last, high: Math.max(last.high, bar.high), low: Math.min(last.low, bar.low), close: bar.close, volume: last.volume + bar.volume }
  }
  return out
}

export const startMetaApiFake = (options: MetaApiFakeOptions): MetaApiFake => {
  const accounts = new Map(
    [...options.accounts].map(([account, symbols]) => [account, new Map([...symbols].map(([symbol, bars]) => [symbol, [...bars].sort((a, b) => a.ts - b.ts)]))])
  )
  const requests: Array<LoggedRequest> = []
  const slowTimers = new Set<ReturnType<typeof setTimeout>>()
  const now = () => (options.now ?? Date.now)()

  const tooManyRequests = (withRetryAfter: boolean): Response =>
    metaApiError(
      429,
      "TooManyRequestsError",
      "You have used all your account subscriptions quota. Please wait before making more requests",
      { metadata: { recommendedRetryTime: new Date(now() + (options.recommendedRetryAfterMillis ?? 30_000)).toISOString() } },
      withRetryAfter ? { "retry-after": String(options.retryAfterSeconds ?? 1) } : {}
    )

  const symbolBars = (accountId: string, symbol: string): ReadonlyArray<Candle> | Response => {
    const account = accounts.get(accountId)
    if (account === undefined) return metaApiError(404, "NotFoundError", `Trading account with id ${accountId} not found`)
    const bars = account.get(symbol)
    if (bars === undefined) return metaApiError(404, "NotFoundError", `Symbol ${symbol} not found`)
    return bars
  }

  const currentPrice = (accountId: string, symbol: string): Response => {
    const bars = symbolBars(accountId, symbol)
    if (bars instanceof Response) return bars
    const at = now()
    const candle = bars.findLast((bar) => bar.ts <= at)
    if (candle === undefined) return metaApiError(404, "NotFoundError", `No price for symbol ${symbol}`)
    const time = at < candle.ts + minute ? at : candle.ts + minute - 1_000
    const bid = candle.close
    return json(200, {
      symbol,
      bid,
      ask: bid + (options.spread ?? 0),
      profitTickValue: 1,
      lossTickValue: 1,
      time: new Date(time).toISOString(),
      brokerTime: brokerTimeOf(time)
    })
  }

  const candles = (accountId: string, symbol: string, timeframe: string, url: URL): Response => {
    if (!(timeframe in timeframeMillis)) {
      return metaApiError(400, "ValidationError", "Validation failed", { details: [{ parameter: "timeframe", value: timeframe, message: "Unsupported timeframe" }] })
    }
    const startText = url.searchParams.get("startTime")
    const startTime = startText === null ? now() : Date.parse(startText)
    if (startText !== null && (!/^\d{4}-\d{2}-\d{2}T/.test(startText) || Number.isNaN(startTime))) {
      return metaApiError(400, "ValidationError", "Validation failed", { details: [{ parameter: "startTime", value: startText, message: "Invalid date" }] })
    }
    const limitText = url.searchParams.get("limit")
    const limit = limitText === null ? 1000 : Number(limitText)
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      return metaApiError(400, "ValidationError", "Validation failed", { details: [{ parameter: "limit", value: limitText, message: "limit must be from 1 to 1000" }] })
    }
    const bars = symbolBars(accountId, symbol)
    if (bars instanceof Response) return bars
    const span = timeframeMillis[timeframe]
    const latest = Math.min(startTime, now())
    const eligible = span === null || span === undefined ? [] : aggregate(bars, span).filter((bar) => bar.ts <= latest)
    const page = eligible.slice(Math.max(0, eligible.length - limit))
    return json(
      200,
      page.map((bar) => ({
        symbol,
        timeframe,
        time: new Date(bar.ts).toISOString(),
        brokerTime: brokerTimeOf(bar.ts),
        open: bar.open,
        high: bar.high,
        low: bar.low,
        close: bar.close,
        tickVolume: Math.max(1, Math.round(bar.volume)),
        spread: Math.round((options.spread ?? 0) * 1000),
        volume: 0
      }))
    )
  }

  const route = (url: URL): { kind: LoggedRequest["kind"]; answer: () => Response } => {
    const price = /^\/users\/current\/accounts\/([^/]+)\/symbols\/([^/]+)\/current-price$/.exec(url.pathname)
    if (price) return { kind: "price", answer: () => currentPrice(decodeURIComponent(price[1]!), decodeURIComponent(price[2]!)) }
    const history = /^\/users\/current\/accounts\/([^/]+)\/historical-market-data\/symbols\/([^/]+)\/timeframes\/([^/]+)\/candles$/.exec(url.pathname)
    if (history) {
      return { kind: "candles", answer: () => candles(decodeURIComponent(history[1]!), decodeURIComponent(history[2]!), decodeURIComponent(history[3]!), url) }
    }
    return { kind: "other", answer: () => metaApiError(404, "NotFoundError", `Cannot GET ${url.pathname}`) }
  }

  const answer = (request: Request, fault: MetaApiFault | null, answerRoute: () => Response): Response => {
    // A proxy's faults come before MetaApi looks at the request.
    if (fault === "502-html") return new Response(badGateway, { status: 502, headers: { "content-type": "text/html" } })
    const token = request.headers.get("auth-token")
    if (token === null || !options.tokens.includes(token)) {
      return metaApiError(401, "UnauthorizedError", "Authorization token invalid or expired. Please check your auth-token header")
    }
    if (fault === "429") return tooManyRequests(false)
    if (fault === "429-retry-after") return tooManyRequests(true)
    if (fault === "500") return metaApiError(500, "InternalError", "Something went wrong, please try again later")
    if (fault === "504") return metaApiError(504, "TimeoutError", "Timed out waiting for the response from the terminal")
    const response = answerRoute()
    if (response.status !== 200) return response
    if (fault === "schema-mismatch") return json(200, { candles: "none", bid: "1.2" })
    return response
  }

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const url = new URL(request.url)
      const index = requests.length
      const fault = options.faults?.(index, url) ?? null
      const { kind, answer: answerRoute } = route(url)
      let response = answer(request, fault, answerRoute)
      // Cut in the middle, as a dropped connection leaves it.
      if (fault === "truncated-json" && response.status === 200) {
        const text = await response.text()
        response = new Response(text.slice(0, Math.floor(text.length / 2)), { status: 200, headers: { "content-type": "application/json" } })
      }
      requests.push({
        index,
        url: request.url,
        kind,
        status: response.status,
        at: Date.now(),
        authToken: request.headers.get("auth-token"),
        startTime: url.searchParams.get("startTime"),
        limit: url.searchParams.get("limit"),
        fault
      })
      if (fault !== "slow") return response
      return new Promise<Response>((resolve) => {
        const timer = setTimeout(() => {
          slowTimers.delete(timer)
          resolve(response)
        }, options.slowMillis ?? 10_000)
        slowTimers.add(timer)
      })
    }
  })

  return {
    baseUrl: `http://127.0.0.1:${server.port}`,
    requests,
    stop: async () => {
      for (const timer of slowTimers) clearTimeout(timer)
      await server.stop(true)
    }
  }
}
