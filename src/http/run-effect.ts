import { Effect, Runtime } from "effect"

/** Runs a service effect on the application's runtime, from inside a Hono handler. */
export type RunEffect<R> = <A, E>(effect: Effect.Effect<A, E, R>) => Promise<A>

export const runEffectWith = <R>(runtime: Runtime.Runtime<R>): RunEffect<R> => (effect) => Runtime.runPromise(runtime)(effect)
