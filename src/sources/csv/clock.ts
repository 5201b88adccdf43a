import { ParseResult, Schema } from "effect"
import { histdataToUtc } from "../../domain/source-clock.ts"

/**
 * The clock an export's timestamps are written in; a per-source setting, because vendors and brokers
 * follow different daylight-saving schedules (see shared/data/README.md and reference/market-calendar.md).
 *
 * - `utc`: already UTC (Dukascopy "Gmt time", Binance).
 * - `histdata`: HistData's clock, UTC−5 in European winter and UTC−4 in European summer.
 * - `new-york+7`: an MT4 broker server, GMT+2 in US winter and GMT+3 in US summer (New York + 7 h).
 * - `{ fixedOffsetMinutes }`: a clock that never changes, e.g. 120 for UTC+2.
 */
export const SourceClock = Schema.Union(
  Schema.Literal("utc", "histdata", "new-york+7"),
  Schema.Struct({ fixedOffsetMinutes: Schema.Int.pipe(Schema.between(-14 * 60, 14 * 60)) })
)
export type SourceClock = typeof SourceClock.Type

/** A clock as written in a setting: `utc`, `histdata`, `new-york+7`, or a fixed offset such as `UTC+2` or `UTC-03:30`. */
export const SourceClockFromString = Schema.transformOrFail(Schema.String, SourceClock, {
  strict: true,
  decode: (text, _, ast) => {
    if (text === "utc" || text === "histdata" || text === "new-york+7") return ParseResult.succeed(text)
    const fixed = /^UTC([+-])(\d{1,2})(?::(\d{2}))?$/.exec(text)
    if (!fixed) {
      return ParseResult.fail(
        new ParseResult.Type(ast, text, `expected utc, histdata, new-york+7 or UTC±H[:MM], got "${text}"`)
      )
    }
    const minutes = Number(fixed[2]) * 60 + Number(fixed[3] ?? 0)
    return ParseResult.succeed({ fixedOffsetMinutes: fixed[1] === "-" ? -minutes : minutes })
  },
  encode: (clock) => {
    if (typeof clock === "string") return ParseResult.succeed(clock)
    const minutes = Math.abs(clock.fixedOffsetMinutes)
    const sign = clock.fixedOffsetMinutes < 0 ? "-" : "+"
    return ParseResult.succeed(`UTC${sign}${Math.floor(minutes / 60)}${minutes % 60 === 0 ? "" : `:${String(minutes % 60).padStart(2, "0")}`}`)
  }
})

const minute = 60_000
const hour = 60 * minute

/** Day of the month of the n-th Sunday (n ≥ 1) of a month. */
const nthSunday = (year: number, month: number, n: number): number =>
  1 + ((7 - new Date(Date.UTC(year, month, 1)).getUTCDay()) % 7) + 7 * (n - 1)

/**
 * Whether New York is on summer time at an instant: second Sunday of March 02:00 EST (07:00 UTC) to first
 * Sunday of November 02:00 EDT (06:00 UTC), the US schedule since 2007.
 */
export const isUsSummerTime = (utcMs: number): boolean => {
  const year = new Date(utcMs).getUTCFullYear()
  return utcMs >= Date.UTC(year, 2, nthSunday(year, 2, 2), 7) && utcMs < Date.UTC(year, 10, nthSunday(year, 10, 1), 6)
}

/** An MT4 broker wall-clock time (New York + 7 h, read as if it were UTC) to the real UTC instant. */
export const newYorkPlus7ToUtc = (fileMs: number): number =>
  isUsSummerTime(fileMs - 2 * hour) ? fileMs - 3 * hour : fileMs - 2 * hour

/** The conversion from an exporter's wall clock (read as if it were UTC) to UTC. */
export const toUtc = (clock: SourceClock): ((fileMs: number) => number) => {
  if (clock === "utc") return (fileMs) => fileMs
  if (clock === "histdata") return histdataToUtc
  if (clock === "new-york+7") return newYorkPlus7ToUtc
  const offset = clock.fixedOffsetMinutes * minute
  return (fileMs) => fileMs - offset
}
