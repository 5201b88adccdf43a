import { Command, Options, ValidationError } from "@effect/cli"
import { SqlError } from "@effect/sql/SqlError"
import { BunContext, BunRuntime } from "@effect/platform-bun"
import { Cause, Console, Data, Effect, Exit, Layer, Logger, Option, Schema } from "effect"
import { existsSync } from "node:fs"
import { appLayer, type AppServices } from "./app-layer.ts"
import { versionLine } from "./build-info.ts"
import { healthcheckCommand } from "./cli/healthcheck.ts"
import { AppConfig, brokerStreams, loadConfig } from "./config.ts"
import { parseIsoInstant } from "./domain/instant.ts"
import { Timeframe } from "./domain/timeframe.ts"
import { serveHttp } from "./http/server.ts"
import { exportCommand } from "./cli/export.ts"
import { StallGuardLive } from "./supervisor/stall-guard.ts"
import { Backfill, type RunReport } from "./pipeline/backfill.ts"
import { Broker, type BrokerComparisonReport } from "./pipeline/broker.ts"
import { Gaps, type GapRange } from "./pipeline/gaps.ts"
import { ImportFailed, Importer, ImportRefused } from "./pipeline/import.ts"
import { SourceClockFromString } from "./sources/csv/clock.ts"
import { CsvFormat } from "./sources/csv/line.ts"
import { progressReporter } from "./progress.ts"
import { ClusterLive } from "./supervisor/cluster.ts"
import { Jobs } from "./supervisor/jobs.ts"
import { Readiness } from "./supervisor/readiness.ts"
import { SupervisorLive } from "./supervisor/supervisor.ts"
import { DatabaseInfo } from "./store/database.ts"
import { describeError } from "./store/database-error.ts"
import { Rollups, rollupLevels, type RollupTimeframe } from "./store/rollups.ts"

/** Every command ends with one JSON line on stdout, after any human-readable output. */
let summarised = false
const summary = (fields: Record<string, unknown>, to: "stdout" | "stderr" = "stdout") =>
  Effect.zipRight(
    Effect.sync(() => void (summarised = true)),
    // stderr only when stdout carries the command's data (`export --out -`).
    to === "stdout" ? Console.log(JSON.stringify(fields)) : Console.error(JSON.stringify(fields))
  )

/**
 * The application's services (database, vendor client, pipeline) for one command, built when the command
 * runs and after its input is checked: `--help` or a mistyped option never opens the database.
 */
const withApp = <A, E>(effect: Effect.Effect<A, E, AppServices>) =>
  Effect.flatMap(AppConfig, (config) => Effect.provide(effect, appLayer(config)))

const serve = Command.make("serve", {}, () =>
  withApp(Effect.gen(function* () {
    const started = Date.now()
    const info = yield* DatabaseInfo
    yield* Effect.logInfo(
      `database: ${info.kind} (${info.flavour}) PostgreSQL ${info.postgresVersion}` +
        (info.timescaleVersion ? `, TimescaleDB ${info.timescaleVersion}` : "") +
        `, migrations at ${info.migrationLevel}`
    )
    // A runner that wakes from a stall longer than its lock session's timeout exits before doing anything.
    yield* Layer.build(StallGuardLive)
    // The cluster first: the HTTP API reaches streams through it (POST /api/data/sync), wherever they run.
    const cluster = yield* Layer.build(ClusterLive)
    yield* Effect.gen(function* () {
      yield* serveHttp
      yield* Layer.build(SupervisorLive)
      yield* Readiness.use((r) => r.markRunning)
      // Runs until SIGINT/SIGTERM interrupts it; the scope then stops the supervisor and the server and closes the database.
      yield* Effect.never.pipe(
        Effect.onInterrupt(() =>
          Effect.zipRight(
            Readiness.use((r) => r.markStopping),
            summary({ command: "serve", status: "stopped", uptime_s: Math.round((Date.now() - started) / 1000) })
          )
        )
      )
    }).pipe(Effect.provide(Layer.mergeAll(Jobs.Default, Readiness.Default)), Effect.provide(cluster))
  }).pipe(Effect.scoped))
).pipe(Command.withDescription("Run the service: HTTP API and sync supervisor (the default command)."))

const migrateCommand = Command.make("migrate", {}, () =>
  withApp(Effect.gen(function* () {
    const info = yield* DatabaseInfo
    yield* Console.log(`database ${info.location} (${info.kind}, ${info.flavour}) is at migration ${info.migrationLevel}`)
    yield* summary({ command: "migrate", status: "ok", database: info.kind, flavour: info.flavour, level: info.migrationLevel })
  }))
).pipe(Command.withDescription("Apply the database migrations and exit."))

/** A command-line value that does not make sense: one line for the person who typed it. */
class BadInput extends Data.TaggedError("BadInput")<{ readonly message: string }> {}

/** `2021-01-03`, `2021-01-03T22:00:00Z` or Unix milliseconds. */
const parseInstant = (flag: string, text: string): Effect.Effect<number, BadInput> => {
  const trimmed = text.trim()
  const ms = /^\d{10,}$/.test(trimmed)
    ? Number(trimmed)
    : (parseIsoInstant(trimmed) ?? Number.NaN)
  return Number.isNaN(ms)
    ? Effect.fail(new BadInput({ message: `--${flag} ${JSON.stringify(text)} is not a date: use 2021-01-03, 2021-01-03T22:00:00Z or Unix milliseconds` }))
    : Effect.succeed(ms)
}

const streamOptions = {
  symbol: Options.text("symbol").pipe(Options.withDescription("our symbol, e.g. EURUSD (see SYMBOLS)")),
  timeframe: Options.text("timeframe").pipe(Options.withDefault("M1"), Options.withDescription("M1 M5 M15 M30 H1 H4 D1"))
}

/** Checks what a run needs before any request: a known symbol and timeframe, sane dates, a key (when it asks the vendor). */
const checkStream = (
  input: { readonly symbol: string; readonly timeframe: string; readonly from: Option.Option<string>; readonly to: Option.Option<string> },
  needsKey = true
) =>
  Effect.gen(function* () {
    const config = yield* AppConfig
    const symbol = input.symbol.trim().toUpperCase()
    if (!config.symbols.some((s) => s.symbol === symbol)) {
      return yield* new BadInput({ message: `unknown symbol ${input.symbol}: configured symbols are ${config.symbols.map((s) => s.symbol).join(", ")}` })
    }
    const timeframe = input.timeframe.trim().toUpperCase()
    if (!Schema.is(Timeframe)(timeframe)) {
      return yield* new BadInput({ message: `unknown timeframe ${input.timeframe}: use one of ${Timeframe.literals.join(", ")}` })
    }
    const from = Option.isSome(input.from) ? yield* parseInstant("from", input.from.value) : undefined
    const to = Option.isSome(input.to) ? yield* parseInstant("to", input.to.value) : undefined
    if (from !== undefined && to !== undefined && from >= to) {
      return yield* new BadInput({ message: `--from ${input.from.pipe(Option.getOrElse(() => ""))} is not before --to ${input.to.pipe(Option.getOrElse(() => ""))}` })
    }
    if (needsKey && Option.isNone(config.massive.apiKey)) {
      return yield* new BadInput({ message: "MASSIVE_API_KEY is not set: the vendor needs a key (see .env.example)" })
    }
    return { symbol, timeframe, from, to }
  })

/** Runs a backfill or sync pass with progress on stderr; the JSON summary on stdout closes it in every outcome. */
const runStream = (command: "backfill" | "sync", input: Parameters<typeof checkStream>[0]) =>
  Effect.gen(function* () {
    const started = Date.now()
    const seconds = () => Math.round((Date.now() - started) / 100) / 10
    const stream = yield* checkStream(input).pipe(
      Effect.tapError((bad) => summary({ command, status: "failed", symbol: input.symbol, timeframe: input.timeframe, error: bad.message, seconds: seconds() }))
    )
    return yield* withApp(
      Effect.gen(function* () {
        const backfill = yield* Backfill
        const progress = progressReporter(started)
        const outcome = yield* backfill
          .run({
            symbol: stream.symbol,
            timeframe: stream.timeframe,
            ...(stream.from === undefined ? {} : { from: stream.from }),
            ...(stream.to === undefined ? {} : { to: stream.to }),
            purpose: command,
            onProgress: progress.report
          })
          .pipe(
            Effect.ensuring(progress.finish),
            Effect.onInterrupt(() => summary({ command, status: "interrupted", symbol: stream.symbol, timeframe: stream.timeframe, seconds: seconds() })),
            Effect.either
          )
        if (outcome._tag === "Left") {
          yield* summary({ command, status: "failed", symbol: stream.symbol, timeframe: stream.timeframe, error: outcome.left.message, seconds: seconds() })
          return yield* Effect.fail(outcome.left)
        }
        const report: RunReport = outcome.right
        yield* Console.log(
          report.upToDate
            ? `${report.symbol} ${report.timeframe} is up to date (watermark at ${new Date(report.from).toISOString()})`
            : `${report.symbol} ${report.timeframe} ${new Date(report.from).toISOString()} → ${new Date(report.to).toISOString()}: ` +
                `${report.fetched} bars fetched, ${report.stored} stored, ${report.unchanged} unchanged, ${report.rejected} rejected, ` +
                `${report.requests} requests (${report.retries} retries) in ${seconds()} s`
        )
        yield* summary({
          command,
          status: "ok",
          symbol: report.symbol,
          timeframe: report.timeframe,
          from: new Date(report.from).toISOString(),
          to: new Date(report.to).toISOString(),
          up_to_date: report.upToDate,
          fetched: report.fetched,
          stored: report.stored,
          unchanged: report.unchanged,
          rejected: report.rejected,
          pages: report.pages,
          requests: report.requests,
          retries: report.retries,
          seconds: seconds()
        })
      })
    )
  })

const backfillCommand = Command.make(
  "backfill",
  {
    ...streamOptions,
    from: Options.text("from").pipe(Options.optional, Options.withDescription("first bar (default: the watermark, else BACKFILL_FROM)")),
    to: Options.text("to").pipe(Options.optional, Options.withDescription("end, exclusive (default: the last closed bar)"))
  },
  (input) => runStream("backfill", input)
).pipe(Command.withDescription("Download a stream's history from Massive; resumes from the watermark after any stop."))

const syncCommand = Command.make("sync", streamOptions, (input) => runStream("sync", { ...input, from: Option.none(), to: Option.none() })).pipe(
  Command.withDescription("One incremental pass: from the watermark to the last closed bar.")
)

/** A plain text table: the human-readable part before the JSON line. */
const table = (headers: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string | number>>) => {
  const cells = [headers, ...rows.map((r) => r.map(String))]
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)))
  return cells.map((r) => r.map((c, i) => (c ?? "").padEnd(widths[i]!)).join("  ").trimEnd()).join("\n")
}
const iso = (ms: number) => new Date(ms).toISOString().slice(0, 16).replace("T", " ")

const gapOptions = {
  ...streamOptions,
  from: Options.text("from").pipe(Options.optional, Options.withDescription("start (default: the first stored bar)")),
  to: Options.text("to").pipe(Options.optional, Options.withDescription("end, exclusive (default: the watermark)"))
}

/** Runs a gaps command; a rejected input still ends with the JSON line. */
const gapsCommand = <A>(command: string, needsKey: boolean, input: Parameters<typeof checkStream>[0], body: (range: GapRange) => Effect.Effect<A, unknown, AppServices>) =>
  Effect.gen(function* () {
    const stream = yield* checkStream(input, needsKey).pipe(
      Effect.tapError((bad) => summary({ command, status: "failed", symbol: input.symbol, timeframe: input.timeframe, error: bad.message }))
    )
    const range: GapRange = {
      symbol: stream.symbol,
      timeframe: stream.timeframe,
      ...(stream.from === undefined ? {} : { from: stream.from }),
      ...(stream.to === undefined ? {} : { to: stream.to })
    }
    return yield* withApp(body(range))
  })

const gapsDetect = Command.make("detect", gapOptions, (input) =>
  gapsCommand("gaps detect", false, input, (range) =>
    Effect.gen(function* () {
      const found = yield* Gaps.use((g) => g.detect(range))
      yield* Console.log(table(["gap start (UTC)", "last missing (UTC)", "bars"], found.gaps.map((g) => [iso(g.start), iso(g.end), g.missingBars])))
      yield* summary({
        command: "gaps detect", status: "ok", symbol: range.symbol, timeframe: range.timeframe,
        from: new Date(found.from).toISOString(), to: new Date(found.to).toISOString(),
        gaps: found.gaps.length, new: found.recorded, missing_bars: found.gaps.reduce((n, g) => n + g.missingBars, 0)
      })
    })
  )
).pipe(Command.withDescription("Find runs of missing bars inside open market sessions and record them."))

const gapsFill = Command.make("fill", gapOptions, (input) =>
  gapsCommand("gaps fill", true, input, (range) =>
    Effect.gen(function* () {
      const report = yield* Gaps.use((g) => g.fill(range))
      yield* Console.log(table(["attempted", "filled", "partially", "unfillable", "failed", "bars recovered"], [[report.attempted, report.filled, report.partiallyFilled, report.unfillable, report.failed, report.barsRecovered]]))
      yield* summary({ command: "gaps fill", status: "ok", symbol: range.symbol, timeframe: range.timeframe, ...report })
    })
  )
).pipe(Command.withDescription("Ask the vendor again for each open gap; what it has not is marked unfillable, never invented."))

const gapsReport = Command.make("report", gapOptions, (input) =>
  gapsCommand("gaps report", false, input, (range) =>
    Effect.gen(function* () {
      const quality = yield* Gaps.use((g) => g.report(range))
      yield* Console.log(
        table(
          ["month", "expected", "present", "complete %", "gaps open", "filled", "unfillable", "rejected"],
          quality.months.map((m) => [m.month, m.expected, m.present, m.completeness ?? "-", m.gapsOpen, m.gapsFilled, m.gapsUnfillable, Object.values(m.rejected).reduce((n, v) => n + v, 0)])
        )
      )
      yield* summary({ command: "gaps report", status: "ok", symbol: range.symbol, timeframe: range.timeframe, months: quality.months })
    })
  )
).pipe(Command.withDescription("Completeness per month: expected bars (calendar), present bars, gaps and rejected bars."))

const gapsReset = Command.make(
  "reset",
  {
    symbol: streamOptions.symbol,
    timeframe: Options.text("timeframe").pipe(Options.optional, Options.withDescription("only this timeframe's gaps (default: every timeframe)"))
  },
  (input) =>
    Effect.gen(function* () {
      const timeframe = Option.getOrNull(input.timeframe)
      const stream = yield* checkStream({ symbol: input.symbol, timeframe: timeframe ?? "M1", from: Option.none(), to: Option.none() }, false).pipe(
        Effect.tapError((bad) => summary({ command: "gaps reset", status: "failed", symbol: input.symbol, error: bad.message }))
      )
      const only = timeframe === null ? null : stream.timeframe
      const reset = yield* withApp(Gaps.use((g) => g.resetAttempts(stream.symbol, only)))
      yield* Console.log(`${reset} open ${stream.symbol} gap(s) whose GAP_FILL_MAX_ATTEMPTS were used up may be asked of the vendor again`)
      yield* summary({ command: "gaps reset", status: "ok", symbol: stream.symbol, timeframe: only, reset })
    })
).pipe(Command.withDescription("Give open gaps whose fill attempts ran out (GAP_FILL_MAX_ATTEMPTS) their attempts back, e.g. after an outage."))

const verifyCommand = Command.make(
  "verify",
  {
    symbol: streamOptions.symbol,
    timeframe: Options.text("timeframe").pipe(Options.optional, Options.withDescription("M5 M15 M30 or H1 (default: every level; H4 and D1 are built from H1)")),
    from: Options.text("from").pipe(Options.optional, Options.withDescription("start (default: 1970-01-01)")),
    to: Options.text("to").pipe(Options.optional, Options.withDescription("end, exclusive (default: now)"))
  },
  (input) =>
    Effect.gen(function* () {
      const failed = (bad: { readonly message: string }) => summary({ command: "verify", status: "failed", symbol: input.symbol, error: bad.message })
      const stream = yield* checkStream({ symbol: input.symbol, timeframe: "M1", from: input.from, to: input.to }, false).pipe(Effect.tapError(failed))
      const levels = rollupLevels.map((level) => level.timeframe)
      const timeframe = Option.map(input.timeframe, (t) => t.trim().toUpperCase())
      if (Option.isSome(timeframe) && !levels.includes(timeframe.value as RollupTimeframe)) {
        const bad = new BadInput({ message: `--timeframe ${input.timeframe.pipe(Option.getOrElse(() => ""))} is not a rollup: use one of ${levels.join(", ")}` })
        return yield* Effect.zipRight(failed(bad), Effect.fail(bad))
      }
      const checked = yield* withApp(
        Rollups.use((rollups) =>
          rollups.verify({ symbol: stream.symbol, timeframe: timeframe as Option.Option<RollupTimeframe>, from: stream.from ?? 0, to: stream.to ?? Date.now() })
        )
      ).pipe(Effect.tapError((error) => failed({ message: describeError(error) })))
      yield* Console.log(table(["level", "buckets", "missing", "extra", "differing", "rebuilt"], checked.map((l) => [l.timeframe, l.buckets, l.missing, l.extra, l.differing, l.rebuilt])))
      const wrong = checked.reduce((n, l) => n + l.missing + l.extra + l.differing, 0)
      yield* summary({ command: "verify", status: "ok", symbol: stream.symbol, levels: checked, wrong, rebuilt: checked.reduce((n, l) => n + l.rebuilt, 0) })
    })
).pipe(Command.withDescription("Compare every rollup bucket (M5…H1) with a fresh aggregation of the stored M1 bars; rebuild the ones that differ."))

const gapsRoot = Command.make("gaps", {}, () => Console.log("use gaps detect | fill | report | reset (see --help)")).pipe(
  Command.withSubcommands([gapsDetect, gapsFill, gapsReport, gapsReset])
)

/** A number for the broker table: a few decimals, or "-" when there is none. */
const figure = (value: number | null | undefined, decimals: number) => (value === null || value === undefined ? "-" : value.toFixed(decimals))

const printComparison = (report: BrokerComparisonReport) => {
  const digits = Math.max(2, Math.round(-Math.log10(report.pip_size)) + 1)
  return Console.log(
    [
      `${report.account} ${report.symbol} (broker ${report.broker_symbol}): ${report.status}`,
      table(
        ["window (UTC)", "minutes", "samples", "vendor only", "broker only", "one-sided %"],
        [[`${iso(Date.parse(report.window.from))} → ${iso(Date.parse(report.window.to))}`, report.window.minutes, report.samples, report.vendor_only, report.broker_only, figure(report.one_sided_share === null ? null : report.one_sided_share * 100, 1)]]
      ),
      table(
        ["broker − vendor close", "price", "pips"],
        [
          ["mean", figure(report.diff?.mean, digits), figure(report.diff_pips?.mean, 2)],
          ["max |diff|", figure(report.diff?.max_abs, digits), figure(report.diff_pips?.max_abs, 2)],
          ["std", figure(report.diff?.std, digits), figure(report.diff_pips?.std, 2)]
        ]
      ),
      table(
        ["latest", "vendor close", "vendor bar (UTC)", "broker bid", "broker ask", "broker time"],
        [["", figure(report.latest.vendor_close, digits), report.latest.vendor_ts === null ? "-" : iso(Date.parse(report.latest.vendor_ts)), figure(report.latest.bid, digits), figure(report.latest.ask, digits), report.latest.broker_time]]
      )
    ].join("\n\n")
  )
}

const brokerCompare = Command.make(
  "compare",
  {
    symbol: streamOptions.symbol,
    account: Options.text("account").pipe(Options.optional, Options.withDescription("MetaApi account id (default: the only one in METAAPI_ACCOUNT_ID)")),
    window: Options.text("window").pipe(Options.optional, Options.withDescription("minutes compared, 1-10080 (default BROKER_COMPARE_WINDOW_MINUTES)")),
    end: Options.text("end").pipe(Options.optional, Options.withDescription("end of the window, exclusive (default: the last whole minute)"))
  },
  (input) =>
    Effect.gen(function* () {
      const command = "broker compare"
      const fail = (message: string) =>
        Effect.zipRight(summary({ command, status: "failed", symbol: input.symbol, error: message }), Effect.fail(new BadInput({ message })))
      const config = yield* AppConfig
      const broker = brokerStreams(config)
      if (broker.off !== null) return yield* fail(`broker features off: ${broker.off} (see .env.example)`)
      const accounts = config.broker.accounts
      const account = Option.getOrElse(Option.map(input.account, (a) => a.trim()), () => (accounts.length === 1 ? accounts[0]! : ""))
      if (account === "") return yield* fail(`--account is required: configured accounts are ${accounts.join(", ")}`)
      if (!accounts.includes(account)) return yield* fail(`unknown account ${account}: configured accounts are ${accounts.join(", ")} (METAAPI_ACCOUNT_ID)`)
      const symbol = input.symbol.trim().toUpperCase()
      if (!broker.streams.some((s) => s.account === account && s.symbol === symbol)) {
        return yield* fail(`no broker symbol for ${input.symbol}: broker symbols are configured for ${[...new Set(broker.streams.map((s) => s.symbol))].join(", ")} (BROKER_SYMBOLS)`)
      }
      const window = Option.isSome(input.window) ? Number(input.window.value.trim()) : undefined
      if (window !== undefined && !(Number.isInteger(window) && window >= 1 && window <= 10_080)) {
        return yield* fail(`--window ${JSON.stringify(input.window.pipe(Option.getOrElse(() => "")))} is not a whole number of minutes from 1 to 10080`)
      }
      const end = Option.isSome(input.end) ? yield* parseInstant("end", input.end.value).pipe(Effect.tapError((bad) => summary({ command, status: "failed", symbol: input.symbol, error: bad.message }))) : undefined
      return yield* withApp(
        Effect.gen(function* () {
          const report = yield* Broker.use((b) =>
            b.compare({ account, symbol, ...(window === undefined ? {} : { windowMinutes: window }), ...(end === undefined ? {} : { end }) })
          ).pipe(Effect.tapError((error) => summary({ command, status: "failed", account, symbol, error: error.message })))
          yield* printComparison(report)
          const { status: comparison, ...figures } = report
          yield* summary({ command, status: "ok", comparison, ...figures })
        })
      )
    })
).pipe(Command.withDescription("Compare the broker's M1 candles (MetaApi) with the vendor's stored bars over a window, minute by minute in UTC."))

const brokerRoot = Command.make("broker", {}, () => Console.log("use broker compare (see --help)")).pipe(Command.withSubcommands([brokerCompare]))

/** Each export's usual clock; `--source-tz` overrides it (HistData's MetaTrader files use `histdata`). */
const defaultClock: Record<CsvFormat, string> = {
  histdata: "histdata", mt4: "new-york+7", dukascopy: "utc", binance: "utc", csv: "utc", mt5: "new-york+7", jsonl: "utc", parquet: "utc"
}

const importCommand = Command.make(
  "import",
  {
    file: Options.text("file").pipe(Options.withDescription("a .csv, .csv.gz, .jsonl or .parquet file of M1 bars")),
    format: Options.text("format").pipe(Options.withDescription("histdata | mt4 | dukascopy | binance | csv (any header) | mt5 | jsonl | parquet (candlekeep's exports)")),
    symbol: streamOptions.symbol,
    sourceTz: Options.text("source-tz").pipe(
      Options.optional,
      Options.withDescription("the exporter's clock: utc | histdata | new-york+7 (MT4 servers) | UTC+2 (default: the format's usual one)")
    ),
    keepFlat: Options.boolean("keep-flat").pipe(Options.withDescription("keep flat zero-volume bars (Dukascopy fills closed periods with them)"))
  },
  (input) =>
    Effect.gen(function* () {
      const started = Date.now()
      const fail = (message: string) =>
        Effect.zipRight(summary({ command: "import", status: "failed", file: input.file, error: message }), Effect.fail(new BadInput({ message })))
      const format = input.format.trim().toLowerCase()
      if (!Schema.is(CsvFormat)(format)) return yield* fail(`unknown --format ${input.format}: use ${CsvFormat.literals.join(", ")}`)
      const clockText = Option.getOrElse(input.sourceTz, () => defaultClock[format])
      const clock = Schema.decodeUnknownOption(SourceClockFromString)(clockText)
      if (Option.isNone(clock)) return yield* fail(`--source-tz ${JSON.stringify(clockText)} is not a clock: use utc, histdata, new-york+7 or UTC+2`)
      if (!existsSync(input.file)) return yield* fail(`--file ${input.file} does not exist`)
      const config = yield* AppConfig
      const symbol = input.symbol.trim().toUpperCase()
      if (!config.symbols.some((s) => s.symbol === symbol)) return yield* fail(`unknown symbol ${input.symbol}: configured symbols are ${config.symbols.map((s) => s.symbol).join(", ")}`)
      const report = yield* withApp(Importer.use((importer) =>
        importer.run({
          file: input.file,
          format,
          symbol,
          clock: clock.value,
          // Only when asked: each format has its own default (Dukascopy drops its fillers, HistData's zero volumes are real).
          ...(input.keepFlat ? { keepFlat: true } : {}),
          onPage: (p) => Effect.sync(() => process.stderr.write(`${symbol} import: ${p.lines} lines, ${p.bars} bars, ${p.stored} stored, ${p.rejected} rejected\n`))
        })
      ).pipe(
        Effect.tapError((error) =>
          error instanceof ImportRefused
            ? Effect.zipRight(
                Effect.forEach(error.summary.firstErrors, (bad) => Console.error(`line ${bad.line}: ${bad.reason}: ${bad.text}`)),
                summary({
                  command: "import", status: "failed", file: input.file, format, symbol, clock: clockText, error: error.message, stored: 0,
                  lines: error.summary.lines, bad_lines: error.summary.badLines,
                  first_errors: error.summary.firstErrors.map((bad) => ({ line: bad.line, reason: bad.reason, text: bad.text }))
                })
              )
            : error instanceof ImportFailed
              // A broken file says where it broke and what of it is stored.
              ? summary({ command: "import", status: "failed", file: input.file, error: error.message, line: error.line, stored: error.stored, pages: error.pages, stored_through_line: error.storedThroughLine })
              : Effect.void
        )
      ))
      for (const error of report.firstErrors) yield* Console.error(`line ${error.line}: ${error.reason}`)
      yield* Console.log(
        table(["lines", "bars", "stored", "unchanged", "rejected", "flat dropped", "bad lines"], [[report.lines, report.bars, report.stored, report.unchanged, report.rejected, report.droppedFlatBars, report.badLines]])
      )
      yield* summary({
        command: "import", status: "ok", file: input.file, format, symbol, clock: clockText,
        lines: report.lines, bars: report.bars, stored: report.stored, unchanged: report.unchanged, rejected: report.rejected,
        flat_dropped: report.droppedFlatBars, skipped: report.skipped, bad_lines: report.badLines, seconds: Math.round((Date.now() - started) / 100) / 10
      })
    })
).pipe(Command.withDescription("Load a CSV export of M1 bars (HistData, MetaTrader, Dukascopy, Binance) through the same checks as the vendor's bars."))

const root = Command.make("candlekeep", {}, () => Effect.flatMap(serve.handler({}), () => Effect.void)).pipe(
  Command.withDescription("A trustworthy, gap-aware history of OHLCV candles."),
  Command.withSubcommands([serve, migrateCommand, backfillCommand, syncCommand, gapsRoot, brokerRoot, importCommand, verifyCommand, healthcheckCommand(summary),
    exportCommand({ summary, withApp, parseInstant })])
)

const cli = Command.run(root, { name: "candlekeep", version: versionLine })

/** One line for a person on stderr; a failure never prints a stack trace. */
const describeFailure = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (typeof error === "string") return error
    if (error instanceof SqlError) return describeError(error)
    if (error instanceof Error) {
      // Other errors may keep the driver's reason (refused connection, bad password) in `cause`.
      const cause = (error as { cause?: unknown }).cause
      return describeError(cause instanceof Error && !error.message.includes(cause.message) ? `${error.message}: ${cause.message}` : error.message)
    }
    if (typeof error === "object" && error !== null && "_tag" in error) return String((error as { _tag: unknown })._tag)
  }
  return Cause.pretty(cause).split("\n")[0] ?? "unexpected failure"
}

const program = Effect.gen(function* () {
  const config = yield* loadConfig
  const logger = Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger))
  return yield* cli(process.argv).pipe(
    Effect.provide(Layer.succeed(AppConfig, config)),
    Effect.provide(Layer.merge(logger, Logger.minimumLogLevel(config.logLevel)))
  )
}).pipe(
  Effect.provide(BunContext.layer),
  Effect.onExit((exit) =>
    Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)
      ? Effect.sync(() => {
          const failure = Cause.failureOption(exit.cause)
          // @effect/cli has already said what is wrong with the command line, with the usage.
          const usage = Option.exists(failure, ValidationError.isValidationError)
          const line = usage ? "invalid command line (see --help)" : describeFailure(exit.cause)
          if (!usage) console.error(`candlekeep: ${line}`)
          // Failures no command summarised itself (settings, migrations, usage) still end with the JSON line.
          if (!summarised) console.log(JSON.stringify({ command: process.argv[2] ?? "serve", status: "failed", error: line }))
          process.exitCode = 1
        })
      : Effect.void
  )
)

// The first SIGINT/SIGTERM interrupts the program (the current page commits or rolls back, streams are handed
// over, the database closes); a second one, or 10 s without finishing, exits at once.
let signals = 0
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    signals += 1
    if (signals > 1) process.exit(130)
    setTimeout(() => {
      console.error("candlekeep: shutdown took longer than 10 s; exiting")
      process.exit(1)
    }, 10_000).unref()
  })
}

BunRuntime.runMain(program, { disableErrorReporting: true, disablePrettyLogger: true })
