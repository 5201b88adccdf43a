import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { databaseKinds } from "../support/databases.ts"
import { post, startApi, type ApiHarness } from "../support/http.ts"

/** Issue 16, item 9: the smaller holes a hostile or careless client found. */
describe.each(databaseKinds)("small hardening on the %s database", (kind) => {
  let api: ApiHarness
  beforeAll(async () => {
    api = await startApi(kind)
  }, 60_000)
  afterAll(async () => {
    await api?.close()
  })

  test("an impossible date (2021-02-30, 2021-04-31T10:00, 24:00) is a 400 naming the field, on every route that takes one", async () => {
    const gets = [
      "/api/data/candles?symbol=EURUSD&timeframe=M1&start=2021-02-30&end=2021-03-05",
      "/api/data/candles?symbol=EURUSD&timeframe=M1&start=2021-01-04&end=2021-04-31T10:00:00Z",
      "/api/data/candles?symbol=EURUSD&timeframe=M1&start=2021-01-04T24:00:00Z&end=2021-01-06",
      "/api/data/quality/EURUSD?from=2021-02-29",
      "/api/data/gaps/EURUSD?to=2021-13-01"
    ]
    for (const path of gets) {
      const response = await api.request(path)
      expect({ path, status: response.status }).toEqual({ path, status: 400 })
      expect(((await response.json()) as any).error).toBe("bad_request")
    }
    const detect = await api.request("/api/data/gaps/detect", post({ symbol: "EURUSD", from: "2021-02-30" }))
    expect(detect.status).toBe(400)
    expect(await detect.json()).toMatchObject({ error: "bad_request", field: "from" })
  })

  test("from after to is a 400 everywhere, /quality included", async () => {
    const paths = [
      "/api/data/quality/EURUSD?from=2021-01-08&to=2021-01-05",
      "/api/data/gaps/EURUSD?from=2021-01-08&to=2021-01-05",
      "/api/data/candles?symbol=EURUSD&timeframe=M1&start=2021-01-08&end=2021-01-05",
      // No `to`: it is now (or the watermark), and a `from` after it is the same mistake.
      "/api/data/quality/EURUSD?from=2099-01-01",
      "/api/data/gaps/EURUSD?from=2099-01-01"
    ]
    for (const path of paths) {
      const response = await api.request(path)
      expect({ path, status: response.status }).toEqual({ path, status: 400 })
    }
    for (const [path, body] of [
      ["/api/data/gaps/detect", { symbol: "EURUSD", from: "2021-01-08", to: "2021-01-05" }],
      ["/api/data/gaps/detect", { symbol: "EURUSD", from: "2099-01-01" }],
      ["/api/data/verify", { symbol: "EURUSD", from: "2021-01-08", to: "2021-01-05" }]
    ] as const) {
      const response = await api.request(path, post(body))
      expect({ path, status: response.status }).toEqual({ path, status: 400 })
    }
  })

  test("the public health answer says the database's kind and flavour, not its user, host, name or directory", async () => {
    const body = (await (await api.request("/api/data/health")).json()) as any
    expect(body.database.kind).toBe(kind === "embedded" ? "embedded" : "server")
    expect(body.database.flavour).toBe(kind === "plain" ? "plain" : "timescale")
    const text = JSON.stringify(body)
    expect(text).not.toContain("postgres@")
    expect(text).not.toContain("127.0.0.1")
    expect(text).not.toContain("5432")
    expect(body.database.location).toBeUndefined()
    if (kind !== "embedded") expect(text).not.toContain(new URL(String(process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres")).hostname)
  })

  test("an incoming X-Request-Id is kept only when it is a short token of safe characters", async () => {
    const idOf = async (sent: string) => (await api.request("/api/data/symbols", { headers: { "X-Request-Id": sent } })).headers.get("x-request-id")
    expect(await idOf("req-42_ok")).toBe("req-42_ok")
    for (const hostile of ["a".repeat(200), "two words", "<script>", "id\u00e9"]) {
      const id = await idOf(hostile)
      expect(id).not.toBe(hostile)
      expect(id).toMatch(/^[0-9a-f-]{36}$/)
    }
  })
})
