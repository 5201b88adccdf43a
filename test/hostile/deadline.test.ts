import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { databaseKinds } from "../support/databases.ts"
import { brokerAccount, startApi, type ApiHarness } from "../support/http.ts"

const deadlineSeconds = 4

/** Issue 16, item 3: an upstream that keeps failing gives a 502/504 JSON answer with its reason, within the request's deadline. */
describe.each(databaseKinds)("request deadlines on the %s database", (kind) => {
  let api: ApiHarness
  let fault: "500" | "slow" = "500"
  beforeAll(async () => {
    api = await startApi(kind, { broker: true, brokerFaults: () => fault, http: { requestTimeoutSeconds: deadlineSeconds } })
  }, 60_000)
  afterAll(async () => {
    await api?.close()
  })

  test(`MetaApi answering 500 to everything: /broker/compare is a 502 with MetaApi's reason within REQUEST_TIMEOUT_SECONDS (${deadlineSeconds} s)`, async () => {
    const started = performance.now()
    const answer = await api.request(`/api/data/broker/compare?symbol=EURUSD&account=${brokerAccount}&end=2021-01-05T12:00:00Z&window_minutes=60`)
    const seconds = (performance.now() - started) / 1000
    expect(answer.status).toBe(502)
    const body = (await answer.json()) as { error: string; message: string }
    expect(body.error).toBe("broker_failed")
    expect(body.message).toContain("Something went wrong")
    expect(body.message).toContain("HTTP 500")
    expect(seconds).toBeLessThan(deadlineSeconds)
    // It did retry, as far as the deadline allowed (1 s, 2 s …), and no further.
    const asked = api.broker!.requests.length
    expect(asked).toBeGreaterThanOrEqual(2)
    expect(asked).toBeLessThanOrEqual(3)
  }, 30_000)

  test("MetaApi not answering at all: a 504 JSON answer at the deadline, saying what was asked, not an empty reply", async () => {
    fault = "slow"
    const started = performance.now()
    const answer = await api.request(`/api/data/broker/compare?symbol=EURUSD&account=${brokerAccount}&end=2021-01-05T12:00:00Z&window_minutes=60`)
    const seconds = (performance.now() - started) / 1000
    expect(answer.status).toBe(504)
    const body = (await answer.json()) as { error: string; message: string }
    expect(body.error).toBe("broker_failed")
    expect(body.message).toContain("timed out")
    expect(seconds).toBeGreaterThanOrEqual(deadlineSeconds - 0.5)
    expect(seconds).toBeLessThan(deadlineSeconds + 1)
  }, 30_000)
})
