import { Cause, Effect, Exit, ParseResult, Schema } from "effect"
import type { Context, Hono } from "hono"
import { answer, ErrorAnswer, type Answer } from "./contract.ts"
import { BadRequest, errorAnswer, Unauthorized } from "./errors.ts"
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

/** A JSON body, or `{}` when there is none; anything else that is not JSON is a 400 on `body`. */
const readBody = (c: Context) =>
  Effect.flatMap(
    Effect.tryPromise({ try: () => c.req.text(), catch: () => new BadRequest({ field: "body", message: "the request body could not be read" }) }),
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

export const makeApi = <R>(app: Hono, run: RunEffect<R>, authorize: (access: Access, authorization: string | undefined) => string | null): Api<R> => {
  const routes: Array<RouteSpec> = []
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
      const exit = await run(Effect.flatMap(input, (decoded) => handler(decoded as RouteInput<any, any, any>, c)))
      if (Exit.isSuccess(exit)) return exit.value
      return answerFailure(c, exit.cause, run)
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
