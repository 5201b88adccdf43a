import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { DatabaseInfo } from "../store/database.ts"
import { migrations } from "../store/migrations.ts"
import { Readiness } from "../supervisor/readiness.ts"
import type { Api } from "./api.ts"
import { answer, HealthAnswer, NotReadyAnswer, ReadyAnswer } from "./contract.ts"

const startedAt = Date.now()

/** `GET /api/data/health` (always 200 while the process lives) and `GET /api/data/ready` (503 with the reason until it can serve). */
export const healthRoutes = (api: Api<DatabaseInfo | SqlClient.SqlClient | Readiness>) => {
  api.route(
    { method: "get", path: "/api/data/health", tag: "service", summary: "Liveness: what the store runs on", access: "public", responses: { 200: HealthAnswer } },
    (_, c) =>
      Effect.map(DatabaseInfo, (info) =>
        answer(c, HealthAnswer, {
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
      )
  )
  api.route(
    {
      method: "get",
      path: "/api/data/ready",
      tag: "service",
      summary: "Readiness: the database answers, every migration is applied, the supervisor runs",
      access: "public",
      responses: { 200: ReadyAnswer, 503: NotReadyAnswer }
    },
    (_, c) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const database = yield* sql`SELECT 1 AS one`.pipe(
          Effect.timeout("3 seconds"),
          Effect.as(null),
          Effect.catchAll(() => Effect.succeed("the database does not answer"))
        )
        const info = yield* DatabaseInfo
        const latest = migrations.at(-1)!.name
        const migrated = info.migrationLevel === latest ? null : `migrations at ${info.migrationLevel}, expected ${latest}`
        const supervisor = yield* Readiness.use((r) => r.notReady)
        const reasons = [database, migrated, supervisor].filter((r): r is string => r !== null)
        return reasons.length === 0
          ? answer(c, ReadyAnswer, { status: "ready" })
          : answer(c, NotReadyAnswer, { status: "not_ready", error: "not_ready", message: reasons.join("; "), reasons }, 503)
      })
  )
}
