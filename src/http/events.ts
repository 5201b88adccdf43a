import { Effect, Exit, Queue, Schema, Scope } from "effect"
import { streamSSE } from "hono/streaming"
import { StreamEvents } from "../supervisor/events.ts"
import type { Api } from "./api.ts"
import { EventStream } from "./contract.ts"
import { Name } from "./params.ts"

const heartbeatMillis = 15_000

const EventsQuery = Schema.Struct({
  stream: Schema.optional(Name.annotations({ description: "only this stream's events, e.g. EURUSD:M1 (job events always come)" }))
})

/**
 * `GET /api/data/events`: Server-Sent Events from this instance's supervisor (state changes, stored pages,
 * restarts, jobs), one `event:` per type, with a heartbeat comment every 15 s so proxies keep the line open.
 */
export const eventRoutes = (api: Api<StreamEvents>) =>
  api.route(
    {
      method: "get",
      path: "/api/data/events",
      tag: "streams",
      summary: "Server-Sent Events: state, page, restart and job events, with heartbeats",
      access: "read",
      query: EventsQuery,
      responses: { 200: EventStream }
    },
    ({ query }, c) =>
      Effect.gen(function* () {
        const events = yield* StreamEvents
        // Subscribed before the answer starts, so nothing published after the request arrives is missed; the
        // subscription lives in its own scope, closed when the client goes away.
        const scope = yield* Scope.make()
        const subscription = yield* Scope.extend(events.subscribe, scope)
        const wanted = query.stream?.toUpperCase()
        return streamSSE(c, async (sse) => {
          let id = 0
          const closed = new Promise<undefined>((resolve) => sse.onAbort(() => resolve(undefined)))
          const heartbeat = setInterval(() => void sse.write(": heartbeat\n\n").catch(() => undefined), heartbeatMillis)
          try {
            await sse.writeSSE({ event: "hello", data: JSON.stringify({ at: new Date().toISOString(), ...(wanted ? { stream: wanted } : {}) }) })
            for (;;) {
              const next = await Promise.race([Effect.runPromise(Queue.take(subscription)).catch(() => undefined), closed])
              if (next === undefined || sse.aborted || sse.closed) break
              if (wanted !== undefined && next.type !== "job" && "stream" in next && next.stream !== wanted) continue
              await sse.writeSSE({ id: String(++id), event: next.type, data: JSON.stringify(next) })
            }
          } finally {
            clearInterval(heartbeat)
            await Effect.runPromise(Scope.close(scope, Exit.void))
          }
        })
      })
  )
