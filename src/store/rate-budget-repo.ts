import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import { type BudgetAnswer, budgetWindowMillis, type RateBudgetShape, RateBudgetUnavailable } from "../domain/rate-budget.ts"

const unavailable = (what: string) =>
  Effect.mapError((cause: SqlError) => new RateBudgetUnavailable({ message: `the shared request budget could not ${what}: ${cause.message}`, cause }))

/**
 * `rate_budget`: each API key's sliding window, shared by every instance on the database. Taking a place is
 * one UPDATE: the row is locked while the decision is made, so two instances never take the same place, and
 * SKIP LOCKED lets a concurrent taker move on to the next free place instead of queueing behind the first.
 *
 * Times are the caller's (the Effect Clock, as Unix ms), not the database's `clock_timestamp()`: a test drives
 * every instance with one TestClock, and the fake vendor judges its window by that same clock. The decision
 * itself still happens inside the statement, so it is atomic whatever the clock.
 */
export class RateBudgetRepo extends Effect.Service<RateBudgetRepo>()("Store/RateBudgetRepo", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const at = (ms: number) => sql`to_timestamp(${ms / 1000}::float8)`

    // Idempotent, so two instances meeting a new key at once both succeed.
    const open = (keyId: string, places: number) =>
      sql`INSERT INTO rate_budget (key_id, place)
          SELECT ${keyId}, generate_series(1, ${places}::int)
          ON CONFLICT (key_id, place) DO NOTHING`.pipe(Effect.asVoid)

    const take: RateBudgetShape["take"] = ({ keyId, places, now, leaseMillis }) =>
      sql<{ place: number | null; turn: number | null; earliest_free_at: number | null; places: number | null }>`
        WITH taken AS (
          UPDATE rate_budget SET free_from = ${at(now + leaseMillis + budgetWindowMillis)}, turn = turn + 1
          WHERE key_id = ${keyId} AND place = (
            SELECT place FROM rate_budget
            WHERE key_id = ${keyId} AND place <= ${places}::int AND free_from <= ${at(now)}
            ORDER BY free_from, place
            LIMIT 1
            FOR UPDATE SKIP LOCKED)
          RETURNING place, turn)
        SELECT taken.place, taken.turn, mine.earliest_free_at, mine.places
        FROM (SELECT (extract(epoch FROM min(free_from)) * 1000)::float8 AS earliest_free_at, count(*)::int AS places
              FROM rate_budget WHERE key_id = ${keyId} AND place <= ${places}::int) AS mine
        LEFT JOIN taken ON true`.pipe(
        Effect.flatMap(([row]): Effect.Effect<BudgetAnswer, SqlError> => {
          if (row?.place != null && row.turn != null) return Effect.succeed({ _tag: "Taken", ticket: { keyId, place: row.place, turn: row.turn } })
          // No places yet (a new key, or a plan with more requests a minute): make them, and let the caller ask again at once.
          if (row?.earliest_free_at == null || (row.places ?? 0) < places) return Effect.as(open(keyId, places), { _tag: "Full", earliestFreeAt: now })
          // Read before the update: a place just taken by someone else may look free; asking again at once sorts that out.
          return Effect.succeed({ _tag: "Full", earliestFreeAt: Number(row.earliest_free_at) })
        }),
        unavailable("be asked"),
        Effect.withSpan("RateBudget.take")
      )

    const finish: RateBudgetShape["finish"] = (ticket, finishedAt) =>
      sql`UPDATE rate_budget SET free_from = least(free_from, ${at(finishedAt + budgetWindowMillis)})
          WHERE key_id = ${ticket.keyId} AND place = ${ticket.place} AND turn = ${ticket.turn}`.pipe(
        Effect.asVoid,
        unavailable("record a finished request")
      )

    return { take, finish } satisfies RateBudgetShape
  })
}) {}
