import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { gunzipSync } from "node:zlib"
import type { Candle } from "../../src/domain/candle.ts"
import { histdataToUtc } from "../../src/domain/source-clock.ts"

/** The real bars in ../shared/data; absent on a user's machine, so tests that need them skip with a reason. */
export const sharedDataDir = join(import.meta.dir, "..", "..", "..", "shared", "data")
export const hasSharedData = existsSync(sharedDataDir)
export const noSharedDataReason = `skipped: ${sharedDataDir} is absent (real vendor files are not shipped with the project)`

const lines = (file: string): Array<string> =>
  gunzipSync(readFileSync(join(sharedDataDir, file))).toString("utf8").split(/\r?\n/).filter((line) => line.length > 0)

/** HistData `YYYYMMDD HHMMSS;open;high;low;close;volume`, converted to UTC by the exporter's real clock. */
export const loadHistdata = (symbol: "EURUSD" | "XAUUSD"): ReadonlyArray<Candle> =>
  lines(`histdata_${symbol}_M1_2021-01-03_to_2021-05-21.csv.gz`).map((line) => {
    const [stamp = "", open, high, low, close, volume] = line.split(";")
    const fileMs = Date.UTC(
      Number(stamp.slice(0, 4)),
      Number(stamp.slice(4, 6)) - 1,
      Number(stamp.slice(6, 8)),
      Number(stamp.slice(9, 11)),
      Number(stamp.slice(11, 13))
    )
    return {
      ts: histdataToUtc(fileMs),
      open: Number(open),
      high: Number(high),
      low: Number(low),
      close: Number(close),
      volume: Number(volume),
      vwap: null,
      trades: null
    }
  })

/** Binance.US BTCUSD 1m, UTC, header `open_time,open,high,low,close,volume`. */
export const loadBinanceBtc = (): ReadonlyArray<Candle> =>
  lines("binanceus_BTCUSD_1m_UTC_2023-03-01_to_2023-03-21.csv.gz")
    .slice(1)
    .map((line) => {
      const [time = "", open, high, low, close, volume] = line.split(",")
      return {
        ts: Date.parse(time.replace(" ", "T")),
        open: Number(open),
        high: Number(high),
        low: Number(low),
        close: Number(close),
        volume: Number(volume),
        vwap: null,
        trades: null
      }
    })
