import { SqlError } from "@effect/sql/SqlError"

/** The fields PostgreSQL sends with an error (node-postgres and PGlite both keep them on the error object). */
interface PostgresFields {
  readonly code?: unknown
  readonly message?: unknown
  readonly detail?: unknown
  readonly hint?: unknown
}

/** `postgres://user:secret@host/db` → `postgres://user:***@host/db`, and `password=…` in a connection string. */
export const redactSecrets = (text: string): string =>
  text.replace(/(postgres(?:ql)?:\/\/[^:/@\s]+:)[^@\s]+@/gi, "$1***@").replace(/(password\s*=\s*)\S+/gi, "$1***")

const text = (value: unknown): string | null => (typeof value === "string" && value.trim() !== "" ? value.trim() : null)

/**
 * One line a person can act on for any failure: for a database error, what PostgreSQL said — its SQLSTATE code,
 * message, detail and hint — instead of the driver's bare "Failed to execute statement"; secrets redacted.
 */
export const describeError = (error: unknown): string => {
  if (error instanceof SqlError) {
    const cause = (error.cause ?? {}) as PostgresFields
    const code = text(cause.code)
    const said = text(cause.message) ?? (error.cause instanceof Error ? error.cause.message : null)
    if (said === null) return redactSecrets(error.message)
    const detail = text(cause.detail)
    const hint = text(cause.hint)
    return redactSecrets(
      `database error${code ? ` ${code}` : ""}: ${said}${detail ? ` (detail: ${detail})` : ""}${hint ? ` (hint: ${hint})` : ""}`
    )
  }
  if (error instanceof Error) return redactSecrets(error.message)
  return redactSecrets(String(error))
}
