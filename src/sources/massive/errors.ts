import { Data } from "effect"
import { redactSecretFragments } from "../../domain/secret.ts"

/** What a person needs to act on a failed request; every string is already free of the API key. */
export interface FailedRequest {
  readonly ticker: string
  /** The range asked for as an ISO 8601 interval `from/to`, `to` exclusive. */
  readonly range: string
  /** The URL asked, `apiKey=` redacted; null when the failure came before any request. */
  readonly url: string | null
  /** HTTP status; null when no response arrived. */
  readonly status: number | null
  /** The vendor's `request_id`, when its body carried one. */
  readonly requestId: string | null
  /** What went wrong in one line: the vendor's own `error`/`message` when it sent one. */
  readonly detail: string
  /** At most 200 characters of the response body (or of the transport failure). */
  readonly excerpt: string
}

type Failure = FailedRequest & { readonly message: string }

export class Unauthorized extends Data.TaggedError("Unauthorized")<Failure> {}
export class NotEntitled extends Data.TaggedError("NotEntitled")<Failure> {}
export class RateLimited extends Data.TaggedError("RateLimited")<Failure & { readonly retryAfterMillis: number | null }> {}
export class BadRequest extends Data.TaggedError("BadRequest")<Failure> {}
export class NotFound extends Data.TaggedError("NotFound")<Failure> {}
/** A 5xx (often an HTML page from a proxy) or a 408. */
export class ServerError extends Data.TaggedError("ServerError")<Failure & { readonly status: number }> {}
export class Timeout extends Data.TaggedError("Timeout")<Failure & { readonly timeoutMillis: number }> {}
export class Transport extends Data.TaggedError("Transport")<Failure> {}
/** `invalid-json` is a cut or foreign body (transient); `schema-mismatch` is JSON we do not understand (permanent). */
export class Decode extends Data.TaggedError("Decode")<Failure & { readonly reason: "invalid-json" | "schema-mismatch" }> {}
/** The shared request budget (kept in the database) could not be asked: nothing was sent. */
export class BudgetUnavailable extends Data.TaggedError("BudgetUnavailable")<Failure> {}
export class UnknownSymbol extends Data.TaggedError("UnknownSymbol")<{ readonly symbol: string; readonly message: string }> {}

export type MassiveError =
  | Unauthorized
  | NotEntitled
  | RateLimited
  | BadRequest
  | NotFound
  | ServerError
  | Timeout
  | Transport
  | Decode
  | BudgetUnavailable
  | UnknownSymbol

/** Worth another try after a wait; everything else stops the stream until a person acts. */
export const isTransient = (error: MassiveError): boolean => {
  switch (error._tag) {
    case "RateLimited":
    case "ServerError":
    case "Timeout":
    case "Transport":
    case "BudgetUnavailable":
      return true
    case "Decode":
      return error.reason === "invalid-json"
    default:
      return false
  }
}

const redacted = "[redacted]"

/** Removes the key wherever it could hide: an `apiKey=` parameter, a Bearer token, the bare string or any 8+ characters of it. */
export const redactSecret = (text: string, secret: string | null): string => {
  const scrubbed = text.replace(/(apiKey=)[^&\s"'<>]*/gi, `$1${redacted}`).replace(/(Bearer\s+)[^\s"'<>,]+/gi, `$1${redacted}`)
  return redactSecretFragments(scrubbed, secret)
}

/** One line of at most 200 characters, for logs and status pages. */
export const excerptOf = (text: string, secret: string | null): string => {
  const line = redactSecret(text, secret).replace(/\s+/g, " ").trim()
  return line.length <= 200 ? line : `${line.slice(0, 199)}…`
}

const withMessage = (what: string, facts: FailedRequest): Failure => {
  const where = [facts.ticker, facts.range, facts.status === null ? null : `HTTP ${facts.status}`, facts.requestId && `request ${facts.requestId}`]
  return { ...facts, message: `Massive ${what}: ${facts.detail} (${where.filter(Boolean).join(", ")})` }
}

/** The error for a non-2xx answer, per the vendor's status table. */
export const failureForStatus = (status: number, facts: FailedRequest, retryAfterMillis: number | null): MassiveError => {
  if (status === 401) return new Unauthorized(withMessage("rejected the API key", facts))
  if (status === 403) return new NotEntitled(withMessage("plan does not cover this data", facts))
  if (status === 404) return new NotFound(withMessage("path not found", facts))
  if (status === 429) return new RateLimited({ ...withMessage("rate limit exceeded", facts), retryAfterMillis })
  // 408 is the server giving up on a slow request: as transient as a 5xx.
  if (status === 408 || status >= 500) return new ServerError({ ...withMessage("server error", facts), status })
  // 400 and any other 4xx: the request itself is wrong, so another try gets the same answer.
  return new BadRequest(withMessage("refused the request", facts))
}

export const missingApiKey = (facts: FailedRequest): Unauthorized =>
  new Unauthorized(withMessage("has no API key", { ...facts, detail: "MASSIVE_API_KEY is not set" }))

export const timedOut = (facts: FailedRequest, timeoutMillis: number): Timeout =>
  new Timeout({ ...withMessage("request timed out", facts), timeoutMillis })

export const transportFailed = (facts: FailedRequest): Transport => new Transport(withMessage("connection failed", facts))

export const budgetUnavailable = (facts: FailedRequest): BudgetUnavailable =>
  new BudgetUnavailable(withMessage("request budget could not be asked", facts))

/** A `next_url` the key must not follow: permanent, since the vendor would send the same one again. */
export const refusedNextUrl = (facts: FailedRequest): BadRequest => new BadRequest(withMessage("sent a next_url the key will not follow", facts))

export const invalidUrl = (facts: FailedRequest): BadRequest => new BadRequest(withMessage("request URL is invalid", facts))

export const undecodable = (facts: FailedRequest, reason: "invalid-json" | "schema-mismatch"): Decode =>
  new Decode({ ...withMessage(reason === "invalid-json" ? "answered with a body that is not JSON" : "answered with JSON of an unknown shape", facts), reason })

export const unknownSymbol = (symbol: string, known: ReadonlyArray<string>): UnknownSymbol =>
  new UnknownSymbol({ symbol, message: `no Massive ticker is configured for ${symbol} (known: ${known.join(", ")})` })
