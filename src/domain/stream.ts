import { Schema } from "effect"
import { Timeframe } from "./timeframe.ts"

/** A stream is one symbol at one timeframe: the unit the supervisor keeps current. */
export interface StreamKey {
  readonly symbol: string
  readonly timeframe: Timeframe
}

export const streamName = (stream: StreamKey): string => `${stream.symbol}:${stream.timeframe}`

/** `EURUSD:M1,XAUUSD:D1` → stream keys; duplicates collapse. */
export const StreamList = Schema.String.pipe(
  Schema.filter((text) => text.split(",").every((entry) => /^[A-Z0-9]{3,12}:(M1|M5|M15|M30|H1|H4|D1)$/.test(entry.trim())), {
    message: () => "expected SYMBOL:TIMEFRAME entries separated by commas"
  }),
  Schema.transform(Schema.Array(Schema.Struct({ symbol: Schema.String, timeframe: Timeframe })), {
    strict: true,
    decode: (text) => {
      const seen = new Map<string, { symbol: string; timeframe: Timeframe }>()
      for (const entry of text.split(",")) {
        const [symbol = "", timeframe = "M1"] = entry.trim().split(":")
        seen.set(`${symbol}:${timeframe}`, { symbol, timeframe: timeframe as Timeframe })
      }
      return [...seen.values()]
    },
    encode: (streams) => streams.map(streamName).join(",")
  })
)

/**
 * When a stream's bar has closed: a few seconds after the close so the vendor has it.
 * Cron with seconds: `sec min hour day month weekday`, in UTC.
 */
export const defaultSyncCron = (timeframe: Timeframe, delaySeconds: number): string => {
  switch (timeframe) {
    case "M1":
      return `${delaySeconds} * * * * *`
    case "M5":
      return `${delaySeconds} */5 * * * *`
    case "M15":
      return `${delaySeconds} */15 * * * *`
    case "M30":
      return `${delaySeconds} */30 * * * *`
    case "H1":
      return `${delaySeconds} 0 * * * *`
    case "H4":
      return `${delaySeconds} 0 */4 * * *`
    case "D1":
      return `${delaySeconds} 0 0 * * *`
  }
}
