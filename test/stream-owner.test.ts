import { afterAll, describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { Ingest } from "../src/pipeline/ingest.ts"
import { SyncRepo } from "../src/store/sync-repo.ts"
import { quietBars } from "./support/bars.ts"
import { createTestDatabase, databaseKinds, type TestDatabase } from "./support/databases.ts"

const minute = 60_000
const from = Date.UTC(2021, 0, 4, 10)

for (const kind of databaseKinds)
describe(`a page of a stream another runner has claimed (${kind})`, () => {
  let db: TestDatabase
  afterAll(async () => {
    await db?.close()
    await db?.drop()
  })

  test("is refused whole — no bar, no fetch_log row, no watermark move — while the claimant's own page goes in", async () => {
    db = await createTestDatabase(kind)
    const spec = db.config.symbols.find((s) => s.symbol === "EURUSD")!
    const page = (owner: string, start: number) => ({
      spec,
      timeframe: "M1" as const,
      source: "massive" as const,
      purpose: "sync" as const,
      range: { from: start, to: start + 10 * minute },
      candles: quietBars(start, 10),
      requestId: null,
      httpStatus: 200,
      advanceTo: start + 10 * minute,
      owner
    })
    const stored = () =>
      db.run(
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ bars: number; fetches: number }>`
          SELECT (SELECT count(*)::int FROM candles WHERE symbol = 'EURUSD') AS bars,
                 (SELECT count(*)::int FROM fetch_log WHERE symbol = 'EURUSD') AS fetches`)
      ).then((rows) => rows[0])
    // A runner that woke from a freeze after B took the stream over: its loop still holds a page to write.
    await db.run(SyncRepo.use((repo) => repo.setStatus("EURUSD", "M1", "live", "runner-b:1")))
    const refused = await db.run(Effect.flip(Ingest.use((ingest) => ingest.writePage(page("runner-a:1", from)))))
    expect(refused._tag).toBe("NotStreamOwner")
    expect(refused.message).toBe("EURUSD:M1 now runs on runner-b:1, not on runner-a:1: this loop's page is refused")
    expect(await stored()).toEqual({ bars: 0, fetches: 0 })
    expect((await db.run(SyncRepo.use((repo) => repo.state("EURUSD", "M1")))).pipe((s) => s._tag === "Some" ? s.value.watermark : null)).toBeNull()

    await db.run(Ingest.use((ingest) => ingest.writePage(page("runner-b:1", from))))
    expect(await stored()).toEqual({ bars: 10, fetches: 1 })
    // A state reported without a claim (degraded, live) keeps the claimant.
    await db.run(SyncRepo.use((repo) => repo.setStatus("EURUSD", "M1", "degraded")))
    const again = await db.run(Effect.flip(Ingest.use((ingest) => ingest.writePage(page("runner-a:1", from + 10 * minute)))))
    expect(again._tag).toBe("NotStreamOwner")
  })
})
