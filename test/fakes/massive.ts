/**
 * A loopback stand-in for Massive's REST aggregates endpoint, speaking its wire format (see
 * shared/reference/massive-api.md): bars filtered by the inclusive from/to in the path, pages linked by a
 * key-less `next_url` with an opaque cursor, `results` absent when empty, the vendor's error bodies, an
 * optional per-minute limit, injected faults, and the ways a plan limits what it serves: bars published some
 * seconds after they close (per ticker), a 15-minute delayed plan answering `DELAYED`, and history refused
 * (403 NOT_AUTHORIZED) before some number of days back. "Now" is `options.now`, so a TestClock can drive it.
 *
 * Simplifications, on purpose: bars are served from M1 input; other spans (`5/minute`, `1/hour`, `1/day`)
 * are aggregated on UTC-aligned buckets. `limit` and `pageSize` count the bars returned, not the base
 * bars scanned. Only admitted requests count toward the per-minute limit, measured in real time.
 */
import type { Candle } from "../../src/domain/candle.ts"

/** `"empty-next"`: a 200 without bars that still carries a `next_url` (continuing from the same place). */
/** `"401"`: the key refused, as when it was revoked. */
export type MassiveFault = "429" | "429-retry-after" | "502-html" | "truncated-json" | "slow" | "schema-mismatch" | "empty-next" | "401"

export interface MassiveFakeOptions {
  /** M1 bars per vendor ticker (`C:EURUSD`); a ticker without bars answers OK with no `results`. */
  readonly bars: ReadonlyMap<string, ReadonlyArray<Candle>>
  /** Keys accepted in `Authorization: Bearer …` or `apiKey=`. */
  readonly apiKeys: ReadonlyArray<string>
  /** Most bars per page (default 50000, the vendor's maximum). */
  readonly pageSize?: number
  /** Tickers the plan does not cover: 403. */
  readonly notEntitled?: ReadonlyArray<string>
  /** `"DELAYED"` answers like a plan with delayed data. */
  readonly status?: "OK" | "DELAYED"
  /** A delayed plan: answers `DELAYED` and serves no bar that closed less than this many minutes before now. */
  readonly delayMinutes?: number
  /** Per ticker: a delayed plan for that ticker only (answers `DELAYED`, serves no bar closed less than this many minutes ago). */
  readonly delayedTickers?: Readonly<Record<string, number>>
  /** Per ticker: a bar is published only this many seconds after its minute closes (judged by `now`). */
  readonly publishAfterSeconds?: Readonly<Record<string, number>>
  /** The plan's history: a request starting before today's UTC midnight minus this many days gets Massive's 403. */
  readonly historyDays?: number
  /** Requests admitted in any sliding 60 s (real time); more get a 429. */
  readonly rateLimit?: { readonly requestsPerMinute: number; readonly sendRetryAfter: boolean }
  /** The clock the per-minute window, publication and the plan's limits are judged by (default the wall clock); a test driving TestClock passes its time. */
  readonly now?: () => number
  /** Seconds sent in `Retry-After` by the `"429-retry-after"` fault (default 1). */
  readonly retryAfterSeconds?: number
  /** How long a `"slow"` answer takes (default 10 s). */
  readonly slowMillis?: number
  /** The loopback port (default: any free one); a fixed one lets a test stop the vendor and start it again at the same address. */
  readonly port?: number
  /** Chooses a fault for the n-th request (0-based, counting every request). */
  readonly faults?: (requestIndex: number, url: URL) => MassiveFault | null
}

export interface LoggedRequest {
  readonly index: number
  /** The URL as received (it must never carry the key). */
  readonly url: string
  /** The status answered (for a `"slow"` fault: the one it answers once the delay is over). */
  readonly status: number
  /** Real time of arrival, Unix ms. */
  readonly at: number
  readonly authorizationHeader: boolean
  /** Which of the accepted keys asked (tests with several instances give each its own key); null if none matched. */
  readonly apiKey: string | null
  readonly cursor: string | null
  readonly fault: MassiveFault | null
}

export interface MassiveFake {
  /** `http://127.0.0.1:PORT`, for `MASSIVE_BASE_URL`. */
  readonly baseUrl: string
  readonly requests: ReadonlyArray<LoggedRequest>
  readonly stop: () => Promise<void>
}

interface Cursor {
  readonly after: number
  readonly limit: number
  readonly sort: "asc" | "desc"
}

const spanMillis: Record<string, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 }
const day = 86_400_000

const requestId = (): string => crypto.randomUUID().replaceAll("-", "")

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Response =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } })

const vendorError = (status: number, error: string, headers: Record<string, string> = {}): Response =>
  json(status, { status: "ERROR", request_id: requestId(), error }, headers)

const rateLimitBody =
  "You've exceeded the maximum requests per minute, please wait or upgrade your subscription to continue. https://massive.com/pricing"

const badGateway =
  "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

/** `YYYY-MM-DD` (a whole UTC day; `to` runs to its last millisecond) or Unix ms; null when malformed. */
const parseTime = (text: string, end: boolean): number | null => {
  if (/^\d+$/.test(text)) return Number(text)
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text)) return null
  const start = Date.parse(`${text}T00:00:00Z`)
  return Number.isNaN(start) ? null : end ? start + day - 1 : start
}

/** OHLCV buckets of `span` ms built from sorted M1 bars. */
const aggregate = (bars: ReadonlyArray<Candle>, span: number): ReadonlyArray<Candle> => {
  if (span === 60_000) return bars
  const out: Array<Candle> = []
  for (const bar of bars) {
    const ts = bar.ts - (bar.ts % span)
    const last = out[out.length - 1]
    if (last === undefined || last.ts !== ts) {
      out.push({ ...bar, ts })
      continue
    }
    const volume = last.volume + bar.volume
    out[out.length - 1] = {
      ts,
      open: last.open,
      high: Math.max(last.high, bar.high),
      low: Math.min(last.low, bar.low),
      close: bar.close,
      volume,
      vwap: last.vwap === null || bar.vwap === null || volume === 0 ? null : (last.vwap * last.volume + bar.vwap * bar.volume) / volume,
      trades: last.trades === null || bar.trades === null ? null : last.trades + bar.trades
    }
  }
  return out
}

const toWire = (bar: Candle) => ({
  v: bar.volume,
  ...(bar.vwap === null ? {} : { vw: bar.vwap }),
  o: bar.open,
  c: bar.close,
  h: bar.high,
  l: bar.low,
  t: bar.ts,
  ...(bar.trades === null ? {} : { n: bar.trades })
})

const encodeCursor = (cursor: Cursor): string => Buffer.from(JSON.stringify(cursor)).toString("base64url")

const decodeCursor = (text: string): Cursor | null => {
  try {
    const value = JSON.parse(Buffer.from(text, "base64url").toString("utf8")) as Cursor
    return typeof value.after === "number" && typeof value.limit === "number" ? value : null
  } catch {
    return null
  }
}

export const startMassiveFake = (options: MassiveFakeOptions): MassiveFake => {
  const sorted = new Map([...options.bars].map(([ticker, bars]) => [ticker, [...bars].sort((a, b) => a.ts - b.ts)]))
  const notEntitled = new Set(options.notEntitled ?? [])
  const requests: Array<LoggedRequest> = []
  const admitted: Array<number> = []
  const slowTimers = new Set<ReturnType<typeof setTimeout>>()
  let origin = ""

  const authorized = (request: Request, url: URL): boolean => {
    const header = request.headers.get("authorization")
    const bearer = header?.startsWith("Bearer ") ? header.slice("Bearer ".length) : null
    const key = bearer ?? url.searchParams.get("apiKey")
    return key !== null && options.apiKeys.includes(key)
  }

  /** The per-minute window, in real time: this fake is a separate server with its own clock. */
  const rateLimited = (now: number): Response | null => {
    if (options.rateLimit === undefined) return null
    while (admitted.length > 0 && (admitted[0] ?? 0) <= now - 60_000) admitted.shift()
    if (admitted.length < options.rateLimit.requestsPerMinute) {
      admitted.push(now)
      return null
    }
    const wait = Math.max(1, Math.ceil(((admitted[0] ?? now) + 60_000 - now) / 1000))
    return vendorError(429, rateLimitBody, options.rateLimit.sendRetryAfter ? { "retry-after": String(wait) } : {})
  }

  const aggregates = (url: URL, fault: MassiveFault | null, now: number): Response => {
    const match = /^\/v2\/aggs\/ticker\/([^/]+)\/range\/([^/]+)\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname)
    if (match === null) return json(404, { status: "NOT_FOUND", request_id: requestId(), message: "Not Found" })
    const [, rawTicker = "", multiplierText = "", timespan = "", fromText = "", toText = ""] = match
    const ticker = decodeURIComponent(rawTicker)
    const multiplier = Number(multiplierText)
    const unit = spanMillis[timespan]
    if (!Number.isInteger(multiplier) || multiplier < 1 || unit === undefined) {
      return vendorError(400, `Could not parse the multiplier/timespan: '${multiplierText}/${timespan}'`)
    }
    const from = parseTime(fromText, false)
    if (from === null) return vendorError(400, "Could not parse the time parameter: 'from'. Use YYYY-MM-DD or Unix MS Timestamps")
    const to = parseTime(toText, true)
    if (to === null) return vendorError(400, "Could not parse the time parameter: 'to'. Use YYYY-MM-DD or Unix MS Timestamps")
    const refusesHistory = options.historyDays !== undefined && from < now - (now % day) - options.historyDays * day
    if (notEntitled.has(ticker) || refusesHistory) {
      return json(403, {
        status: "NOT_AUTHORIZED",
        request_id: requestId(),
        message: "You are not entitled to this data. Please upgrade your plan at https://massive.com/pricing"
      })
    }
    // What has been published by now: a bar closes a minute after it opens, then waits for the ticker's lateness and the plan's delay.
    const delayMinutes = options.delayedTickers?.[ticker] ?? options.delayMinutes
    const waitMillis = (options.publishAfterSeconds?.[ticker] ?? 0) * 1000 + (delayMinutes ?? 0) * 60_000
    const published = (sorted.get(ticker) ?? []).filter((bar) => bar.ts + 60_000 + waitMillis <= now)

    const cursorText = url.searchParams.get("cursor")
    const cursor = cursorText === null ? null : decodeCursor(cursorText)
    if (cursorText !== null && cursor === null) return vendorError(400, "Could not parse the cursor")
    const sort = cursor?.sort ?? (url.searchParams.get("sort") === "desc" ? "desc" : "asc")
    const limit = cursor?.limit ?? Math.min(50_000, Number(url.searchParams.get("limit") ?? 5000) || 5000)
    const inRange = aggregate(published, multiplier * unit).filter((bar) => bar.ts >= from && bar.ts <= to)
    const ordered = sort === "asc" ? inRange : [...inRange].reverse()
    const remaining = cursor === null ? ordered : ordered.filter((bar) => (sort === "asc" ? bar.ts > cursor.after : bar.ts < cursor.after))
    const page = fault === "empty-next" ? [] : remaining.slice(0, Math.min(limit, options.pageSize ?? 50_000))
    const last = page[page.length - 1]
    const more = last !== undefined && remaining.length > page.length
    // An empty page that still points on: the next one starts where this one would have.
    const after = fault === "empty-next" ? (cursor?.after ?? (sort === "asc" ? from - 1 : to + 1)) : last?.ts

    const body = {
      ticker,
      queryCount: page.length,
      resultsCount: page.length,
      adjusted: url.searchParams.get("adjusted") !== "false",
      ...(page.length === 0 ? {} : { results: page.map(toWire) }),
      status: delayMinutes !== undefined ? "DELAYED" : (options.status ?? "OK"),
      request_id: requestId(),
      count: page.length,
      ...((more || fault === "empty-next") && after !== undefined
        ? { next_url: `${origin}${url.pathname}?cursor=${encodeCursor({ after, limit, sort })}` }
        : {})
    }
    if (fault === "schema-mismatch") return json(200, { ...body, results: "bars" })
    if (fault === "truncated-json") {
      const text = JSON.stringify(body)
      return new Response(text.slice(0, Math.floor(text.length / 2)), { status: 200, headers: { "content-type": "application/json" } })
    }
    return json(200, body)
  }

  const answer = (request: Request, url: URL, fault: MassiveFault | null): Response => {
    // A proxy's faults come before the vendor looks at the request.
    if (fault === "502-html") return new Response(badGateway, { status: 502, headers: { "content-type": "text/html" } })
    if (fault === "429") return vendorError(429, rateLimitBody)
    if (fault === "429-retry-after") return vendorError(429, rateLimitBody, { "retry-after": String(options.retryAfterSeconds ?? 1) })
    if (fault === "401" || !authorized(request, url)) return vendorError(401, "Unknown API Key")
    // The vendor's clock is read once per request: a TestClock-driven test counts one arrival per request.
    const now = (options.now ?? Date.now)()
    return rateLimited(now) ?? aggregates(url, fault, now)
  }

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: options.port ?? 0,
    fetch(request) {
      const url = new URL(request.url)
      const index = requests.length
      const fault = options.faults?.(index, url) ?? null
      const response = answer(request, url, fault)
      requests.push({
        index,
        url: request.url,
        status: response.status,
        at: Date.now(),
        authorizationHeader: request.headers.has("authorization"),
        apiKey: options.apiKeys.find((key) => request.headers.get("authorization") === `Bearer ${key}`) ?? null,
        cursor: url.searchParams.get("cursor"),
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
  origin = `http://127.0.0.1:${server.port}`

  return {
    baseUrl: origin,
    requests,
    stop: async () => {
      for (const timer of slowTimers) clearTimeout(timer)
      await server.stop(true)
    }
  }
}
