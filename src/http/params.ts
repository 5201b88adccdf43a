import { Effect, ParseResult, Schema } from "effect"
import { AppConfig } from "../config.ts"
import type { SymbolSpec } from "../domain/symbol.ts"
import { Timeframe } from "../domain/timeframe.ts"
import { NotFound } from "./errors.ts"

const isoInstant = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/

/** The era an instant may name: market history, not the ±275,760 years a Date holds (which the database refuses, and the calendar maths would walk for minutes). */
export const earliestInstant = Date.parse("1970-01-01T00:00:00Z")
export const latestInstant = Date.parse("2100-01-01T00:00:00Z")
const inEra = (ms: number) => ms >= earliestInstant && ms < latestInstant

/** Unix milliseconds inside the era (a JSON body's number form of an instant). */
export const InstantMillis = Schema.Number.pipe(
  Schema.filter(inEra, { message: () => "expected Unix milliseconds from 1970-01-01 to before 2100-01-01" })
).annotations({ jsonSchema: { type: "number", minimum: earliestInstant, exclusiveMaximum: latestInstant } })

/** An instant as a client writes it: ISO 8601 (`2021-01-04`, `2021-01-04T10:00:00Z`) or Unix milliseconds. */
export const Instant = Schema.transformOrFail(Schema.String, Schema.Number, {
  strict: true,
  decode: (text, _, ast) => {
    const trimmed = text.trim()
    const ms = /^-?\d{1,16}$/.test(trimmed)
      ? Number(trimmed)
      : isoInstant.test(trimmed)
        ? // A date alone, or a time without a zone, is UTC.
          Date.parse(trimmed.length === 10 ? `${trimmed}T00:00:00Z` : /(Z|[+-]\d{2}:\d{2})$/.test(trimmed) ? trimmed : `${trimmed}Z`)
        : Number.NaN
    return Number.isFinite(ms) && inEra(ms)
      ? ParseResult.succeed(ms)
      : ParseResult.fail(
          new ParseResult.Type(ast, text, `expected ISO 8601 (2021-01-04T10:00:00Z) or Unix milliseconds, from 1970 to before 2100, got ${JSON.stringify(text).slice(0, 60)}`)
        )
  },
  encode: (ms) => ParseResult.succeed(new Date(ms).toISOString())
}).annotations({ jsonSchema: { type: "string", description: "ISO 8601 (2021-01-04T10:00:00Z) or Unix milliseconds", examples: ["2021-01-04T10:00:00Z", "1609754400000"] } })

/** How every answer writes an instant: ISO 8601 UTC, or null. */
export function iso(ms: number): string
export function iso(ms: number | null): string | null
export function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString()
}

/** A whole number in a query string, within bounds. */
export const IntParam = (min: number, max: number, what: string) =>
  Schema.transformOrFail(Schema.String, Schema.Number, {
    strict: true,
    decode: (text, _, ast) => {
      const n = /^\s*-?\d{1,16}\s*$/.test(text) ? Number(text) : Number.NaN
      return Number.isInteger(n) && n >= min && n <= max
        ? ParseResult.succeed(n)
        : ParseResult.fail(new ParseResult.Type(ast, text, `${what}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(text).slice(0, 40)}`))
    },
    encode: (n) => ParseResult.succeed(String(n))
  }).annotations({ jsonSchema: { type: "integer", minimum: min, maximum: max, description: what } })

/** A symbol or timeframe as typed; checked against the configuration afterwards, so an unknown one is a 404 with the list. */
export const Name = Schema.String.pipe(
  Schema.maxLength(32, { message: () => "at most 32 characters" }),
  Schema.pattern(/^[A-Za-z0-9._:-]+$/, { message: () => "letters, digits and . _ : - only" })
)

/**
 * A timeframe as a client names it. The document offers the literal union M1 … D1 (an enum a generated client
 * types); any case is read, and a name outside it is a 404 with the list (resolveTimeframe), not a 400.
 */
export const TimeframeName = Name.annotations({
  jsonSchema: { type: "string", enum: [...Timeframe.literals], description: "the bar length (any case is read)" }
})

/** A configured symbol, whatever its case; else 404 with the configured ones. */
export const resolveSymbol = (text: string) =>
  Effect.flatMap(AppConfig, (config) => {
    const spec = config.symbols.find((s) => s.symbol === text.trim().toUpperCase())
    return spec
      ? Effect.succeed<SymbolSpec>(spec)
      : Effect.fail(new NotFound({ field: "symbol", message: `unknown symbol ${text}`, valid: config.symbols.map((s) => s.symbol) }))
  })

/** M1 … D1, whatever the case; else 404 with the list. */
export const resolveTimeframe = (text: string) => {
  const upper = text.trim().toUpperCase()
  return Schema.is(Timeframe)(upper)
    ? Effect.succeed<Timeframe>(upper)
    : Effect.fail(new NotFound({ field: "timeframe", message: `unknown timeframe ${text}`, valid: [...Timeframe.literals] }))
}

/** A configured symbol and a known timeframe. */
export const resolveStream = (symbolText: string, timeframeText: string) =>
  Effect.all({ spec: resolveSymbol(symbolText), timeframe: resolveTimeframe(timeframeText) })
