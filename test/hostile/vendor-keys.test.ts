import { FetchHttpClient } from "@effect/platform"
import { describe, expect, test } from "bun:test"
import { Chunk, Context, Effect, Either, Layer, Option, Redacted, Stream } from "effect"
import { AppConfig } from "../../src/config.ts"
import { redactSecretFragments } from "../../src/domain/secret.ts"
import { foreignNextUrl, MassiveClient } from "../../src/sources/massive/client.ts"
import { redactSecret } from "../../src/sources/massive/errors.ts"
import { MassiveRateLimits } from "../../src/sources/massive/rate-limiter.ts"
import { redactToken } from "../../src/sources/metaapi/errors.ts"
import { memoryRateBudgetLayer } from "../support/memory-rate-budget.ts"

const apiKey = "ck-live-7Hq2ZpX9vL4mW1"
const monday = Date.UTC(2021, 0, 4)
const bar = { o: 1.2241, h: 1.2244, l: 1.2239, c: 1.2242, v: 40, t: monday }

interface Seen {
  readonly path: string
  readonly authorization: string | null
}

/** A loopback server answering every request with `answer`, remembering what it was sent. */
const loopback = (answer: (url: URL, origin: string) => Response) => {
  const seen: Array<Seen> = []
  const server: ReturnType<typeof Bun.serve> = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: (request): Response => {
      const url = new URL(request.url)
      seen.push({ path: url.pathname + url.search, authorization: request.headers.get("authorization") })
      return answer(url, `http://127.0.0.1:${server.port}`)
    }
  })
  return { seen, baseUrl: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) }
}

const clientAt = (baseUrl: string) =>
  Layer.build(
    MassiveClient.DefaultWithoutDependencies.pipe(
      Layer.provide(AppConfig.make({ massive: { ...AppConfig.fixed().massive, apiKey: Option.some(Redacted.make(apiKey)), baseUrl, plan: "paid", timeoutSeconds: 5 } }))
    )
  ).pipe(Effect.map(Context.get(MassiveClient)))

const run = <A, E>(effect: Effect.Effect<A, E, any>) =>
  Effect.runPromise(
    effect.pipe(Effect.scoped, Effect.provide(Layer.mergeAll(FetchHttpClient.layer, MassiveRateLimits.Default.pipe(Layer.provide(memoryRateBudgetLayer))))) as Effect.Effect<A, E, never>
  )

const pages = (baseUrl: string) =>
  Effect.flatMap(clientAt(baseUrl), (client) =>
    Effect.either(Stream.runCollect(client.pages({ symbol: "EURUSD", timeframe: "M1", from: monday, to: monday + 3_600_000 })).pipe(Effect.map(Chunk.toReadonlyArray)))
  )

/** Issue 16, item 5: the key never follows a next_url off the host that was asked. */
describe("next_url stays on the vendor's host", () => {
  test("a next_url naming another host is a permanent error naming that host; the other host never sees the key", async () => {
    const elsewhere = loopback(() => Response.json({ status: "OK", results: [], resultsCount: 0 }))
    const vendor = loopback(() =>
      Response.json({ ticker: "C:EURUSD", status: "OK", resultsCount: 1, results: [bar], request_id: "r1", next_url: `${elsewhere.baseUrl}/v2/aggs/next?cursor=abc` })
    )
    try {
      const outcome = await run(pages(vendor.baseUrl))
      expect(Either.isLeft(outcome)).toBe(true)
      const error = Either.isLeft(outcome) ? outcome.left : null
      expect(error?._tag).toBe("BadRequest")
      expect(error?.message).toContain(new URL(elsewhere.baseUrl).host)
      // Asked once (a permanent error is not retried), and the other host was never asked at all.
      expect(vendor.seen.length).toBe(1)
      expect(vendor.seen[0]!.authorization).toBe(`Bearer ${apiKey}`)
      expect(elsewhere.seen).toEqual([])
    } finally {
      await vendor.stop()
      await elsewhere.stop()
    }
  })

  test("a next_url on the same host and scheme is followed; another scheme or host is refused", async () => {
    expect(foreignNextUrl("https://api.massive.com/v2/aggs/x?cursor=1", "https://api.massive.com")).toBeNull()
    expect(foreignNextUrl("http://api.massive.com/v2/aggs/x?cursor=1", "https://api.massive.com")).toContain("http")
    expect(foreignNextUrl("https://api.massive.com.evil.example/v2", "https://api.massive.com")).toContain("api.massive.com.evil.example")
    expect(foreignNextUrl("https://api.massive.com:8443/v2", "https://api.massive.com")).toContain("api.massive.com:8443")
    expect(foreignNextUrl("not a url", "https://api.massive.com")).not.toBeNull()
    let served = 0
    const vendor = loopback((url, origin) => {
      served += 1
      return Response.json(
        url.searchParams.has("cursor")
          ? { status: "OK", resultsCount: 1, results: [{ ...bar, t: monday + 60_000 }], request_id: "r2" }
          : { status: "OK", resultsCount: 1, results: [bar], request_id: "r1", next_url: `${origin}/v2/aggs/more?cursor=abc` }
      )
    })
    try {
      const outcome = await run(pages(vendor.baseUrl))
      expect(Either.isRight(outcome)).toBe(true)
      expect(served).toBe(2)
      expect(vendor.seen.every((s) => s.authorization === `Bearer ${apiKey}`)).toBe(true)
    } finally {
      await vendor.stop()
    }
  })
})

/** Issue 16, item 9: a vendor echoing part of a key leaks it as surely as echoing all of it. */
describe("secret fragments are redacted", () => {
  test("any run of 8+ characters of a secret is redacted; shorter overlaps are left alone", () => {
    expect(redactSecretFragments(`key ${apiKey.slice(0, 12)} is invalid`, apiKey)).toBe("key [redacted] is invalid")
    expect(redactSecretFragments(`suffix …${apiKey.slice(-9)}`, apiKey)).toBe("suffix …[redacted]")
    expect(redactSecretFragments(`middle ${apiKey.slice(5, 15)}!`, apiKey)).toBe("middle [redacted]!")
    expect(redactSecretFragments(`whole ${apiKey}`, apiKey)).toBe("whole [redacted]")
    expect(redactSecretFragments(`ck-live- is our prefix`, apiKey)).toBe("[redacted] is our prefix")
    expect(redactSecretFragments(`only ${apiKey.slice(0, 7)}`, apiKey)).toBe(`only ${apiKey.slice(0, 7)}`)
    expect(redactSecret(`API key ${apiKey.slice(0, 12)}… not found`, apiKey)).not.toContain(apiKey.slice(0, 8))
    expect(redactToken(`token ${"meta-token-abcdef123".slice(0, 10)} expired`, "meta-token-abcdef123")).toBe("token [redacted] expired")
  })

  test("the vendor echoing a 12-character prefix of the key: in a refusal and in a page's request_id, nothing of it is kept", async () => {
    const prefix = apiKey.slice(0, 12)
    let asked = 0
    const vendor = loopback(() => {
      asked += 1
      return asked === 1
        ? Response.json({ status: "OK", resultsCount: 1, results: [bar], request_id: `req-${prefix}` })
        : Response.json({ status: "ERROR", request_id: `req-${prefix}`, error: `Unknown API Key ${prefix}...` }, { status: 401 })
    })
    try {
      const page = await run(Effect.flatMap(clientAt(vendor.baseUrl), (client) => client.fetchPage({ symbol: "EURUSD", timeframe: "M1", from: monday, to: monday + 60_000 })))
      expect(page.requestId).toBe("req-[redacted]")
      const refused = await run(Effect.flip(Effect.flatMap(clientAt(vendor.baseUrl), (client) => client.fetchPage({ symbol: "EURUSD", timeframe: "M1", from: monday, to: monday + 60_000 }))))
      expect(refused._tag).toBe("Unauthorized")
      const shown = JSON.stringify(refused) + refused.message
      for (let i = 0; i + 8 <= apiKey.length; i++) expect(shown).not.toContain(apiKey.slice(i, i + 8))
    } finally {
      await vendor.stop()
    }
  })
})
