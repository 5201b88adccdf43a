import { Effect } from "effect"

/**
 * Reads that keep the one JavaScript thread busy for tens of milliseconds (pages over 2,000 bars, quality over
 * decades) run at most this many at once; the others wait their turn without using the CPU, so that /health and
 * short reads are answered in between instead of queueing behind all of them.
 */
export const heavyReadsAtOnce = 2

const permits = Effect.unsafeMakeSemaphore(heavyReadsAtOnce)

/** Runs a heavy read when a place is free. */
export const asHeavyRead = <A, E, R>(read: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => permits.withPermits(1)(read)
