import { Effect, Exit, Runtime } from "effect"

/** Runs a service effect on the application's runtime, from inside a Hono handler; never rejects. */
export type RunEffect<R> = <A, E>(effect: Effect.Effect<A, E, R>) => Promise<Exit.Exit<A, E>>

export const runEffectWith = <R>(runtime: Runtime.Runtime<R>): RunEffect<R> => {
  const runExit = Runtime.runPromiseExit(runtime)
  return (effect) => runExit(effect)
}
