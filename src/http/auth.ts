import { createHash, timingSafeEqual } from "node:crypto"
import { Option, Redacted } from "effect"
import type { HttpSettings } from "../config.ts"
import type { Access } from "./api.ts"

const digest = (text: string) => createHash("sha256").update(text).digest()

/** Equal in constant time: both sides hashed first, so neither length nor content leaks through timing. */
const sameToken = (given: string, expected: Buffer) => timingSafeEqual(digest(given), expected)

/**
 * Who may pass: with API_TOKEN set, writes need it; with API_READ_TOKEN set, reads need it or API_TOKEN.
 * Returns null when the request may go on, else what is wrong (never echoing what was sent).
 */
export const makeAuthorizer = (settings: HttpSettings) => {
  const write = Option.map(settings.apiToken, (t) => digest(Redacted.value(t)))
  const read = Option.map(settings.apiReadToken, (t) => digest(Redacted.value(t)))
  const needed = (access: Access): ReadonlyArray<Buffer> =>
    access === "write"
      ? Option.toArray(write)
      : access === "read" && Option.isSome(read)
        ? [read.value, ...Option.toArray(write)]
        : []
  return (access: Access, authorization: string | undefined): string | null => {
    const tokens = needed(access)
    if (tokens.length === 0) return null
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "")
    if (!match) return access === "write" ? "this request needs Authorization: Bearer <API_TOKEN>" : "this request needs Authorization: Bearer <API_READ_TOKEN>"
    // Every configured token is compared, so the time taken does not say which one came close.
    const ok = tokens.map((t) => sameToken(match[1]!, t)).some(Boolean)
    return ok ? null : "the bearer token is not valid for this request"
  }
}
