import { Effect, Ref } from "effect"

/** Whether this instance's supervisor is up: `/api/data/ready` answers 503 with the reason until it is. */
export class Readiness extends Effect.Service<Readiness>()("Supervisor/Readiness", {
  effect: Effect.gen(function* () {
    const reason = yield* Ref.make<string | null>("supervisor starting")
    return {
      /** Null when ready, else why not. */
      notReady: Ref.get(reason),
      markRunning: Ref.set(reason, null),
      markStopping: Ref.set(reason, "supervisor stopping")
    } as const
  })
}) {}
