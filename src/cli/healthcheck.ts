import { Command, Options } from "@effect/cli"
import { Data, Duration, Effect, Option, Schema } from "effect"
import { AppConfig } from "../config.ts"

/** The service did not answer ready: the reason it gave, or why it could not be asked. */
export class NotReady extends Data.TaggedError("NotReady")<{ readonly message: string }> {}

/**
 * `candlekeep healthcheck`: asks a running `serve` whether it is ready (`GET /api/data/ready`) and exits 0 when it
 * is, 1 otherwise. It opens no database, so it serves as a container's HEALTHCHECK where there is no curl.
 */
export const healthcheckCommand = (summary: (fields: Record<string, unknown>) => Effect.Effect<void>) => Command.make(
  "healthcheck",
  {
    url: Options.text("url").pipe(Options.optional, Options.withDescription("the readiness URL (default: http://127.0.0.1:$PORT/api/data/ready)")),
    timeout: Options.integer("timeout").pipe(Options.withDefault(5), Options.withDescription("seconds to wait for the answer"))
  },
  (input) =>
    Effect.gen(function* () {
      const config = yield* AppConfig
      const url = Option.getOrElse(input.url, () => `http://127.0.0.1:${config.port}/api/data/ready`)
      const started = Date.now()
      const answer = yield* Effect.tryPromise({
        try: (signal) => fetch(url, { signal }).then(async (response) => ({ status: response.status, body: await response.text() })),
        catch: (cause) => new NotReady({ message: `${url} did not answer: ${cause instanceof Error ? cause.message : String(cause)}` })
      }).pipe(
        Effect.timeoutFail({ duration: Duration.seconds(input.timeout), onTimeout: () => new NotReady({ message: `${url} did not answer within ${input.timeout} s` }) }),
        Effect.filterOrFail(
          (answer) => answer.status === 200,
          (answer) => new NotReady({ message: `${url} answered ${answer.status}: ${reasonOf(answer.body)}` })
        ),
        Effect.tapError((error) => summary({ command: "healthcheck", status: "failed", url, error: error.message }))
      )
      yield* summary({ command: "healthcheck", status: "ok", url, http_status: answer.status, ms: Date.now() - started })
    })
).pipe(Command.withDescription("Ask a running service whether it is ready (GET /api/data/ready); exit 0 when it is. For a container HEALTHCHECK."))

/** The readiness answer's JSON body names why it is not ready. */
const NotReadyBody = Schema.parseJson(Schema.Struct({ message: Schema.String }))

/** The `message` of the JSON error body, else the start of the body. */
const reasonOf = (body: string): string =>
  Option.match(Schema.decodeUnknownOption(NotReadyBody)(body), { onNone: () => body.slice(0, 200), onSome: (parsed) => parsed.message })
