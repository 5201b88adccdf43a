import { Hono } from "hono"
import type { DatabaseInfo } from "../store/database.ts"
import { healthRoutes } from "./health.ts"
import type { RunEffect } from "./run-effect.ts"

export type HttpRequirements = DatabaseInfo

/** The whole HTTP surface; every route file is mounted here. */
export const makeApp = (run: RunEffect<HttpRequirements>) => {
  const app = new Hono()
  app.route("/", healthRoutes(run))
  app.notFound((c) => c.json({ error: "not_found", message: `no route for ${c.req.method} ${c.req.path}` }, 404))
  app.onError((error, c) => {
    const requestId = crypto.randomUUID()
    console.error(`request ${requestId} failed: ${error.message}`)
    return c.json({ error: "internal", request_id: requestId, message: "unexpected error; it has been logged" }, 500)
  })
  return app
}
