import { SqlClient } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { Effect, Option } from "effect"
import type { Candle } from "../domain/candle.ts"

/** The columns `encodeBars` writes, in order; `ingested_at` takes its default. */
export const copyColumns = "symbol, timeframe, ts, open, high, low, close, volume, vwap, trades, source"

const postgresEpoch = Date.UTC(2000, 0, 1)
const encoder = new TextEncoder()

/** One page as PostgreSQL's binary COPY format: no number is turned into text on either side. */
export const encodeBars = (stream: { readonly symbol: string; readonly timeframe: string; readonly source: string }, bars: ReadonlyArray<Candle>): Uint8Array => {
  const symbol = encoder.encode(stream.symbol)
  const timeframe = encoder.encode(stream.timeframe)
  const source = encoder.encode(stream.source)
  const rowSize = 2 + 11 * 4 + symbol.length + timeframe.length + source.length + 9 * 8
  const out = new Uint8Array(19 + rowSize * bars.length + 2)
  const view = new DataView(out.buffer)
  out.set([0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00]) // PGCOPY\n\377\r\n\0, then flags and extension length 0
  let at = 19
  const text = (bytes: Uint8Array) => {
    view.setInt32(at, bytes.length)
    out.set(bytes, at + 4)
    at += 4 + bytes.length
  }
  const float8 = (x: number | null) => {
    if (x === null) return void (view.setInt32(at, -1), (at += 4))
    view.setInt32(at, 8)
    view.setFloat64(at + 4, x)
    at += 12
  }
  // int8 as two 32-bit halves: exact for any safe integer, negative ones included.
  const int8 = (x: number | null) => {
    if (x === null) return void (view.setInt32(at, -1), (at += 4))
    const high = Math.floor(x / 4294967296)
    view.setInt32(at, 8)
    view.setInt32(at + 4, high)
    view.setUint32(at + 8, x - high * 4294967296)
    at += 12
  }
  for (const bar of bars) {
    view.setInt16(at, 11)
    at += 2
    text(symbol)
    text(timeframe)
    int8((bar.ts - postgresEpoch) * 1000) // timestamptz: microseconds since 2000-01-01 UTC
    float8(bar.open)
    float8(bar.high)
    float8(bar.low)
    float8(bar.close)
    float8(bar.volume)
    float8(bar.vwap)
    int8(bar.trades === null ? null : Math.round(bar.trades))
    text(source)
  }
  view.setInt16(at, -1)
  return out.subarray(0, at + 2)
}

/**
 * `COPY ... FROM STDIN` on the transaction's connection, through node-postgres' submittable hook (what
 * pg-copy-streams does, minus the stream). @effect/sql-pg keeps the pg client on its connection as `pg`;
 * None when that is not there (another driver, or a changed internal), so the caller takes its other path.
 */
export const copyIn = (statement: string, payload: Uint8Array) =>
  Effect.gen(function* () {
    const transaction = yield* Effect.serviceOption(SqlClient.TransactionConnection)
    const client = Option.flatMapNullable(transaction, ([connection]) => (connection as { readonly pg?: { query(submittable: object): void } }).pg)
    if (Option.isNone(client)) return Option.none<number>()
    const rows = yield* Effect.async<number, SqlError>((resume) => {
      let copied = 0
      client.value.query({
        submit: (connection: any) => connection.query(statement),
        handleCopyInResponse: (connection: any) => {
          connection.sendCopyFromChunk(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength))
          connection.endCopyFrom()
        },
        handleCommandComplete: (message: { text: string }) => void (copied = Number(message.text.split(" ")[1])),
        // pg forgets the active query on an error, so readyForQuery would never reach this one.
        handleError: (cause: unknown) => resume(Effect.fail(new SqlError({ cause, message: `COPY failed: ${String((cause as Error).message)}` }))),
        handleReadyForQuery: () => resume(Effect.succeed(copied)),
        handleRowDescription: () => {},
        handleDataRow: () => {},
        handleEmptyQuery: () => {},
        handlePortalSuspended: () => {},
        handleCopyData: () => {}
      })
    })
    return Option.some(rows)
  })

/**
 * `COPY ... TO STDOUT` on the transaction's connection, the rows' bytes gathered as PostgreSQL sends them; None
 * when there is no node-postgres client underneath (the caller takes its other path). COPY takes no parameters:
 * the statement carries its values as literals (see `inlineParameters`).
 */
export const copyOut = (statement: string) =>
  Effect.gen(function* () {
    const transaction = yield* Effect.serviceOption(SqlClient.TransactionConnection)
    const client = Option.flatMapNullable(transaction, ([connection]) => (connection as { readonly pg?: { query(submittable: object): void } }).pg)
    if (Option.isNone(client)) return Option.none<{ readonly rows: number; readonly bytes: Uint8Array }>()
    const copied = yield* Effect.async<{ readonly rows: number; readonly bytes: Uint8Array }, SqlError>((resume) => {
      // One CopyData message a row: copied into one growing buffer (the parser reuses its own), not a Buffer each.
      let out = new Uint8Array(1 << 20)
      let length = 0
      let rows = 0
      client.value.query({
        submit: (connection: any) => connection.query(statement),
        handleCopyData: ({ chunk }: { chunk: Uint8Array }) => {
          if (length + chunk.length > out.length) {
            const grown = new Uint8Array(Math.max(out.length * 2, length + chunk.length))
            grown.set(out.subarray(0, length))
            out = grown
          }
          out.set(chunk, length)
          length += chunk.length
        },
        handleCommandComplete: (message: { text: string }) => void (rows = Number(message.text.split(" ")[1])),
        handleError: (cause: unknown) => resume(Effect.fail(new SqlError({ cause, message: `COPY failed: ${String((cause as Error).message)}` }))),
        handleReadyForQuery: () => resume(Effect.succeed({ rows, bytes: out.subarray(0, length) })),
        handleRowDescription: () => {},
        handleDataRow: () => {},
        handleEmptyQuery: () => {},
        handlePortalSuspended: () => {},
        handleCopyInResponse: () => {}
      })
    })
    return Option.some(copied)
  })

/** A statement's `$n` placeholders replaced by SQL literals of its values (strings, numbers, dates), for COPY. */
export const inlineParameters = (text: string, params: ReadonlyArray<unknown>): string =>
  text.replace(/\$(\d+)/g, (placeholder, index: string) => {
    const value = params[Number(index) - 1]
    if (typeof value === "number" && Number.isFinite(value)) return String(value)
    if (value instanceof Date) return `'${value.toISOString()}'::timestamptz`
    if (typeof value === "string") return `'${value.replaceAll("'", "''")}'`
    throw new Error(`cannot inline ${placeholder} (${typeof value})`)
  })
