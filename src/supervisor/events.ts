import { Clock, Effect, PubSub, Ref } from "effect"
import type { BrokerStatus, ComparisonStatus } from "../store/broker-repo.ts"
import type { StreamStatus } from "../store/sync-repo.ts"

/** What the supervisor tells the outside world about its streams (the HTTP API's live feed). */
export type StreamEvent =
  | { readonly type: "state"; readonly stream: string; readonly status: StreamStatus; readonly at: number; readonly error?: string }
  | {
      readonly type: "page"
      readonly stream: string
      readonly at: number
      readonly fetched: number
      readonly stored: number
      readonly rejected: number
      readonly watermark: number
    }
  | { readonly type: "restart"; readonly stream: string; readonly at: number; readonly delayMillis: number; readonly error: string }
  | { readonly type: "job"; readonly job: string; readonly at: number; readonly detail: string }
  /** A broker stream's quote loop changed state; `stream` is `ACCOUNT:SYMBOL`; a degraded one says when it tries again. */
  | {
      readonly type: "broker-state"
      readonly stream: string
      readonly account: string
      readonly symbol: string
      readonly status: BrokerStatus
      readonly at: number
      readonly error?: string
      readonly delayMillis?: number
    }
  /** A scheduled comparison was stored; `meanPips` is null when there were no samples (or it failed: `error`). */
  | {
      readonly type: "broker-compare"
      readonly stream: string
      readonly account: string
      readonly symbol: string
      readonly status: ComparisonStatus
      readonly at: number
      readonly samples: number
      readonly meanPips: number | null
      readonly error?: string
    }

/** An in-process hub: each instance publishes its own streams' events; slow readers lose the oldest, never block a stream. */
export class StreamEvents extends Effect.Service<StreamEvents>()("Supervisor/StreamEvents", {
  scoped: Effect.gen(function* () {
    const hub = yield* Effect.acquireRelease(PubSub.sliding<StreamEvent>(1024), PubSub.shutdown)
    const publish = (event: StreamEvent) => PubSub.publish(hub, event).pipe(Effect.asVoid)
    const now = Clock.currentTimeMillis
    // Counted so that a subscription outliving its reader (a leak) can be seen, and tested for.
    const open = yield* Ref.make(0)
    const subscribe = Effect.zipLeft(
      PubSub.subscribe(hub),
      Effect.acquireRelease(Ref.update(open, (n) => n + 1), () => Ref.update(open, (n) => n - 1))
    )
    return { publish, now, subscribe, subscribers: Ref.get(open) } as const
  })
}) {}
