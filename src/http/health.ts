import { Hono } from "hono"
import { DatabaseInfo } from "../store/database.ts"
import type { RunEffect } from "./run-effect.ts"

const startedAt = Date.now()

/** `GET /api/data/health`: always 200 while the process lives; says what the store runs on. */
export const healthRoutes = (run: RunEffect<DatabaseInfo>) =>
  new Hono().get("/api/data/health", async (c) => {
    const info = await run(DatabaseInfo)
    return c.json({
      status: "ok",
      service: "candlekeep",
      uptime_s: Math.round((Date.now() - startedAt) / 1000),
      database: {
        kind: info.kind,
        flavour: info.flavour,
        location: info.location,
        postgres_version: info.postgresVersion,
        timescaledb_version: info.timescaleVersion,
        migration_level: info.migrationLevel
      }
    })
  })

