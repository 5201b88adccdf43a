import { Command, Options } from "@effect/cli"
import { Console, Data, Effect, Option, Schema, Stream } from "effect"
import { open, rename, rm } from "node:fs/promises"
import type { AppServices } from "../app-layer.ts"
import { AppConfig, DayBoundary } from "../config.ts"
import type { SymbolSpec } from "../domain/symbol.ts"
import { Timeframe } from "../domain/timeframe.ts"
import { exportFileName, exportStream } from "../pipeline/export.ts"
import { ExportFormat } from "../pipeline/export-formats.ts"
import { describeError } from "../store/database-error.ts"

/** What main.ts lends every command: the one JSON line, the app's services, and how dates are read. */
export interface CliKit {
  readonly summary: (fields: Record<string, unknown>, to?: "stdout" | "stderr") => Effect.Effect<void>
  readonly withApp: <A, E>(effect: Effect.Effect<A, E, AppServices>) => Effect.Effect<A, unknown, AppConfig>
  readonly parseInstant: (flag: string, text: string) => Effect.Effect<number, { readonly message: string }>
}

class ExportRefused extends Data.TaggedError("ExportRefused")<{ readonly message: string }> {}

const FillOption = Schema.Literal("none", "null", "prev")

const gcAboveBytes = 224 * 1024 * 1024

/** Where the bytes go: a file written beside its name and renamed when complete (a failed export leaves none), or stdout. */
const openOutput = (out: string) =>
  Effect.tryPromise({
    try: async () => {
      if (out === "-") {
        return {
          write: (bytes: Uint8Array) =>
            new Promise<void>((resolve, reject) => {
              if (process.stdout.write(bytes, (error) => (error ? reject(error) : undefined))) resolve()
              else process.stdout.once("drain", () => resolve())
            }),
          commit: async () => {},
          abandon: async () => {}
        }
      }
      const partial = `${out}.partial`
      const file = await open(partial, "w")
      return {
        write: async (bytes: Uint8Array) => void (await file.write(bytes)),
        commit: async () => {
          await file.close()
          await rename(partial, out)
        },
        abandon: async () => {
          await file.close().catch(() => {})
          await rm(partial, { force: true })
        }
      }
    },
    catch: (error) => new ExportRefused({ message: `--out ${out} cannot be written: ${error instanceof Error ? error.message : String(error)}` })
  })

export const exportCommand = (kit: CliKit) =>
  Command.make(
    "export",
    {
      symbol: Options.text("symbol").pipe(Options.repeated, Options.withDescription("our symbol, e.g. EURUSD; repeat for several")),
      timeframe: Options.text("timeframe").pipe(Options.withDefault("M1"), Options.withDescription("M1 M5 M15 M30 H1 H4 D1")),
      from: Options.text("from").pipe(Options.withDescription("first bar, inclusive (2021-01-03, an ISO instant or Unix ms)")),
      to: Options.text("to").pipe(Options.withDescription("end, exclusive")),
      format: Options.text("format").pipe(Options.withDescription("csv | jsonl | parquet")),
      out: Options.text("out").pipe(Options.optional, Options.withDescription("file to write, or - for stdout (default: SYMBOLS_TF_FROM_TO.FORMAT here)")),
      fill: Options.text("fill").pipe(Options.withDefault("none"), Options.withDescription("none | null | prev: stand-ins for missing bars inside open sessions, marked filled with their gap's status")),
      boundary: Options.text("boundary").pipe(Options.optional, Options.withDescription("utc | new-york: H4/D1 buckets and the session column (default DAY_BOUNDARY)")),
      sessions: Options.boolean("sessions").pipe(Options.withDescription("add a session column: the trading day each bar belongs to"))
    },
    (input) =>
      Effect.gen(function* () {
        const started = Date.now()
        const seconds = () => Math.round((Date.now() - started) / 100) / 10
        const out = Option.getOrUndefined(input.out)
        const to = out === "-" ? "stderr" : "stdout"
        const fail = (message: string) =>
          Effect.zipRight(kit.summary({ command: "export", status: "failed", error: message, seconds: seconds() }, to), Effect.fail(new ExportRefused({ message })))
        const config = yield* AppConfig
        const format = input.format.trim().toLowerCase()
        if (!Schema.is(ExportFormat)(format)) return yield* fail(`unknown --format ${input.format}: use csv, jsonl or parquet`)
        const fill = input.fill.trim().toLowerCase()
        if (!Schema.is(FillOption)(fill)) return yield* fail(`unknown --fill ${input.fill}: use none, null or prev`)
        const boundaryText = Option.getOrElse(Option.map(input.boundary, (b) => b.trim().toLowerCase()), () => config.dayBoundary)
        if (!Schema.is(DayBoundary)(boundaryText)) return yield* fail(`unknown --boundary ${boundaryText}: use utc or new-york`)
        if (input.symbol.length === 0) return yield* fail("--symbol is required (repeat it for several symbols)")
        const specs: Array<SymbolSpec> = []
        for (const text of input.symbol) {
          const spec = config.symbols.find((s) => s.symbol === text.trim().toUpperCase())
          if (!spec) return yield* fail(`unknown symbol ${text}: configured symbols are ${config.symbols.map((s) => s.symbol).join(", ")}`)
          if (!specs.includes(spec)) specs.push(spec)
        }
        const timeframe = input.timeframe.trim().toUpperCase()
        if (!Schema.is(Timeframe)(timeframe)) return yield* fail(`unknown timeframe ${input.timeframe}: use one of ${Timeframe.literals.join(", ")}`)
        const from = yield* kit.parseInstant("from", input.from).pipe(Effect.catchAll((bad) => fail(bad.message)))
        const until = yield* kit.parseInstant("to", input.to).pipe(Effect.catchAll((bad) => fail(bad.message)))
        if (from >= until) return yield* fail(`--from ${input.from} is not before --to ${input.to}`)
        if (fill !== "none" && (timeframe === "H4" || timeframe === "D1") && boundaryText === "new-york") {
          return yield* fail("--fill is not offered for H4/D1 bars on the new-york day boundary: use --boundary utc, or --fill none")
        }
        const request = { specs, timeframe, from, to: until, format, fill, boundary: boundaryText, sessions: input.sessions, version: "0.1.0" } as const
        const path = out ?? exportFileName(request)
        const output = yield* openOutput(path).pipe(Effect.catchAll((refused) => fail(refused.message)))
        const totals = { rows: 0, filled: 0, bytes: 0 }
        const written = yield* kit.withApp(
          Stream.runForEach(exportStream(request), (chunk) =>
            Effect.promise(() => output.write(chunk.bytes)).pipe(
              Effect.tap(() => {
                // Past a modest heap a page's garbage is collected before the next is read: left to itself, the
                // collector lets the heap grow with the export's length (550 MB for a million JSONL rows).
                if (chunk.rows > 0 && process.memoryUsage.rss() > gcAboveBytes) Bun.gc(true)
                totals.rows += chunk.rows
                totals.filled += chunk.filled
                totals.bytes += chunk.bytes.length
              })
            )
          )
        ).pipe(
          Effect.zipRight(Effect.promise(() => output.commit())),
          Effect.either
        )
        if (written._tag === "Left") {
          yield* Effect.promise(() => output.abandon())
          const error = written.left
          return yield* fail(`export failed after ${totals.rows} rows: ${describeError(error)}`)
        }
        if (to === "stdout") yield* Console.log(`${path}: ${totals.rows} rows (${totals.filled} filled), ${totals.bytes} bytes in ${seconds()} s`)
        yield* kit.summary({
          command: "export", status: "ok", symbols: specs.map((s) => s.symbol), timeframe, format, fill, boundary: boundaryText, sessions: input.sessions,
          from: new Date(from).toISOString(), to: new Date(until).toISOString(), out: path,
          rows: totals.rows, filled: totals.filled, bytes: totals.bytes, seconds: seconds()
        }, to)
      })
  ).pipe(Command.withDescription("Write bars to a CSV, JSONL or Parquet file (or stdout), page by page, with missing bars marked when asked."))
