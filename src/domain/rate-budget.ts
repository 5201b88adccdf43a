import { Data, type Effect } from "effect"

/**
 * A vendor's requests-per-minute budget for one API key, as a sliding window of places: one place per
 * request a minute. A request takes a free place and holds it until it finishes; the place frees one
 * window after that. Counting from the finish (the vendor saw the request no later than we saw its answer)
 * means N + 1 requests can never land inside one window on the vendor's side, whatever the latency.
 */
export const budgetWindowMillis = 60_000

/** A request's hold on one place; `turn` tells this hold from the place's later ones. */
export interface BudgetTicket {
  readonly keyId: string
  readonly place: number
  readonly turn: number
}

export interface BudgetRequest {
  /** Names the key without being it (a digest prefix): the budget is kept where others can read it. */
  readonly keyId: string
  /** Requests allowed in any window. */
  readonly places: number
  /** When the request starts, Unix ms. */
  readonly now: number
  /** The longest the request can take: if its finish is never recorded, its place frees a window after that. */
  readonly leaseMillis: number
}

export type BudgetAnswer =
  | { readonly _tag: "Taken"; readonly ticket: BudgetTicket }
  /** Every place is held; `earliestFreeAt` is when the first of them frees as things stand, Unix ms. */
  | { readonly _tag: "Full"; readonly earliestFreeAt: number }

export class RateBudgetUnavailable extends Data.TaggedError("RateBudgetUnavailable")<{
  readonly message: string
  readonly cause: unknown
}> {}

/** Where a key's budget is kept: implemented by the store, so every instance on one database shares it. */
export interface RateBudgetShape {
  /** Takes the free place that freed first, in one atomic step, or says the window is full (a key seen for the first time gets its places, and asks again). */
  readonly take: (request: BudgetRequest) => Effect.Effect<BudgetAnswer, RateBudgetUnavailable>
  /** The ticket's request finished at `finishedAt`: its place frees one window later (unless a later turn holds it). */
  readonly finish: (ticket: BudgetTicket, finishedAt: number) => Effect.Effect<void, RateBudgetUnavailable>
}

/**
 * How long to sleep before asking again when the window is full. A place still in flight frees a window
 * after its request finishes, which is later than now: so no place can free sooner than a window from now
 * except one already finished, and asking again then (at the latest) never oversleeps a free place.
 */
export const waitBeforeAsking = (now: number, earliestFreeAt: number): number =>
  Math.min(budgetWindowMillis, Math.max(0, earliestFreeAt - now))
