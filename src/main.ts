import { Command } from "@effect/cli"
import { BunContext, BunRuntime } from "@effect/platform-bun"
import { Cause, Console, Effect, Exit, Layer, Logger, Option } from "effect"
import { AppConfig, loadConfig, type AppConfigShape } from "./config.ts"
import { serveHttp } from "./http/server.ts"
import { CandleStore } from "./store/candle-store.ts"
import { DatabaseInfo, DatabaseLive } from "./store/database.ts"

/** Every command ends with one JSON line on stdout, after any human-readable output. */
const summary = (fields: Record<string, unknown>) => Console.log(JSON.stringify(fields))

const serve = Command.make("serve", {}, () =>
  Effect.gen(function* () {
    const started = Date.now()
    const info = yield* DatabaseInfo
    yield* Effect.logInfo(
      `database: ${info.kind} (${info.flavour}) PostgreSQL ${info.postgresVersion}` +
        (info.timescaleVersion ? `, TimescaleDB ${info.timescaleVersion}` : "") +
        `, migrations at ${info.migrationLevel}`
    )
    yield* serveHttp
    // Runs until SIGINT/SIGTERM interrupts it; the scope then stops the server and closes the database.
    yield* Effect.never.pipe(
      Effect.onInterrupt(() => summary({ command: "serve", status: "stopped", uptime_s: Math.round((Date.now() - started) / 1000) }))
    )
  }).pipe(Effect.scoped)
).pipe(Command.withDescription("Run the service: HTTP API and sync supervisor (the default command)."))

const migrateCommand = Command.make("migrate", {}, () =>
  Effect.gen(function* () {
    const info = yield* DatabaseInfo
    yield* Console.log(`database ${info.location} (${info.kind}, ${info.flavour}) is at migration ${info.migrationLevel}`)
    yield* summary({ command: "migrate", status: "ok", database: info.kind, flavour: info.flavour, level: info.migrationLevel })
  })
).pipe(Command.withDescription("Apply the database migrations and exit."))

const root = Command.make("candlekeep", {}, () => Effect.flatMap(serve.handler({}), () => Effect.void)).pipe(
  Command.withDescription("A trustworthy, gap-aware history of OHLCV candles."),
  Command.withSubcommands([serve, migrateCommand])
)

const cli = Command.run(root, { name: "candlekeep", version: "0.1.0" })

/** The application's layers, composed once. */
const appLayer = (config: AppConfigShape) => {
  const configLayer = Layer.succeed(AppConfig, config)
  return CandleStore.Default.pipe(Layer.provideMerge(DatabaseLive), Layer.provideMerge(configLayer))
}

/** One line for a person on stderr; a failure never prints a stack trace. */
const describeFailure = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (typeof error === "string") return error
    if (error instanceof Error) {
      // SqlError and friends keep the driver's reason (refused connection, bad password) in `cause`.
      const cause = (error as { cause?: unknown }).cause
      return cause instanceof Error && !error.message.includes(cause.message) ? `${error.message}: ${cause.message}` : error.message
    }
    if (typeof error === "object" && error !== null && "_tag" in error) return String((error as { _tag: unknown })._tag)
  }
  return Cause.pretty(cause).split("\n")[0] ?? "unexpected failure"
}

const program = Effect.gen(function* () {
  const config = yield* loadConfig
  const logger = Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger))
  return yield* cli(process.argv).pipe(
    Effect.provide(appLayer(config)),
    Effect.provide(Layer.merge(logger, Logger.minimumLogLevel(config.logLevel)))
  )
}).pipe(
  Effect.provide(BunContext.layer),
  Effect.onExit((exit) =>
    Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)
      ? Effect.sync(() => {
          // @effect/cli has already printed its own help for a ValidationError.
          const line = describeFailure(exit.cause)
          if (!line.startsWith("ValidationError") && !line.includes("_tag")) console.error(`candlekeep: ${line}`)
          process.exitCode = 1
        })
      : Effect.void
  )
)

BunRuntime.runMain(program, { disableErrorReporting: true, disablePrettyLogger: true })
