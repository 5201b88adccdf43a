import { Data } from "effect"
import { redactSecretFragments } from "../../domain/secret.ts"

/** What a person needs to act on a failed MetaApi request; every string is already free of the token. */
export interface FailedBrokerRequest {
  readonly account: string
  /** The broker's symbol asked for (`XAUUSD.a`). */
  readonly symbol: string
  /** What was asked, in a few words: `current price`, `1m candles back from 2021-03-03T12:00:00.000Z`. */
  readonly asked: string
  /** The URL asked (the token travels in a header, never in a URL); null when the failure came before any request. */
  readonly url: string | null
  /** HTTP status; null when no response arrived. */
  readonly status: number | null
  /** What went wrong in one line: MetaApi's own `message` when it sent one. */
  readonly detail: string
  /** At most 200 characters of the response body (or of the transport failure). */
  readonly excerpt: string
}

type Failure = FailedBrokerRequest & { readonly message: string }

/** 401 (or 403): the token is wrong, expired or not allowed this account. */
export class Unauthorized extends Data.TaggedError("Unauthorized")<Failure> {}
/** 404: no such account, or the broker has no such symbol. */
export class NotFound extends Data.TaggedError("NotFound")<Failure> {}
/**
 * 429. `recommendedRetryTime` is MetaApi's own instant (Unix ms) from the body's metadata; `retryAfterMillis`
 * is the wait to honour from now: the later of that instant and the `Retry-After` header.
 */
export class RateLimited extends Data.TaggedError("RateLimited")<
  Failure & { readonly recommendedRetryTime: number | null; readonly retryAfterMillis: number | null }
> {}
/** 400 and any other 4xx: the request itself is wrong (a bad timeframe, a malformed time). */
export class Validation extends Data.TaggedError("Validation")<Failure> {}
/** A 5xx (MetaApi's 504 means the terminal did not answer in time) or a 408. */
export class Server extends Data.TaggedError("Server")<Failure & { readonly status: number }> {}
export class Timeout extends Data.TaggedError("Timeout")<Failure & { readonly timeoutMillis: number }> {}
export class Transport extends Data.TaggedError("Transport")<Failure> {}
/** `invalid-json` is a cut or foreign body (transient); `schema-mismatch` is JSON we do not understand (permanent). */
export class Decode extends Data.TaggedError("Decode")<Failure & { readonly reason: "invalid-json" | "schema-mismatch" }> {}

export type MetaApiError = Unauthorized | NotFound | RateLimited | Validation | Server | Timeout | Transport | Decode

/** Worth another try after a wait; everything else stops the broker stream until a person acts. */
export const isTransient = (error: MetaApiError): boolean => {
  switch (error._tag) {
    case "RateLimited":
    case "Server":
    case "Timeout":
    case "Transport":
      return true
    case "Decode":
      return error.reason === "invalid-json"
    default:
      return false
  }
}

const redacted = "[redacted]"

/** Removes the token wherever it could hide: an `auth-token` header echoed back, the bare string or any 8+ characters of it. */
export const redactToken = (text: string, token: string | null): string => {
  const scrubbed = text.replace(/(auth-token["']?\s*[:=]\s*["']?)[^\s"'<>,&]+/gi, `$1${redacted}`)
  return redactSecretFragments(scrubbed, token)
}

/** One line of at most 200 characters, for logs and status pages. */
export const excerptOf = (text: string, token: string | null): string => {
  const line = redactToken(text, token).replace(/\s+/g, " ").trim()
  return line.length <= 200 ? line : `${line.slice(0, 199)}…`
}

const withMessage = (what: string, facts: FailedBrokerRequest): Failure => {
  const where = [`account ${facts.account}`, facts.symbol, facts.asked, facts.status === null ? null : `HTTP ${facts.status}`]
  return { ...facts, message: `MetaApi ${what}: ${facts.detail} (${where.filter(Boolean).join(", ")})` }
}

/** The error for a non-2xx answer, per MetaApi's status table. */
export const failureForStatus = (
  status: number,
  facts: FailedBrokerRequest,
  wait: { readonly recommendedRetryTime: number | null; readonly retryAfterMillis: number | null }
): MetaApiError => {
  if (status === 401 || status === 403) return new Unauthorized(withMessage("rejected the token", facts))
  if (status === 404) return new NotFound(withMessage("found no such account or symbol", facts))
  if (status === 429) return new RateLimited({ ...withMessage("rate limit exceeded", facts), ...wait })
  if (status === 408 || status >= 500) return new Server({ ...withMessage("server error", facts), status })
  return new Validation(withMessage("refused the request", facts))
}

export const missingToken = (facts: FailedBrokerRequest): Unauthorized =>
  new Unauthorized(withMessage("has no token", { ...facts, detail: "METAAPI_TOKEN is not set" }))

export const timedOut = (facts: FailedBrokerRequest, timeoutMillis: number): Timeout =>
  new Timeout({ ...withMessage("request timed out", facts), timeoutMillis })

export const transportFailed = (facts: FailedBrokerRequest): Transport => new Transport(withMessage("connection failed", facts))

export const invalidUrl = (facts: FailedBrokerRequest): Validation => new Validation(withMessage("request URL is invalid", facts))

export const undecodable = (facts: FailedBrokerRequest, reason: "invalid-json" | "schema-mismatch"): Decode =>
  new Decode({
    ...withMessage(reason === "invalid-json" ? "answered with a body that is not JSON" : "answered with JSON of an unknown shape", facts),
    reason
  })
