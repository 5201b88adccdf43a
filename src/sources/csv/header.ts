import { Either, ParseResult, Schema } from "effect"
import type { Candle } from "../../domain/candle.ts"
import { type SourceClock, toUtc } from "./clock.ts"
import { CsvLineError, Decimal } from "./line.ts"

/** A bar read from a file, or a row that is deliberately not one (a fill's stand-in, another symbol's bar). */
export type ReadRow = { readonly _tag: "bar"; readonly bar: Candle } | { readonly _tag: "skip" }

export type RowParser = (text: string, line: number) => Either.Either<ReadRow, CsvLineError>

const timePatterns: ReadonlyArray<RegExp> = [
  // ISO 8601, `T` or a space, seconds and fraction optional, an optional zone: 2025-05-15 07:35:00, 2021-01-04T00:00:00.000Z
  /^(?<year>\d{4})-(?<month>\d{2})-(?<day>\d{2})(?:[T ](?<hour>\d{2}):(?<minute>\d{2})(?::(?<second>\d{2})(?:\.(?<frac>\d{1,9}))?)?)?(?<zone>Z|[+-]\d{2}:?\d{2})?$/,
  // MetaTrader: 2025.05.15 07:35 or 2025.05.15 07:35:00
  /^(?<year>\d{4})\.(?<month>\d{2})\.(?<day>\d{2})(?:[ T](?<hour>\d{2}):(?<minute>\d{2})(?::(?<second>\d{2}))?)?$/,
  // Dukascopy: 15.05.2025 07:35:00.000
  /^(?<day>\d{2})\.(?<month>\d{2})\.(?<year>\d{4})(?: (?<hour>\d{2}):(?<minute>\d{2})(?::(?<second>\d{2})(?:\.(?<frac>\d{1,9}))?)?)?$/
]

/**
 * A time cell to UTC ms: ISO 8601, `YYYY.MM.DD HH:MM[:SS]`, `DD.MM.YYYY HH:MM:SS`, or Unix seconds (10 digits)
 * or milliseconds (13 digits). A stamp with a zone (or a Unix one) is absolute; one without is the exporter's
 * wall clock, converted with `clock`. Impossible dates (2021-02-30, 24:00) are refused.
 */
export const readTime = (text: string, clock: (fileMs: number) => number): number | string => {
  if (/^\d{9,10}$/.test(text)) return Number(text) * 1000
  if (/^\d{12,13}$/.test(text)) return Number(text)
  for (const pattern of timePatterns) {
    const groups = pattern.exec(text)?.groups
    if (!groups) continue
    const [year, month, day, hour, minute, second] = ["year", "month", "day", "hour", "minute", "second"].map((k) => Number(groups[k] ?? 0)) as [number, number, number, number, number, number]
    const milli = Number((groups.frac ?? "0").padEnd(3, "0").slice(0, 3))
    const wall = Date.UTC(year, month - 1, day, hour, minute, second, milli)
    const at = new Date(wall)
    if (at.getUTCFullYear() !== year || at.getUTCMonth() !== month - 1 || at.getUTCDate() !== day || at.getUTCHours() !== hour || at.getUTCMinutes() !== minute || at.getUTCSeconds() !== second) {
      return `impossible date or time "${text}"`
    }
    const zone = groups.zone
    if (zone === undefined) return clock(wall)
    if (zone === "Z") return wall
    const sign = zone.startsWith("-") ? -1 : 1
    const digits = zone.slice(1).replace(":", "")
    return wall - sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000
  }
  return `expected an ISO 8601 time, YYYY.MM.DD HH:MM, or Unix seconds or milliseconds, got "${text.slice(0, 40)}"`
}

/** `<TICKVOL>`, `Open Time`, `tick_volume` → `tickvol`, `opentime`, `tickvolume`. */
const normalise = (name: string) => name.trim().replace(/^"|"$/g, "").toLowerCase().replace(/[<>\s_-]/g, "")

const aliases = {
  date: ["date", "day"],
  clock: ["time"],
  stamp: ["ts", "timestamp", "datetime", "time", "opentime", "gmttime", "utctime", "localtime", "date"],
  open: ["open", "o"],
  high: ["high", "h"],
  low: ["low", "l"],
  close: ["close", "c"],
  // MetaTrader's TICKVOL is what its charts call volume; VOL (exchange volume) is 0 for forex.
  volume: ["volume", "tickvol", "tickvolume", "vol", "realvolume", "v"],
  vwap: ["vwap", "vw"],
  trades: ["trades", "numberoftrades", "n"],
  filled: ["filled"],
  symbol: ["symbol", "ticker"]
} as const

/** The separator a header uses: a tab, `;` or `,` — whichever it has most of. */
export const detectSeparator = (header: string): string => {
  const count = (s: string) => header.split(s).length - 1
  const candidates = ["\t", ";", ","].map((s) => [s, count(s)] as const).sort((a, b) => b[1] - a[1])
  return candidates[0]![1] > 0 ? candidates[0]![0] : ","
}

const decodeDecimal = Schema.decodeUnknownEither(Decimal)

/**
 * A parser built from a header line: the columns found by name in any case and order (`time` or `date`+`time`,
 * `open`, `high`, `low`, `close`, optional `volume`, `vwap`, `trades`; candlekeep's own `filled` and `symbol`),
 * separated by a tab, `;` or `,`. Rows a fill made up (`filled` true) and rows of another symbol are skipped,
 * not bad: they are a view, or someone else's bars. Left: why the header cannot be read.
 */
export const headerParser = (header: string, clock: SourceClock, symbol: string | undefined): Either.Either<RowParser, string> => {
  const separator = detectSeparator(header)
  const names = header.split(separator).map(normalise)
  const find = (options: ReadonlyArray<string>) => {
    for (const option of options) {
      const at = names.indexOf(option)
      if (at >= 0) return at
    }
    return -1
  }
  const date = find(aliases.date)
  const clockColumn = find(aliases.clock)
  const split = date >= 0 && clockColumn >= 0 && date !== clockColumn
  const stamp = split ? -1 : find(aliases.stamp)
  const [open, high, low, close] = [find(aliases.open), find(aliases.high), find(aliases.low), find(aliases.close)]
  const missing = [
    ...(split || stamp >= 0 ? [] : ["time"]),
    ...(open < 0 ? ["open"] : []), ...(high < 0 ? ["high"] : []), ...(low < 0 ? ["low"] : []), ...(close < 0 ? ["close"] : [])
  ]
  if (missing.length > 0) {
    return Either.left(`the header ${JSON.stringify(header.slice(0, 120))} names no ${missing.join(", ")} column (separator "${separator === "\t" ? "\\t" : separator}")`)
  }
  const [volume, vwap, trades, filled, symbolColumn] = [find(aliases.volume), find(aliases.vwap), find(aliases.trades), find(aliases.filled), find(aliases.symbol)]
  const utc = toUtc(clock)
  const wanted = symbol?.toUpperCase()
  return Either.right((text, line) => {
    const fail = (reason: string) => Either.left(new CsvLineError({ line, reason, text: text.slice(0, 200) }))
    const fields = text.split(separator)
    if (fields.length < names.length) return fail(`expected ${names.length} fields separated by "${separator === "\t" ? "\\t" : separator}", got ${fields.length}`)
    const cell = (at: number) => (at < 0 ? "" : fields[at]!.trim().replace(/^"|"$/g, ""))
    if (filled >= 0 && cell(filled).toLowerCase() === "true") return Either.right({ _tag: "skip" })
    if (wanted !== undefined && symbolColumn >= 0 && cell(symbolColumn).toUpperCase() !== wanted) return Either.right({ _tag: "skip" })
    const ts = readTime(split ? `${cell(date)} ${cell(clockColumn)}` : cell(stamp), utc)
    if (typeof ts === "string") return fail(`time: ${ts}`)
    const numbers: Array<number> = []
    for (const [name, at] of [["open", open], ["high", high], ["low", low], ["close", close]] as const) {
      const value = decodeDecimal(cell(at))
      if (Either.isLeft(value)) return fail(`${name}: ${ParseResult.ArrayFormatter.formatErrorSync(value.left)[0]?.message ?? "unreadable"}`)
      numbers.push(value.right)
    }
    const optional = (name: string, at: number): number | null | string => {
      const raw = cell(at)
      if (raw === "") return null
      const value = decodeDecimal(raw)
      return Either.isLeft(value) ? `${name}: expected a decimal number, got "${raw.slice(0, 40)}"` : value.right
    }
    const [v, w, n] = [optional("volume", volume), optional("vwap", vwap), optional("trades", trades)]
    for (const x of [v, w, n]) if (typeof x === "string") return fail(x)
    return Either.right({
      _tag: "bar",
      bar: { ts, open: numbers[0]!, high: numbers[1]!, low: numbers[2]!, close: numbers[3]!, volume: (v as number | null) ?? 0, vwap: w as number | null, trades: n as number | null }
    })
  })
}

const JsonlRow = Schema.Struct({
  ts: Schema.Union(Schema.String, Schema.Number),
  open: Schema.Number,
  high: Schema.Number,
  low: Schema.Number,
  close: Schema.Number,
  volume: Schema.optionalWith(Schema.Number, { default: () => 0 }),
  vwap: Schema.optionalWith(Schema.NullOr(Schema.Number), { default: () => null }),
  trades: Schema.optionalWith(Schema.NullOr(Schema.Number), { default: () => null }),
  filled: Schema.optional(Schema.Boolean),
  symbol: Schema.optional(Schema.String)
})
const decodeJsonl = Schema.decodeUnknownEither(Schema.parseJson(JsonlRow))

/** candlekeep's JSONL export (or any JSON object per line with the same fields); `ts` ISO or Unix ms. */
export const jsonlParser = (clock: SourceClock, symbol: string | undefined): RowParser => {
  const utc = toUtc(clock)
  const wanted = symbol?.toUpperCase()
  return (text, line) => {
    const fail = (reason: string) => Either.left(new CsvLineError({ line, reason, text: text.slice(0, 200) }))
    // A stand-in is skipped before its null prices are decoded.
    if (/"filled"\s*:\s*true/.test(text)) return Either.right({ _tag: "skip" })
    const row = decodeJsonl(text)
    if (Either.isLeft(row)) {
      const issue = ParseResult.ArrayFormatter.formatErrorSync(row.left)[0]
      return fail(`${issue?.path.map(String).join(".") || "line"}: ${issue?.message ?? "unreadable"}`)
    }
    const { ts: stamp, filled: _filled, symbol: rowSymbol, ...prices } = row.right
    if (wanted !== undefined && rowSymbol !== undefined && rowSymbol.toUpperCase() !== wanted) return Either.right({ _tag: "skip" })
    const ts = typeof stamp === "number" ? stamp : readTime(stamp, utc)
    if (typeof ts === "string") return fail(`ts: ${ts}`)
    return Either.right({ _tag: "bar", bar: { ts, ...prices } })
  }
}
