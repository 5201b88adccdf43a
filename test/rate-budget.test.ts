import { afterEach, describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Context, Effect, Exit, Fiber, Layer, Option, Redacted, TestClock, TestContext } from "effect"
import { createHash } from "node:crypto"
import { AppConfig, type AppConfigShape } from "../src/config.ts"
import type { BudgetTicket } from "../src/domain/rate-budget.ts"
import { MassiveClient } from "../src/sources/massive/client.ts"
import { MassiveRateBudget } from "../src/sources/massive/rate-limiter.ts"
import { startMassiveFake, type MassiveFake } from "./fakes/massive.ts"
import { createTestDatabase, databaseKinds, type DatabaseKind, type TestDatabase } from "./support/databases.ts"
import { advanceUntil } from "./support/test-clock.ts"

const apiKey = "ck-free-9Tz4QwE2rY7uI0xP"
const minute = 60_000
const startedAt = Date.parse("2021-06-01T00:00:00Z")
const monday = Date.parse("2021-01-04T00:00:00Z")

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

/** A fresh database whose configuration points at the fake with one key; the timeout is far beyond every wait. */
const setup = async (kind: DatabaseKind, fake: MassiveFake, plan: "free" | "paid") => {
  const massive: AppConfigShape["massive"] = {
    ...AppConfig.fixed().massive,
    apiKey: Option.some(Redacted.make(apiKey)),
    baseUrl: fake.baseUrl,
    plan,
    requestsPerMinute: Option.none(),
    maxConcurrency: 4,
    timeoutSeconds: 100_000
  }
  const db = await createTestDatabase(kind, { massive })
  cleanups.push(async () => {
    await db.close()
    await db.drop()
    await fake.stop()
  })
  return db
}

/**
 * Instances on one database. On a server each has its own runtime (its own connection pool and services), as
 * separate processes would; the embedded database belongs to one process, so there they share the runtime.
 * Started one after another: this is about the budget, not about migrating a fresh database from two at once.
 */
const instances = async (db: TestDatabase, count: number): Promise<ReadonlyArray<TestDatabase>> => {
  const started: Array<TestDatabase> = []
  for (let i = 0; i < count; i++) {
    const instance = i === 0 || db.kind === "embedded" ? db : db.reopen()
    if (instance !== db) cleanups.push(() => instance.close())
    await instance.runtime.runtime()
    started.push(instance)
  }
  return started
}

/** A Massive client built afresh over an instance's services: its own limiters in memory, only the database shared. */
const clientOn = (instance: TestDatabase) =>
  Effect.promise(() => instance.runtime.runtime()).pipe(
    Effect.flatMap((runtime) => Layer.build(MassiveClient.Default.pipe(Layer.provide(Layer.succeedContext(runtime.context))))),
    Effect.map(Context.get(MassiveClient))
  )

/** The most arrivals inside any 60 s window. */
const busiestMinute = (arrivals: ReadonlyArray<number>): number =>
  Math.max(0, ...arrivals.map((from) => arrivals.filter((at) => at >= from && at < from + minute).length))

const keyDigest = createHash("sha256").update(apiKey).digest("hex")

for (const kind of databaseKinds) {
  describe(`shared Massive request budget on the ${kind} database`, () => {
    test("three instances with one free key send at most 5 requests in any 60 s window and draw no 429", async () => {
      // The vendor judges its window by the TestClock every instance waits on; it reads it once per request.
      let vendorClock = () => startedAt
      const arrivals: Array<number> = []
      const fake = startMassiveFake({
        bars: new Map(),
        apiKeys: [apiKey],
        rateLimit: { requestsPerMinute: 5, sendRetryAfter: true },
        now: () => {
          const at = vendorClock()
          arrivals.push(at)
          return at
        }
      })
      const db = await setup(kind, fake, "free")
      const running = await instances(db, 3)
      const program = Effect.gen(function* () {
        yield* TestClock.setTime(startedAt)
        const clock = yield* Effect.clock
        vendorClock = () => clock.unsafeCurrentTimeMillis()
        const clients = yield* Effect.forEach(running, clientOn)
        // Four different days per instance, all at once: twelve requests, where one free key allows five a minute.
        const requests = clients.flatMap((client, i) =>
          Array.from({ length: 4 }, (_, j) => {
            const from = monday + (i * 4 + j) * 86_400_000
            return Effect.exit(client.fetchPage({ symbol: "EURUSD", timeframe: "M1", from, to: from + 60 * minute }))
          })
        )
        const work = yield* Effect.fork(Effect.all(requests, { concurrency: "unbounded" }))
        yield* advanceUntil(() => work.unsafePoll() !== null, { limitMillis: 10 * minute, horizonMillis: 2 * minute })
        return yield* Fiber.join(work)
      })
      const exits = await db.run(Effect.scoped(program).pipe(Effect.provide(TestContext.TestContext)))

      expect(exits.filter(Exit.isFailure).map(String)).toEqual([])
      expect(fake.requests.filter((r) => r.status === 429)).toEqual([])
      expect(fake.requests.length).toBe(12)
      expect(busiestMinute(arrivals)).toBe(5)
      // Twelve requests at five a minute span at least two full windows of the vendor's clock.
      expect(Math.max(...arrivals) - startedAt).toBeGreaterThanOrEqual(2 * minute)
    })

    test("the budget names the key by a digest prefix: the key is nowhere in the database", async () => {
      const fake = startMassiveFake({ bars: new Map(), apiKeys: [apiKey] })
      const db = await setup(kind, fake, "free")
      const rows = await db.run(
        Effect.gen(function* () {
          const client = yield* MassiveClient
          yield* client.fetchPage({ symbol: "EURUSD", timeframe: "M1", from: monday, to: monday + minute })
          const sql = yield* SqlClient.SqlClient
          return yield* sql<{ key_id: string; place: number; row: string }>`SELECT key_id, place, t::text AS row FROM rate_budget t ORDER BY place`
        })
      )
      expect(rows.map((r) => [r.key_id, r.place])).toEqual([1, 2, 3, 4, 5].map((place) => [keyDigest.slice(0, 16), place]))
      for (const row of rows) expect(row.row).not.toContain(apiKey)
      // And no other table picked it up on the way.
      const everything = await db.run(
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const tables = yield* sql<{ name: string }>`
            SELECT quote_ident(table_name) AS name FROM information_schema.tables
            WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`
          const texts = yield* Effect.forEach(tables, (t) => sql.unsafe<{ text: string | null }>(`SELECT string_agg(x::text, ' ') AS text FROM ${t.name} x`))
          return texts.map((rows) => rows[0]?.text ?? "").join("\n")
        })
      )
      expect(everything).toContain(keyDigest.slice(0, 16))
      expect(everything).not.toContain(apiKey)
    })

    test("a paid plan without a per-minute cap sends without asking the database", async () => {
      const fake = startMassiveFake({ bars: new Map(), apiKeys: [apiKey] })
      const db = await setup(kind, fake, "paid")
      const rows = await db.run(
        Effect.gen(function* () {
          const client = yield* MassiveClient
          yield* client.fetchPage({ symbol: "EURUSD", timeframe: "M1", from: monday, to: monday + minute })
          const sql = yield* SqlClient.SqlClient
          return yield* sql`SELECT * FROM rate_budget`
        })
      )
      expect(fake.requests.map((r) => r.status)).toEqual([200])
      expect(rows).toEqual([])
    })

    test("a place whose finish is never recorded frees a lease and a window later; a late finish cannot shorten the next hold", async () => {
      const fake = startMassiveFake({ bars: new Map(), apiKeys: [apiKey] })
      const db = await setup(kind, fake, "free")
      const keyId = "00000000000000aa"
      const lease = 30_000
      const steps = await db.run(
        Effect.gen(function* () {
          const budget = yield* MassiveRateBudget
          const take = (after: number) => budget.take({ keyId, places: 2, now: startedAt + after, leaseMillis: lease })
          const ticketOf = (answer: Effect.Effect.Success<ReturnType<typeof take>>): BudgetTicket => {
            if (answer._tag !== "Taken") throw new Error(`expected a place, got ${JSON.stringify(answer)}`)
            return answer.ticket
          }
          // The first ask makes the key's places.
          const opening = yield* take(0)
          const first = ticketOf(yield* take(0))
          const second = ticketOf(yield* take(0))
          const fullWhileBothFly = yield* take(1_000)
          yield* budget.finish(first, startedAt + 10_000)
          const fullAfterOneFinished = yield* take(20_000)
          const firstAgain = ticketOf(yield* take(70_000))
          // The second never reported back: its lease (30 s) and a window have passed.
          const secondAgain = ticketOf(yield* take(90_000))
          // Its finish arrives now, too late: the place belongs to the next turn and stays held.
          yield* budget.finish(second, startedAt + 91_000)
          const fullAtTheEnd = yield* take(100_000)
          return { opening, first, second, fullWhileBothFly, fullAfterOneFinished, firstAgain, secondAgain, fullAtTheEnd }
        })
      )
      expect(steps.opening).toEqual({ _tag: "Full", earliestFreeAt: startedAt })
      expect([steps.first.place, steps.second.place].sort()).toEqual([1, 2])
      expect(steps.fullWhileBothFly).toEqual({ _tag: "Full", earliestFreeAt: startedAt + lease + minute })
      expect(steps.fullAfterOneFinished).toEqual({ _tag: "Full", earliestFreeAt: startedAt + 10_000 + minute })
      expect(steps.firstAgain).toEqual({ ...steps.first, turn: steps.first.turn + 1 })
      expect(steps.secondAgain).toEqual({ ...steps.second, turn: steps.second.turn + 1 })
      expect(steps.fullAtTheEnd).toEqual({ _tag: "Full", earliestFreeAt: startedAt + 70_000 + lease + minute })
    })

    test("forty takes at once from two instances get exactly the five places, each once", async () => {
      const fake = startMassiveFake({ bars: new Map(), apiKeys: [apiKey] })
      const db = await setup(kind, fake, "free")
      const keyId = "00000000000000bb"
      const [a, b] = await instances(db, 2)
      const takeAll = (instance: TestDatabase) =>
        instance.run(
          Effect.flatMap(MassiveRateBudget, (budget) =>
            Effect.all(
              Array.from({ length: 20 }, () => budget.take({ keyId, places: 5, now: startedAt, leaseMillis: 30_000 })),
              { concurrency: "unbounded" }
            )
          )
        )
      // One ask makes the key's places; then both instances ask twenty times at the same instant.
      await a!.run(Effect.flatMap(MassiveRateBudget, (budget) => budget.take({ keyId, places: 5, now: startedAt, leaseMillis: 30_000 })))
      const answers = (await Promise.all([takeAll(a!), takeAll(b!)])).flat()
      const places = answers.flatMap((answer) => (answer._tag === "Taken" ? [answer.ticket.place] : []))
      expect(places.sort()).toEqual([1, 2, 3, 4, 5])
      expect(answers.filter((answer) => answer._tag === "Full").length).toBe(35)
    })
  })
}
