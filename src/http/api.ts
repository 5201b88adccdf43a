import { Cause, Effect, Exit, ParseResult, Schema } from "effect"
import type { Context, Hono } from "hono"
import { withDeadline } from "../sources/deadline.ts"
import { answer, ErrorAnswer, type Answer } from "./contract.ts"
import { BadRequest, DeadlineExceeded, errorAnswer, Unauthorized, UnsupportedMediaType } from "./errors.ts"
import type { RunEffect } from "./run-effect.ts"

/** Who may call a route when tokens are configured: anyone, readers (API_READ_TOKEN), or writers (API_TOKEN). */
export type Access = "public" | "read" | "write"

/** One route as the OpenAPI document describes it; the same schemas decode its input. */
export interface RouteSpec<Q = unknown, P = unknown, B = unknown> {
  readonly method: "get" | "post"
  /** Hono syntax: `/api/data/gaps/:symbol`. */
  readonly path: string
  readonly tag: string
  readonly summary: string
  readonly access: Access
  readonly query?: Schema.Schema<Q, any>
  readonly params?: Schema.Schema<P, any>
  readonly body?: Schema.Schema<B, any>
  /**
   * Status → its answer (schema, content type, description; several for alternative content types), or only
   * what it means (an error status: the Error schema). 400, 401, 413, 500 and 503 are implied (see openapi.ts).
   */
  readonly responses: Readonly<Record<number, Answer | ReadonlyArray<Answer> | string>>
  /** The content types of a success answer given only as a description. */
  readonly produces?: ReadonlyArray<string>
}

export interface RouteInput<Q, P, B> {
  readonly query: Q
  readonly params: P
  readonly body: B
}

const maxMessage = 300

/** `["limit"]` + `Expected …` → a 400 naming the field, the schema's own words kept short. */
const badRequest = (where: "query" | "params" | "body", error: ParseResult.ParseError): BadRequest => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  const field = issue && issue.path.length > 0 ? issue.path.map(String).join(".") : where
  const message = issue?.message ?? "invalid"
  return new BadRequest({ field, message: message.length > maxMessage ? `${message.slice(0, maxMessage)}…` : message })
}

const decode = <A>(where: "query" | "params" | "body", schema: Schema.Schema<A, any> | undefined, input: unknown): Effect.Effect<A, BadRequest> =>
  schema === undefined
    ? Effect.succeed(undefined as A)
    : Effect.mapError(Schema.decodeUnknown(schema, { errors: "first", onExcessProperty: "ignore" })(input), (e) => badRequest(where, e))

/** `application/json`, with or without parameters (`; charset=utf-8`). */
const isJson = (contentType: string | undefined) => contentType !== undefined && /^application\/json\s*(;|$)/i.test(contentType.trim())

/**
 * A JSON body, or `{}` when there is none; anything else that is not JSON is a 400 on `body`. It must say it is
 * JSON: a web page may send `text/plain` or a form to any site without asking, but not `application/json`.
 */
const readBody = (c: Context): Effect.Effect<unknown, BadRequest | UnsupportedMediaType> =>
  Effect.flatMap<string, BadRequest | UnsupportedMediaType, never, unknown, BadRequest, never>(
    isJson(c.req.header("content-type"))
      ? Effect.tryPromise({ try: () => c.req.text(), catch: () => new BadRequest({ field: "body", message: "the request body could not be read" }) })
      : Effect.fail(
          new UnsupportedMediaType({ message: `POST bodies must be JSON with Content-Type: application/json, got ${JSON.stringify(c.req.header("content-type") ?? "none").slice(0, 80)}` })
        ),
    (text) =>
      text.trim() === ""
        ? Effect.succeed({})
        : Effect.try({ try: () => JSON.parse(text) as unknown, catch: () => new BadRequest({ field: "body", message: "the body is not valid JSON" }) })
  )

/** The routes registered so far, for the OpenAPI document. */
export interface Api<R> {
  readonly routes: ReadonlyArray<RouteSpec>
  /** Registers a route: input decoded with the spec's schemas, the handler's Effect run on the app's runtime, failures mapped in one place. */
  readonly route: <Q, P, B, E>(
    spec: RouteSpec<Q, P, B>,
    handler: (input: RouteInput<Q, P, B>, c: Context) => Effect.Effect<Response, E, R>
  ) => void
}

export const makeApi = <R>(
  app: Hono,
  run: RunEffect<R>,
  authorize: (access: Access, authorization: string | undefined) => string | null,
  requestTimeoutSeconds: number
): Api<R> => {
  const routes: Array<RouteSpec> = []
  const deadlineMillis = Math.round(requestTimeoutSeconds * 1000)
  // Outside-API clients stop a little sooner, so that their own failure (with the upstream's reason) answers first.
  const innerDeadlineMillis = deadlineMillis - Math.min(250, Math.floor(deadlineMillis / 10))
  const route: Api<R>["route"] = (spec, handler) => {
    routes.push(spec as RouteSpec)
    app[spec.method](spec.path, async (c) => {
      const refused = authorize(spec.access, c.req.header("authorization"))
      if (refused !== null) return answerFailure(c, Cause.fail(new Unauthorized({ message: refused })), run)
      const input = Effect.all({
        query: decode("query", spec.query, c.req.query()),
        params: decode("params", spec.params, c.req.param()),
        body: spec.body === undefined ? Effect.succeed(undefined) : Effect.flatMap(readBody(c), (body) => decode("body", spec.body, body))
      })
      // Every request has a deadline: outside-API clients fit their retries inside it (see sources/deadline.ts),
      // and whatever still runs at the deadline is cut off with a 504.
      const exit = await run(
        withDeadline(innerDeadlineMillis)(
          Effect.timeoutFail(
            Effect.flatMap(input, (decoded) => handler(decoded as RouteInput<any, any, any>, c)),
            { duration: deadlineMillis, onTimeout: () => new DeadlineExceeded({ seconds: requestTimeoutSeconds }) }
          )
        )
      )
      if (Exit.isFailure(exit)) return answerFailure(c, exit.cause, run)
      if (c.req.method !== "HEAD") return exit.value
      // HEAD is answered with the GET's headers only: a body that was started (an event stream, a CSV page) is
      // cancelled now, which ends whatever feeds it, instead of running on for a client that will never read it.
      await exit.value.body?.cancel().catch(() => undefined)
      return new Response(null, { status: exit.value.status, headers: exit.value.headers })
    })
  }
  return { routes, route }
}

/** The one place a failed handler becomes a response; what the client did not cause is logged with the request id. */
export const answerFailure = async <R>(c: Context, cause: Cause.Cause<unknown>, run: RunEffect<R>): Promise<Response> => {
  const requestId = (c.get("requestId" as never) as string | undefined) ?? crypto.randomUUID()
  if (Cause.isInterruptedOnly(cause)) return answer(c, ErrorAnswer, { error: "unavailable", message: "the service is stopping" }, 503)
  const failure = errorAnswer(cause, requestId)
  if (failure.log) {
    await run(Effect.logError(`${c.req.method} ${c.req.path} failed (${failure.status})`, cause).pipe(Effect.annotateLogs({ request_id: requestId })))
  }
  return answer(c, ErrorAnswer, failure.body, failure.status, failure.headers)
}
