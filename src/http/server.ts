import { Effect } from "effect"
import { buildInfo } from "../build-info.ts"
import { AppConfig } from "../config.ts"
import { makeApp, type HttpRequirements } from "./app.ts"
import { runEffectWith } from "./run-effect.ts"

export const version = buildInfo.version

/**
 * Serves the Hono app on Bun.serve for as long as the surrounding scope lives. Handlers run on the runtime
 * of the layers the command built once (the same services the supervisor uses).
 */
export const serveHttp = Effect.gen(function* () {
  const config = yield* AppConfig
  const runtime = yield* Effect.runtime<HttpRequirements>()
  const app = makeApp(runEffectWith(runtime), config.http, version)
  const server = yield* Effect.acquireRelease(
    Effect.sync(() => Bun.serve({ port: config.port, hostname: "0.0.0.0", fetch: app.fetch, idleTimeout: 60 })),
    (server) => Effect.promise(() => server.stop())
  )
  yield* Effect.logInfo(`candlekeep listening on http://localhost:${server.port} (API description: /openapi.json)`)
  return server
})
