import { Effect } from "effect"
import { AppConfig } from "../config.ts"
import { makeApp, type HttpRequirements } from "./app.ts"
import { runEffectWith } from "./run-effect.ts"

/** Serves the Hono app on Bun.serve for as long as the surrounding scope lives. */
export const serveHttp = Effect.gen(function* () {
  const config = yield* AppConfig
  const runtime = yield* Effect.runtime<HttpRequirements>()
  const app = makeApp(runEffectWith(runtime))
  const server = yield* Effect.acquireRelease(
    Effect.sync(() => Bun.serve({ port: config.port, hostname: "0.0.0.0", fetch: app.fetch })),
    (server) => Effect.promise(() => server.stop())
  )
  yield* Effect.logInfo(`candlekeep listening on http://localhost:${server.port}`)
  return server
})
