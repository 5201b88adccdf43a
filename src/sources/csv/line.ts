import { Data, Either, ParseResult, Schema } from "effect"
import type { Candle } from "../../domain/candle.ts"
import { type SourceClock, toUtc } from "./clock.ts"

/** The files of M1 bars this importer reads: four fixed layouts, any CSV with a header, MT5's "export bars", candlekeep's own exports. */
export const CsvFormat = Schema.Literal("histdata", "mt4", "dukascopy", "binance", "csv", "mt5", "jsonl", "parquet")
export type CsvFormat = typeof CsvFormat.Type

/** The layouts fixed column by column (no header, or one exact header). */
export const FixedFormat = Schema.Literal("histdata", "mt4", "dukascopy", "binance")
export type FixedFormat = typeof FixedFormat.Type

/** A line that is not a bar: reported with where it is and why, never thrown, never skipped silently. */
export class CsvLineError extends Data.TaggedError("CsvLineError")<{
  /** 1-based line number in the file, header included. */
  readonly line: number
  readonly reason: string
  /** The line as read, cut to 200 characters. */
  readonly text: string
}> {
  override get message() {
    return `line ${this.line}: ${this.reason}: ${this.text}`
  }
}

/**
 * A wall-clock stamp (read as if it were UTC) in Unix ms; rejects impossible dates such as 2021-02-30 or 24:00.
 * The pattern names its groups `year`, `month`, `day`, `hour`, `minute` and optionally `second`, `milli`.
 */
const WallClock = (pattern: RegExp, shape: string) =>
  Schema.transformOrFail(Schema.String, Schema.Number, {
    strict: true,
    decode: (text, _, ast) => {
      const groups = pattern.exec(text)?.groups
      if (!groups) return ParseResult.fail(new ParseResult.Type(ast, text, `expected ${shape}, got "${text}"`))
      const [year, month, day, hour, minute, second, milli] = ["year", "month", "day", "hour", "minute", "second", "milli"]
        .map((name) => Number(groups[name] ?? 0)) as [number, number, number, number, number, number, number]
      const ms = Date.UTC(year, month - 1, day, hour, minute, second, milli)
      const at = new Date(ms)
      const exact = at.getUTCFullYear() === year && at.getUTCMonth() === month - 1 && at.getUTCDate() === day &&
        at.getUTCHours() === hour && at.getUTCMinutes() === minute && at.getUTCSeconds() === second
      return exact
        ? ParseResult.succeed(ms)
        : ParseResult.fail(new ParseResult.Type(ast, text, `impossible date or time "${text}"`))
    },
    encode: (ms, _, ast) => ParseResult.fail(new ParseResult.Forbidden(ast, ms, "export stamps are only read"))
  })

/** A plain decimal as exporters write it; no hex, no blanks, no NaN or Infinity. */
export const Decimal = Schema.String.pipe(
  Schema.pattern(/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/, { message: (issue) => `expected a decimal number, got "${issue.actual}"` }),
  Schema.compose(Schema.NumberFromString)
)

interface FormatSpec {
  /** The exact first line, or null when the export has none. */
  readonly header: string | null
  readonly separator: string
  readonly fieldCount: number
  /** The fields as `[time, open, high, low, close, volume]`. */
  readonly columns: (fields: ReadonlyArray<string>) => ReadonlyArray<string>
  readonly time: Schema.Schema<number, string>
}

const sameColumns = (fields: ReadonlyArray<string>) => fields

export const formats: Record<FixedFormat, FormatSpec> = {
  histdata: {
    header: null,
    separator: ";",
    fieldCount: 6,
    columns: sameColumns,
    time: WallClock(/^(?<year>\d{4})(?<month>\d{2})(?<day>\d{2}) (?<hour>\d{2})(?<minute>\d{2})(?<second>\d{2})$/, "YYYYMMDD HHMMSS")
  },
  mt4: {
    header: null,
    separator: ",",
    fieldCount: 7,
    columns: ([date, time, ...prices]) => [`${date} ${time}`, ...prices],
    time: WallClock(/^(?<year>\d{4})\.(?<month>\d{2})\.(?<day>\d{2}) (?<hour>\d{2}):(?<minute>\d{2})$/, "YYYY.MM.DD,HH:MM")
  },
  dukascopy: {
    header: "Gmt time,Open,High,Low,Close,Volume",
    separator: ",",
    fieldCount: 6,
    columns: sameColumns,
    time: WallClock(
      /^(?<day>\d{2})\.(?<month>\d{2})\.(?<year>\d{4}) (?<hour>\d{2}):(?<minute>\d{2}):(?<second>\d{2})\.(?<milli>\d{3})$/,
      "DD.MM.YYYY HH:MM:SS.mmm"
    )
  },
  binance: {
    header: "open_time,open,high,low,close,volume",
    separator: ",",
    fieldCount: 6,
    columns: sameColumns,
    time: WallClock(
      /^(?<year>\d{4})-(?<month>\d{2})-(?<day>\d{2}) (?<hour>\d{2}):(?<minute>\d{2}):(?<second>\d{2})\+00:00$/,
      "YYYY-MM-DD HH:MM:SS+00:00"
    )
  }
}

const columnNames = ["time", "open", "high", "low", "close", "volume"]

/** Strips what editors and Windows exporters add around a line: a byte-order mark and a trailing CR. */
export const cleanLine = (text: string): string => text.replace(/^\uFEFF/, "").replace(/\r$/, "")

/**
 * A line parser for one format and clock. Prices and volume are only decoded here; whether a bar is
 * plausible (high ≥ low, positive prices, …) is `domain/validation.ts`'s job, after the page is built.
 */
export const parseLine = (format: FixedFormat, clock: SourceClock) => {
  const spec = formats[format]
  const decodeRow = Schema.decodeUnknownEither(Schema.Tuple(spec.time, Decimal, Decimal, Decimal, Decimal, Decimal))
  const utc = toUtc(clock)
  return (raw: string, line: number): Either.Either<Candle, CsvLineError> => {
    const text = cleanLine(raw)
    const fail = (reason: string) => Either.left(new CsvLineError({ line, reason, text: text.slice(0, 200) }))
    const fields = text.split(spec.separator)
    if (fields.length !== spec.fieldCount) {
      return fail(`expected ${spec.fieldCount} fields separated by "${spec.separator}", got ${fields.length}`)
    }
    const row = decodeRow(spec.columns(fields))
    if (Either.isLeft(row)) {
      const issue = ParseResult.ArrayFormatter.formatErrorSync(row.left)[0]
      const column = columnNames[Number(issue?.path[0])] ?? "line"
      return fail(`${column}: ${issue?.message ?? "unreadable"}`)
    }
    const [time, open, high, low, close, volume] = row.right
    return Either.right({ ts: utc(time), open, high, low, close, volume, vwap: null, trades: null })
  }
}
