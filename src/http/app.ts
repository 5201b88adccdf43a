import { Cause, Effect, Metric, Option } from "effect"
import { Hono } from "hono"
import { bodyLimit } from "hono/body-limit"
import { compress } from "hono/compress"
import { cors } from "hono/cors"
import { requestId } from "hono/request-id"
import type { HttpSettings } from "../config.ts"
import { httpLatency, httpRequests } from "../metrics.ts"
import { makeApi, answerFailure, type Api } from "./api.ts"
import { makeAuthorizer } from "./auth.ts"
import { brokerRoutes } from "./broker.ts"
import { candleRoutes } from "./candles.ts"
import { eventRoutes } from "./events.ts"
import { exportRoutes } from "./export.ts"
import { gapRoutes } from "./gaps.ts"
import { verifyRoutes } from "./verify.ts"
import { retryRoutes } from "./retry.ts"
import { dashboardRoutes } from "./dashboard.ts"
import { healthRoutes } from "./health.ts"
import { jobRoutes } from "./jobs.ts"
import { metricsRoutes } from "./metrics.ts"
import { openApiDocument } from "./openapi.ts"
import type { RunEffect } from "./run-effect.ts"
import { statusRoutes } from "./status.ts"
import { symbolRoutes } from "./symbols.ts"
import type { AppServices } from "../app-layer.ts"
import type { Jobs } from "../supervisor/jobs.ts"
import type { Readiness } from "../supervisor/readiness.ts"

export type HttpRequirements = AppServices | Jobs | Readiness

export const maxBodyBytes = 64 * 1024
/** Hono's request-id middleware also refuses any character outside letters, digits, `_`, `-` and `=`. */
export const maxRequestIdLength = 64

/**
 * The whole HTTP surface: request ids, logs and metrics, CORS, gzip, a body cap, then every route file.
 * Each route decodes its input with its schemas and runs its Effect on the app's runtime (see api.ts).
 */
export const makeApp = (run: RunEffect<HttpRequirements>, settings: HttpSettings, version: string) => {
  const app = new Hono()
  // A client's own id is kept only when it is a short token of safe characters; anything else gets a fresh one.
  app.use(requestId({ limitLength: maxRequestIdLength, generator: () => crypto.randomUUID() }))
  app.use(async (c, next) => {
    const started = performance.now()
    await next()
    const seconds = (performance.now() - started) / 1000
    // The route's pattern, not the raw path, so a label never holds client input.
    const route = c.req.routePath === "/*" ? "unmatched" : c.req.routePath
    const status = c.res.status
    await run(
      Effect.all([
        Metric.increment(Metric.tagged(Metric.tagged(Metric.tagged(httpRequests, "method", c.req.method), "route", route), "status", String(status))),
        Metric.update(Metric.tagged(Metric.tagged(httpLatency, "method", c.req.method), "route", route), seconds),
        Effect.logInfo("request").pipe(
          Effect.annotateLogs({ method: c.req.method, path: c.req.path, status, ms: Math.round(seconds * 10_000) / 10, request_id: c.get("requestId") })
        )
      ])
    )
  })
  if (settings.corsOrigins.length > 0) {
    app.use(cors({ origin: settings.corsOrigins.includes("*") ? "*" : [...settings.corsOrigins], allowHeaders: ["Authorization", "Content-Type"], exposeHeaders: ["X-Request-Id", "X-Next"], maxAge: 600 }))
  }
  app.use(compress({ threshold: 8 * 1024 }))
  app.use(
    bodyLimit({
      maxSize: maxBodyBytes,
      onError: (c) => c.json({ error: "payload_too_large", field: "body", message: `request bodies are limited to ${maxBodyBytes / 1024} KiB` }, 413)
    })
  )

  const api: Api<HttpRequirements> = makeApi(app, run, makeAuthorizer(settings), settings.requestTimeoutSeconds)
  healthRoutes(api)
  symbolRoutes(api)
  candleRoutes(api)
  exportRoutes(api, version)
  jobRoutes(api)
  statusRoutes(api)
  gapRoutes(api)
  verifyRoutes(api)
  eventRoutes(api)
  metricsRoutes(api)
  brokerRoutes(api)
  retryRoutes(api)
  dashboardRoutes(app)
  const document = openApiDocument(api.routes, { version, tokens: Option.isSome(settings.apiToken) || Option.isSome(settings.apiReadToken) })
  app.get("/openapi.json", (c) => c.json(document))

  app.notFound((c) => c.json({ error: "not_found", message: `no route for ${c.req.method} ${c.req.path}`, docs: "/openapi.json" }, 404))
  app.onError((error, c) => answerFailure(c, Cause.die(error), run))
  return app
}
