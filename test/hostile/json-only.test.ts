import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { databaseKinds } from "../support/databases.ts"
import { startApi, type ApiHarness } from "../support/http.ts"

/** Issue 16, item 6: a web page can POST text/plain or a form anywhere without asking; only JSON is taken. */
describe.each(databaseKinds)("POST bodies on the %s database", (kind) => {
  let api: ApiHarness
  beforeAll(async () => {
    api = await startApi(kind)
  }, 60_000)
  afterAll(async () => {
    await api?.close()
  })

  const jobCount = () => api.runtime.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`SELECT count(*)::int AS n FROM jobs`)).then((rows) => (rows as Array<{ n: number }>)[0]!.n)

  test("a POST whose body is not declared application/json is a 415 JSON error and starts nothing", async () => {
    const body = JSON.stringify({ symbol: "EURUSD", timeframe: "M1" })
    const before = await jobCount()
    for (const path of ["/api/data/sync", "/api/data/gaps/fill", "/api/data/gaps/detect", "/api/data/verify"]) {
      for (const headers of [{ "Content-Type": "text/plain" }, { "Content-Type": "application/x-www-form-urlencoded" }, { "Content-Type": "multipart/form-data; boundary=x" }, {} as Record<string, string>]) {
        const answer = await api.request(path, { method: "POST", headers, body })
        expect({ path, headers, status: answer.status }).toEqual({ path, headers, status: 415 })
        expect(answer.headers.get("content-type")).toStartWith("application/json")
        expect(await answer.json()).toMatchObject({ error: "unsupported_media_type", field: "body" })
      }
    }
    expect(await jobCount()).toBe(before)
    const json = await api.request("/api/data/sync", { method: "POST", headers: { "Content-Type": "application/json; charset=utf-8" }, body })
    expect(json.status).toBe(202)
  })
})
