import { Option, ParseResult } from "effect"

/** What an outside HTTP API answered, body read in full: the common ground of the vendor and broker clients. */
export interface Answer {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

/** `Retry-After` in whole or decimal seconds, or as an HTTP date, as milliseconds from `now`; null when absent or unreadable. */
export const parseRetryAfter = (header: string | undefined, now: number): number | null => {
  if (header === undefined) return null
  const value = header.trim()
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000)
  const at = Date.parse(value)
  return Number.isNaN(at) ? null : Math.max(0, at - now)
}

export const parseJson = (body: string): Option.Option<unknown> => {
  try {
    return Option.some(JSON.parse(body))
  } catch {
    return Option.none()
  }
}

/** The first thing wrong with a body's shape, for an error a person reads: `results.0.t: Expected number, …`. */
export const firstIssue = (error: ParseResult.ParseError): string => {
  const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error)
  return issue === undefined ? "unexpected shape" : `${issue.path.join(".") || "body"}: ${issue.message}`
}
