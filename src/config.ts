import { Config, ConfigError, ConfigProvider, Context, Cron, Effect, Either, Layer, LogLevel, Option, ParseResult, Redacted, Schema } from "effect"
import { parseIsoInstant } from "./domain/instant.ts"
import { StreamList, type StreamKey } from "./domain/stream.ts"
import { defaultSymbols, InstrumentClass, SymbolSpec } from "./domain/symbol.ts"

/**
 * One setting: an environment variable decoded with a schema. `expects` is what a person reads when
 * the value is wrong, so a bad value stops start-up with one line naming the variable.
 */
const setting = <A, I extends string>(name: string, schema: Schema.Schema<A, I>, expects: string): Config.Config<A> =>
  Config.string(name).pipe(
    Config.mapOrFail((raw) =>
      Either.mapLeft(
        Schema.decodeUnknownEither(schema)(raw.trim()),
        () => ConfigError.InvalidData([], `expects ${expects}, got ${JSON.stringify(raw)}`)
      )
    )
  )

/** A setting that may hold a secret (a password in a URL, a key): its value is never echoed, and is kept Redacted. */
const secret = <I extends string>(name: string, schema: Schema.Schema<I, I>, expects: string): Config.Config<Redacted.Redacted<I>> =>
  Config.string(name).pipe(
    Config.mapOrFail((raw) =>
      Either.mapBoth(Schema.decodeUnknownEither(schema)(raw.trim()), {
        onLeft: () => ConfigError.InvalidData([], `expects ${expects} (value not shown)`),
        onRight: (value) => Redacted.make(value)
      })
    )
  )

const Port = Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 65535))
export const DayBoundary = Schema.Literal("utc", "new-york")
export type DayBoundary = typeof DayBoundary.Type
const LogLevelName = Schema.Literal("trace", "debug", "info", "warning", "error", "fatal", "none")

const logLevels: Record<typeof LogLevelName.Type, LogLevel.LogLevel> = {
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None
}

const DatabaseUrl = Schema.String.pipe(Schema.pattern(/^postgres(ql)?:\/\/.+/))
const HttpUrl = Schema.String.pipe(Schema.pattern(/^https?:\/\/[^\s]+$/))
const PositiveInt = Schema.NumberFromString.pipe(Schema.int(), Schema.positive())
const Seconds = Schema.NumberFromString.pipe(Schema.positive())
export const MassivePlan = Schema.Literal("free", "paid")
export const DatabaseFlavourSetting = Schema.Literal("auto", "timescale", "plain")
export type DatabaseFlavourSetting = typeof DatabaseFlavourSetting.Type
/** A calendar date or an instant: `2021-01-03` or `2021-01-03T22:00:00Z`. */
const Instant = Schema.String.pipe(
  Schema.filter((s) => parseIsoInstant(s) !== null),
  Schema.transform(Schema.Number, { strict: true, decode: (s) => parseIsoInstant(s)!, encode: (ms) => new Date(ms).toISOString() })
)

/** `EURUSD=C:EURUSD/5/forex,BTCUSD=X:BTCUSD/2/crypto`: our symbol, the vendor's ticker, price digits, instrument class. */
const SymbolList = Schema.String.pipe(
  Schema.transformOrFail(Schema.Array(SymbolSpec), {
    strict: true,
    decode: (text, _, ast) => {
      const specs: Array<SymbolSpec> = []
      for (const entry of text.split(",").map((e) => e.trim()).filter((e) => e.length > 0)) {
        const match = /^([A-Z0-9]{3,12})=([^/\s]+)\/(\d{1,2})\/(\w+)$/.exec(entry)
        const instrumentClass = match?.[4]
        if (!match || !Schema.is(InstrumentClass)(instrumentClass)) {
          return ParseResult.fail(new ParseResult.Type(ast, text, `bad entry ${JSON.stringify(entry)}`))
        }
        specs.push({ symbol: match[1]!, ticker: match[2]!, digits: Number(match[3]), instrumentClass })
      }
      return specs.length > 0 ? ParseResult.succeed(specs) : ParseResult.fail(new ParseResult.Type(ast, text, "no symbols"))
    },
    encode: (specs) => ParseResult.succeed(specs.map((s) => `${s.symbol}=${s.ticker}/${s.digits}/${s.instrumentClass}`).join(","))
  })
)

/** `*`, origins separated by commas, or `none` (no CORS headers at all). */
const OriginList = Schema.String.pipe(
  Schema.transform(Schema.Array(Schema.String), {
    strict: true,
    decode: (text) => (text.trim().toLowerCase() === "none" ? [] : text.split(",").map((o) => o.trim()).filter((o) => o.length > 0)),
    encode: (origins) => (origins.length === 0 ? "none" : origins.join(","))
  }),
  Schema.filter((origins) => origins.every((o) => o === "*" || /^https?:\/\/[^\s/]+$/.test(o)))
)

/** MetaApi account ids, separated by commas. */
const AccountList = Schema.String.pipe(
  Schema.transform(Schema.Array(Schema.String), {
    strict: true,
    decode: (text) => text.split(",").map((a) => a.trim()).filter((a) => a.length > 0),
    encode: (accounts) => accounts.join(",")
  }),
  Schema.filter((accounts) => accounts.length > 0 && accounts.every((a) => /^[A-Za-z0-9_-]{1,64}$/.test(a)))
)

/** `XAUUSD=XAUUSD.a,EURUSD=EURUSDm`: our symbol = the broker's symbol. */
const BrokerSymbolMap = Schema.String.pipe(
  Schema.transformOrFail(Schema.Record({ key: Schema.String, value: Schema.String }), {
    strict: true,
    decode: (text, _, ast) => {
      const map: Record<string, string> = {}
      for (const entry of text.split(",").map((e) => e.trim()).filter((e) => e.length > 0)) {
        const match = /^([A-Z0-9]{3,12})=([^\s,=]{1,32})$/.exec(entry)
        if (!match) return ParseResult.fail(new ParseResult.Type(ast, text, `bad entry ${JSON.stringify(entry)}`))
        map[match[1]!] = match[2]!
      }
      return ParseResult.succeed(map)
    },
    encode: (map) => ParseResult.succeed(Object.entries(map).map(([k, v]) => `${k}=${v}`).join(","))
  })
)

/** A cron expression with seconds (`sec min hour day month weekday`), checked by Effect's own parser. */
const CronText = Schema.String.pipe(Schema.filter((text) => Either.isRight(Cron.parse(text))))

/** Every setting of the service, with its default written once, here. */
export const settings = Config.all({
  databaseUrl: Config.option(secret("DATABASE_URL", DatabaseUrl, "a postgres:// or postgresql:// URL")),
  dataDir: setting("DATA_DIR", Schema.NonEmptyString, "a directory path").pipe(Config.withDefault("./data")),
  /** auto: TimescaleDB where the server can load it, else plain tables; a database keeps the flavour it was made with. */
  databaseFlavour: setting("DATABASE_FLAVOUR", DatabaseFlavourSetting, "auto, timescale or plain").pipe(Config.withDefault("auto" as const)),
  port: setting("PORT", Port, "an integer port between 1 and 65535").pipe(Config.withDefault(3604)),
  logLevel: setting("LOG_LEVEL", LogLevelName, "one of trace, debug, info, warning, error, fatal, none").pipe(
    Config.withDefault("info" as const),
    Config.map((name) => logLevels[name])
  ),
  dayBoundary: setting("DAY_BOUNDARY", DayBoundary, "utc or new-york").pipe(Config.withDefault("utc" as const)),
  symbols: setting("SYMBOLS", SymbolList, "comma-separated SYMBOL=TICKER/DIGITS/CLASS entries, e.g. EURUSD=C:EURUSD/5/forex").pipe(
    Config.withDefault(defaultSymbols)
  ),
  massive: Config.all({
    apiKey: Config.option(secret("MASSIVE_API_KEY", Schema.NonEmptyString, "the Massive API key")),
    baseUrl: setting("MASSIVE_BASE_URL", HttpUrl, "an http(s) URL").pipe(Config.withDefault("https://api.massive.com")),
    plan: setting("MASSIVE_PLAN", MassivePlan, "free or paid").pipe(Config.withDefault("free" as const)),
    /** Overrides the plan's rate when set. */
    requestsPerMinute: Config.option(setting("MASSIVE_REQUESTS_PER_MINUTE", PositiveInt, "a positive integer")),
    maxConcurrency: setting("MASSIVE_MAX_CONCURRENCY", PositiveInt, "a positive integer").pipe(Config.withDefault(4)),
    timeoutSeconds: setting("MASSIVE_TIMEOUT_SECONDS", Seconds, "a positive number of seconds").pipe(Config.withDefault(30)),
    /** How long after its minute closes a bar is taken as published for good; until then it is asked again. */
    settleSeconds: setting("MASSIVE_SETTLE_SECONDS", Schema.NumberFromString.pipe(Schema.nonNegative()), "a number of seconds ≥ 0").pipe(
      Config.withDefault(120)
    ),
    /** How far the plan's data trails real time; unset = the plan's (free = 15, paid = 0). */
    delayMinutes: Config.option(
      setting("MASSIVE_DELAY_MINUTES", Schema.NumberFromString.pipe(Schema.int(), Schema.between(0, 1_440)), "whole minutes 0-1440")
    )
  }),
  /** The streams the supervisor keeps current; default every configured symbol at M1. */
  streams: Config.option(setting("STREAMS", StreamList, "SYMBOL:TIMEFRAME entries separated by commas, e.g. EURUSD:M1,XAUUSD:D1")),
  supervisor: Config.all({
    /** Overrides when M1 streams sync; other timeframes sync a few seconds after their own close. */
    syncCron: Config.option(setting("SYNC_CRON", CronText, "a cron expression with seconds, e.g. \"5 * * * * *\"")),
    syncDelaySeconds: setting("SYNC_DELAY_SECONDS", Schema.NumberFromString.pipe(Schema.int(), Schema.between(0, 59)), "whole seconds 0-59").pipe(
      Config.withDefault(5)
    ),
    gapScanCron: setting("GAP_SCAN_CRON", CronText, "a cron expression with seconds").pipe(Config.withDefault("0 30 22 * * *")),
    verifyCron: setting("VERIFY_CRON", CronText, "a cron expression with seconds").pipe(Config.withDefault("0 15 23 * * *")),
    verifyDays: setting("VERIFY_DAYS", PositiveInt, "a positive number of days").pipe(Config.withDefault(3)),
    runnerHost: setting("RUNNER_HOST", Schema.NonEmptyString, "a host name or address").pipe(Config.withDefault("127.0.0.1")),
    runnerPort: setting("RUNNER_PORT", Port, "an integer port between 1 and 65535").pipe(Config.withDefault(34431)),
    shardLockRefreshSeconds: setting("SHARD_LOCK_REFRESH_SECONDS", Seconds, "a positive number of seconds").pipe(Config.withDefault(5)),
    shardLockExpirationSeconds: setting("SHARD_LOCK_EXPIRATION_SECONDS", Seconds, "a positive number of seconds").pipe(Config.withDefault(20)),
    /** Jobs (POSTed syncs, gap fills, verifies) queued or running at once, over every instance; beyond, a 429. */
    jobsMaxQueued: setting("JOBS_MAX_QUEUED", PositiveInt, "a positive integer").pipe(Config.withDefault(20)),
    /** PostgreSQL ends the shard-lock session of a runner silent this long (frozen, partitioned), releasing its shards. */
    shardLockSessionTimeoutSeconds: setting("SHARD_LOCK_SESSION_TIMEOUT_SECONDS", Seconds, "a positive number of seconds").pipe(Config.withDefault(15))
  }),
  gaps: Config.all({
    /** A hole is a gap when more than this many bars are missing inside an open session. */
    minBars: setting("GAP_MIN_BARS", Schema.NumberFromString.pipe(Schema.int(), Schema.nonNegative()), "a whole number of bars ≥ 0").pipe(
      Config.withDefault(3)
    ),
    /** How many times a gap is asked of the vendor again before it is left as it is. */
    maxAttempts: setting("GAP_FILL_MAX_ATTEMPTS", PositiveInt, "a positive integer").pipe(Config.withDefault(3))
  }),
  /** Where a backfill starts when a stream has no watermark; unset = what the plan covers (free: two years, paid: ten). */
  backfillFrom: Config.option(setting("BACKFILL_FROM", Instant, "a date like 2016-01-01 or an ISO 8601 instant")),
  http: Config.all({
    /** When set, every POST needs `Authorization: Bearer <token>`. */
    apiToken: Config.option(secret("API_TOKEN", Schema.NonEmptyString, "a token")),
    /** When set, every read (GET) needs it too (or API_TOKEN). */
    apiReadToken: Config.option(secret("API_READ_TOKEN", Schema.NonEmptyString, "a token")),
    /** Origins allowed to call the API from a browser: `*`, a comma-separated list, or `none`. */
    corsOrigins: setting("CORS_ORIGINS", OriginList, "*, none, or comma-separated origins like https://app.example.com").pipe(Config.withDefault(["*"])),
    /** Every request is answered within this, upstream retries included (a 504 past it). */
    requestTimeoutSeconds: setting("REQUEST_TIMEOUT_SECONDS", Seconds, "a positive number of seconds").pipe(Config.withDefault(30)),
    /** Requests answered at once (a streamed answer counts until its last byte); beyond, 503 at once. */
    maxConnections: setting("HTTP_MAX_CONNECTIONS", PositiveInt, "a positive integer").pipe(Config.withDefault(512)),
    /** Live-event (SSE) clients at once; beyond, 503. */
    sseMaxClients: setting("SSE_MAX_CLIENTS", PositiveInt, "a positive integer").pipe(Config.withDefault(100))
  }),
  broker: Config.all({
    token: Config.option(secret("METAAPI_TOKEN", Schema.NonEmptyString, "the MetaApi token")),
    accounts: setting("METAAPI_ACCOUNT_ID", AccountList, "one or more MetaApi account ids separated by commas").pipe(Config.withDefault([] as ReadonlyArray<string>)),
    baseUrl: setting("METAAPI_BASE_URL", HttpUrl, "an http(s) URL").pipe(Config.withDefault("https://mt-client-api-v1.new-york.agiliumtrade.ai")),
    marketDataUrl: setting("METAAPI_MARKET_DATA_URL", HttpUrl, "an http(s) URL").pipe(
      Config.withDefault("https://mt-market-data-client-api-v1.new-york.agiliumtrade.ai")
    ),
    /** Our symbol → the broker's; a configured symbol not named here is asked by its own name. */
    symbols: Config.option(setting("BROKER_SYMBOLS", BrokerSymbolMap, "comma-separated SYMBOL=BROKER_SYMBOL entries, e.g. XAUUSD=XAUUSD.a")),
    timeoutSeconds: setting("METAAPI_TIMEOUT_SECONDS", Seconds, "a positive number of seconds").pipe(Config.withDefault(30)),
    quoteIntervalSeconds: setting("BROKER_QUOTE_INTERVAL_SECONDS", Seconds, "a positive number of seconds").pipe(Config.withDefault(5)),
    quoteRetentionDays: setting("BROKER_QUOTE_RETENTION_DAYS", PositiveInt, "a positive number of days").pipe(Config.withDefault(30)),
    compareCron: setting("BROKER_COMPARE_CRON", CronText, "a cron expression with seconds").pipe(Config.withDefault("0 0 * * * *")),
    compareWindowMinutes: setting("BROKER_COMPARE_WINDOW_MINUTES", Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 10_080)), "whole minutes 1-10080").pipe(
      Config.withDefault(60)
    ),
    /** Recommend applying the offset when |mean(broker mid − vendor close)| exceeds this many pips. */
    offsetThresholdPips: setting("BROKER_OFFSET_THRESHOLD_PIPS", Schema.NumberFromString.pipe(Schema.nonNegative()), "a number of pips ≥ 0").pipe(
      Config.withDefault(0.5)
    )
  })
})

export interface AppConfigShape {
  readonly databaseUrl: Option.Option<Redacted.Redacted<string>>
  readonly dataDir: string
  readonly databaseFlavour: DatabaseFlavourSetting
  readonly port: number
  readonly logLevel: LogLevel.LogLevel
  readonly dayBoundary: DayBoundary
  readonly symbols: ReadonlyArray<SymbolSpec>
  readonly massive: MassiveSettings
  readonly streams: Option.Option<ReadonlyArray<StreamKey>>
  readonly supervisor: SupervisorSettings
  readonly gaps: { readonly minBars: number; readonly maxAttempts: number }
  readonly backfillFrom: Option.Option<number>
  readonly http: HttpSettings
  readonly broker: BrokerSettings
}

export interface HttpSettings {
  readonly apiToken: Option.Option<Redacted.Redacted<string>>
  readonly apiReadToken: Option.Option<Redacted.Redacted<string>>
  readonly corsOrigins: ReadonlyArray<string>
  readonly requestTimeoutSeconds: number
  readonly maxConnections: number
  readonly sseMaxClients: number
}

export interface BrokerSettings {
  readonly token: Option.Option<Redacted.Redacted<string>>
  readonly accounts: ReadonlyArray<string>
  readonly baseUrl: string
  readonly marketDataUrl: string
  readonly symbols: Option.Option<Readonly<Record<string, string>>>
  readonly timeoutSeconds: number
  readonly quoteIntervalSeconds: number
  readonly quoteRetentionDays: number
  readonly compareCron: string
  readonly compareWindowMinutes: number
  readonly offsetThresholdPips: number
}

/** A broker stream: one MetaApi account and one of our symbols, with the broker's name for it. */
export interface BrokerStream {
  readonly account: string
  readonly symbol: string
  readonly brokerSymbol: string
}

/**
 * The broker streams to run: every account × every symbol of BROKER_SYMBOLS (else every configured symbol,
 * under its own name). Empty, with the reason, when MetaApi is not configured: broker features are then off.
 */
export const brokerStreams = (config: AppConfigShape): { readonly streams: ReadonlyArray<BrokerStream>; readonly off: string | null } => {
  const broker = config.broker
  if (Option.isNone(broker.token)) return { streams: [], off: "METAAPI_TOKEN is not set" }
  if (broker.accounts.length === 0) return { streams: [], off: "METAAPI_ACCOUNT_ID is not set" }
  const map = Option.getOrElse(broker.symbols, () => Object.fromEntries(config.symbols.map((s) => [s.symbol, s.symbol])))
  const symbols = Object.entries(map).filter(([symbol]) => config.symbols.some((s) => s.symbol === symbol))
  return {
    streams: broker.accounts.flatMap((account) => symbols.map(([symbol, brokerSymbol]) => ({ account, symbol, brokerSymbol }))),
    off: null
  }
}

export interface SupervisorSettings {
  readonly syncCron: Option.Option<string>
  readonly syncDelaySeconds: number
  readonly gapScanCron: string
  readonly verifyCron: string
  readonly verifyDays: number
  readonly runnerHost: string
  readonly runnerPort: number
  readonly shardLockRefreshSeconds: number
  readonly shardLockExpirationSeconds: number
  readonly jobsMaxQueued: number
  readonly shardLockSessionTimeoutSeconds: number
}

/** The streams to keep: STREAMS, else every configured symbol at M1. */
export const configuredStreams = (config: AppConfigShape): ReadonlyArray<StreamKey> =>
  Option.getOrElse(config.streams, () => config.symbols.map((s) => ({ symbol: s.symbol, timeframe: "M1" as const })))

export interface MassiveSettings {
  readonly apiKey: Option.Option<Redacted.Redacted<string>>
  readonly baseUrl: string
  readonly plan: typeof MassivePlan.Type
  readonly requestsPerMinute: Option.Option<number>
  readonly maxConcurrency: number
  readonly timeoutSeconds: number
  readonly settleSeconds: number
  readonly delayMinutes: Option.Option<number>
}

/** How many minutes the plan's data trails real time: the explicit setting, else the plan's (free = 15; paid = 0). */
export const massiveDelayMinutes = (massive: MassiveSettings): number =>
  Option.getOrElse(massive.delayMinutes, () => (massive.plan === "free" ? 15 : 0))

/** How many years of history the plan is expected to cover, for the default BACKFILL_FROM (free = 2; paid = 10). */
export const massiveHistoryYears = (massive: MassiveSettings): number => (massive.plan === "free" ? 2 : 10)

/** Requests per minute allowed to one API key: the explicit setting, else the plan's (free = 5; paid has no cap). */
export const massiveRequestsPerMinute = (massive: MassiveSettings): number | null =>
  Option.getOrElse(massive.requestsPerMinute, () => (massive.plan === "free" ? 5 : null))

export class AppConfig extends Context.Tag("Config/AppConfig")<AppConfig, AppConfigShape>() {
  /** Reads the environment (or whatever ConfigProvider is current). */
  static readonly layer = Layer.effect(AppConfig, settings)
  /** A fixed configuration, for tests and scripts. */
  static readonly make = (overrides: Partial<AppConfigShape> = {}): Layer.Layer<AppConfig> =>
    Layer.succeed(AppConfig, AppConfig.fixed(overrides))
  static readonly fixed = (overrides: Partial<AppConfigShape> = {}): AppConfigShape => ({
    databaseUrl: Option.none(),
    dataDir: "./data",
    databaseFlavour: "auto",
    port: 3604,
    logLevel: LogLevel.Info,
    dayBoundary: "utc",
    symbols: defaultSymbols,
    massive: {
      apiKey: Option.none(),
      baseUrl: "https://api.massive.com",
      plan: "free",
      requestsPerMinute: Option.none(),
      maxConcurrency: 4,
      timeoutSeconds: 30,
      settleSeconds: 120,
      delayMinutes: Option.none()
    },
    streams: Option.none(),
    supervisor: {
      syncCron: Option.none(),
      syncDelaySeconds: 5,
      gapScanCron: "0 30 22 * * *",
      verifyCron: "0 15 23 * * *",
      verifyDays: 3,
      runnerHost: "127.0.0.1",
      runnerPort: 34431,
      shardLockRefreshSeconds: 5,
      shardLockExpirationSeconds: 20,
      jobsMaxQueued: 20,
      shardLockSessionTimeoutSeconds: 15
    },
    gaps: { minBars: 3, maxAttempts: 3 },
    backfillFrom: Option.none(),
    http: { apiToken: Option.none(), apiReadToken: Option.none(), corsOrigins: ["*"], requestTimeoutSeconds: 30, maxConnections: 512, sseMaxClients: 100 },
    broker: {
      token: Option.none(),
      accounts: [],
      baseUrl: "https://mt-client-api-v1.new-york.agiliumtrade.ai",
      marketDataUrl: "https://mt-market-data-client-api-v1.new-york.agiliumtrade.ai",
      symbols: Option.none(),
      timeoutSeconds: 30,
      quoteIntervalSeconds: 5,
      quoteRetentionDays: 30,
      compareCron: "0 0 * * * *",
      compareWindowMinutes: 60,
      offsetThresholdPips: 0.5
    },
    ...overrides
  })
}

/** One line for a person: `PORT expects an integer port between 1 and 65535, got "abc"`. */
export const describeConfigError = (error: ConfigError.ConfigError): string => {
  const lines: Array<string> = []
  const walk = (e: ConfigError.ConfigError): void => {
    switch (e._op) {
      case "And":
      case "Or":
        walk(e.left)
        walk(e.right)
        return
      case "InvalidData":
        lines.push(`${e.path.join(".")} ${e.message}`)
        return
      case "MissingData":
        lines.push(`${e.path.join(".")} is required: ${e.message}`)
        return
      case "SourceUnavailable":
      case "Unsupported":
        lines.push(`${e.path.join(".")}: ${e.message}`)
        return
    }
  }
  walk(error)
  return `invalid configuration: ${lines.join("; ")}`
}

/** The environment, where a variable set to "" counts as unset (compose writes `${MASSIVE_API_KEY:-}` that way). */
const environment = () =>
  ConfigProvider.fromMap(new Map(Object.entries(process.env).filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1].trim() !== "")))

/** Fails start-up with the one-line description, never a stack trace. */
export const loadConfig = Effect.suspend(() => Effect.withConfigProvider(Effect.mapError(settings, describeConfigError), environment())).pipe(
  Effect.filterOrFail(
    (config) => Object.keys(Option.getOrElse(config.broker.symbols, () => ({}))).every((symbol) => config.symbols.some((s) => s.symbol === symbol)),
    (config) =>
      `invalid configuration: BROKER_SYMBOLS names a symbol that SYMBOLS does not configure (configured: ${config.symbols.map((s) => s.symbol).join(", ")})`
  ),
  Effect.filterOrFail(
    (config) => Option.getOrElse(config.streams, () => []).every((stream) => config.symbols.some((s) => s.symbol === stream.symbol)),
    (config) =>
      `invalid configuration: STREAMS names a symbol that SYMBOLS does not configure (configured: ${config.symbols.map((s) => s.symbol).join(", ")})`
  ),
  // A runner refreshing its locks less often than its session may idle would lose them while healthy.
  Effect.filterOrFail(
    (config) => config.supervisor.shardLockSessionTimeoutSeconds > config.supervisor.shardLockRefreshSeconds,
    (config) =>
      `invalid configuration: SHARD_LOCK_SESSION_TIMEOUT_SECONDS (${config.supervisor.shardLockSessionTimeoutSeconds}) must be more than SHARD_LOCK_REFRESH_SECONDS (${config.supervisor.shardLockRefreshSeconds})`
  )
)
