import { Clock, Context, Effect, Redacted } from "effect"
import { createHash } from "node:crypto"
import { type BudgetTicket, type RateBudgetShape, type RateBudgetUnavailable, waitBeforeAsking } from "../../domain/rate-budget.ts"

/** Where each key's per-minute budget is kept. The app keeps it in the database, so every instance on it shares one. */
export class MassiveRateBudget extends Context.Tag("Massive/MassiveRateBudget")<MassiveRateBudget, RateBudgetShape>() {}

/** Admits requests to a vendor budget; every caller with the same key shares it. */
export interface RateLimiter {
  /** Runs `request` once a concurrency permit and a place in the key's 60 s window are free. */
  readonly withPermit: <A, E, R>(request: Effect.Effect<A, E, R>) => Effect.Effect<A, E | RateBudgetUnavailable, R>
}

export interface RateLimit {
  /** Requests allowed in any 60 s window; null = no cap. */
  readonly requestsPerMinute: number | null
  readonly maxConcurrency: number
  /** The longest one request can take (its timeout): a place whose finish is never recorded stays held that long. */
  readonly leaseMillis: number
}

/** Names a key in the shared budget without storing it: the first 16 hex digits of its SHA-256. */
export const budgetKeyId = (apiKey: Redacted.Redacted<string>): string =>
  createHash("sha256").update(Redacted.value(apiKey)).digest("hex").slice(0, 16)

/**
 * This process's concurrency cap in front of the key's shared budget. "Now" comes from the Effect Clock and is
 * handed to the budget, which decides atomically: TestClock can drive it, and instances on NTP-synced hosts
 * agree to within milliseconds (a skewed host risks a 429, which the client waits out and retries).
 */
export const makeRateLimiter = (limit: RateLimit, budget: RateBudgetShape, keyId: string): RateLimiter => {
  const permits = Effect.unsafeMakeSemaphore(limit.maxConcurrency)
  const places = limit.requestsPerMinute
  // A plan without a per-minute cap never asks the budget: no database round-trip per request.
  if (places === null) return { withPermit: (request) => permits.withPermits(1)(request) }

  // Asking is uninterruptible (a taken place is never lost between the answer and us); only the sleep is not.
  const takePlace = (restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>): Effect.Effect<BudgetTicket, RateBudgetUnavailable> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.flatMap(budget.take({ keyId, places, now, leaseMillis: limit.leaseMillis }), (answer) =>
        answer._tag === "Taken"
          ? Effect.succeed(answer.ticket)
          : restore(Effect.sleep(waitBeforeAsking(now, answer.earliestFreeAt))).pipe(Effect.zipRight(takePlace(restore)))
      )
    )

  // If the finish cannot be recorded, the place stays held until its lease runs out: later, never sooner.
  const finish = (ticket: BudgetTicket) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => budget.finish(ticket, now)).pipe(
      Effect.catchAll((error) => Effect.logWarning(`the request's place stays held until its lease ends: ${error.message}`))
    )

  return {
    withPermit: (request) =>
      permits.withPermits(1)(
        Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(takePlace(restore), (ticket) => restore(request).pipe(Effect.ensuring(finish(ticket))))
        )
      )
  }
}

/** One limiter per API key for the whole process, so two clients (or streams) with one key share one concurrency cap. */
export class MassiveRateLimits extends Effect.Service<MassiveRateLimits>()("Massive/MassiveRateLimits", {
  effect: Effect.map(MassiveRateBudget, (budget) => {
    const byKey = new Map<string, RateLimiter>()
    return {
      /** The key's limiter; the first caller's limits win, as one key has one plan. */
      forKey: (apiKey: Redacted.Redacted<string>, limit: RateLimit): Effect.Effect<RateLimiter> =>
        Effect.sync(() => {
          const keyId = budgetKeyId(apiKey)
          const existing = byKey.get(keyId)
          if (existing !== undefined) return existing
          const limiter = makeRateLimiter(limit, budget, keyId)
          byKey.set(keyId, limiter)
          return limiter
        })
    }
  })
}) {}
