import { Effect, Layer } from "effect"
import { type BudgetAnswer, budgetWindowMillis, type RateBudgetShape } from "../../src/domain/rate-budget.ts"
import { MassiveRateBudget } from "../../src/sources/massive/rate-limiter.ts"

interface Place {
  freeFrom: number
  turn: number
}

/**
 * The `rate_budget` table's rules kept in this process's memory, for client and limiter tests that need no
 * database: each call is one synchronous step, as each statement is one atomic step in SQL.
 */
export const makeMemoryRateBudget = (): RateBudgetShape => {
  const byKey = new Map<string, Array<Place>>()
  const placesOf = (keyId: string) => byKey.get(keyId) ?? []
  return {
    take: ({ keyId, places, now, leaseMillis }) =>
      Effect.sync((): BudgetAnswer => {
        const all = placesOf(keyId)
        while (all.length < places) all.push({ freeFrom: -Infinity, turn: 0 })
        byKey.set(keyId, all)
        const mine = all.slice(0, places)
        const free = mine.map((place, index) => ({ place, index })).filter(({ place }) => place.freeFrom <= now)
        const first = free.sort((a, b) => a.place.freeFrom - b.place.freeFrom || a.index - b.index)[0]
        if (first === undefined) return { _tag: "Full", earliestFreeAt: Math.min(...mine.map((p) => p.freeFrom)) }
        first.place.freeFrom = now + leaseMillis + budgetWindowMillis
        first.place.turn += 1
        return { _tag: "Taken", ticket: { keyId, place: first.index + 1, turn: first.place.turn } }
      }),
    finish: (ticket, finishedAt) =>
      Effect.sync(() => {
        const place = placesOf(ticket.keyId)[ticket.place - 1]
        if (place !== undefined && place.turn === ticket.turn) place.freeFrom = Math.min(place.freeFrom, finishedAt + budgetWindowMillis)
      })
  }
}

/** A fresh in-memory budget for one test. */
export const memoryRateBudgetLayer = Layer.sync(MassiveRateBudget, makeMemoryRateBudget)
