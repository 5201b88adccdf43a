import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { Cause, Effect, Exit, Layer } from "effect"
import { AppConfig } from "../../src/config.ts"
import { ClusterLive } from "../../src/supervisor/cluster.ts"
import { createTestDatabase, serverKinds, type TestDatabase } from "../support/databases.ts"

/** Issue 16, item 9: a second instance on one machine is told which setting to change, not just `EADDRINUSE`. */
describe.each(serverKinds)("the runner port on the %s server database", (kind) => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await createTestDatabase(kind)
  }, 60_000)
  afterAll(async () => {
    await db?.close()
    await db?.drop()
  })

  test("a RUNNER_PORT another process holds fails start-up with a message naming RUNNER_PORT and the port", async () => {
    const holder = Bun.listen({ hostname: "0.0.0.0", port: 0, socket: { data() {} } })
    try {
      const config = { ...db.config, supervisor: { ...db.config.supervisor, runnerPort: holder.port } }
      const exit = await db.run(Effect.exit(Effect.scoped(Layer.build(ClusterLive.pipe(Layer.provide(Layer.succeed(AppConfig, config)))))))
      expect(Exit.isFailure(exit)).toBe(true)
      const said = Exit.isFailure(exit) ? Cause.pretty(exit.cause) : ""
      expect(said).toContain("RUNNER_PORT")
      expect(said).toContain(String(holder.port))
    } finally {
      holder.stop(true)
    }
  }, 60_000)
})
