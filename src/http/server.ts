import { Effect } from "effect"
import { buildInfo } from "../build-info.ts"
import type { Server } from "bun"
import { AppConfig } from "../config.ts"
import { makeApp, type HttpRequirements } from "./app.ts"
import { runEffectWith } from "./run-effect.ts"

export const version = buildInfo.version

/**
 * The app's fetch behind a cap on requests being answered at once (Bun counts a streamed answer until its last
 * byte is written, so slow readers count): beyond `maxConnections`, a 503 costs no work and no memory.
 */
export const cappedFetch =
  (fetch: (request: Request, server: Server<unknown>) => Response | Promise<Response>, maxConnections: number) =>
  (request: Request, server: Server<unknown>): Response | Promise<Response> =>
    server.pendingRequests > maxConnections
      ? Response.json(
          { error: "overloaded", message: `more than ${maxConnections} requests are being answered (HTTP_MAX_CONNECTIONS): try again shortly` },
          { status: 503, headers: { "Retry-After": "1" } }
        )
      : fetch(request, server)

/**
 * Serves the Hono app on Bun.serve for as long as the surrounding scope lives. Handlers run on the runtime
 * of the layers the command built once (the same services the supervisor uses).
 */
export const serveHttp = Effect.gen(function* () {
  const config = yield* AppConfig
  const runtime = yield* Effect.runtime<HttpRequirements>()
  const app = makeApp(runEffectWith(runtime), config.http, version)
  const server = yield* Effect.acquireRelease(
    Effect.sync(() => Bun.serve({ port: config.port, hostname: "0.0.0.0", fetch: cappedFetch(app.fetch, config.http.maxConnections), idleTimeout: 60 })),
    (server) => Effect.promise(() => server.stop())
  )
  yield* Effect.logInfo(`candlekeep listening on http://localhost:${server.port} (API description: /openapi.json)`)
  return server
})
