/**
 * A small client written as a user would write it: against the types openapi-typescript generates from the
 * served /openapi.json (test/contract.test.ts writes them to ./generated/schema.ts), with openapi-fetch, and
 * without a cast. The test type-checks this file with tsc, then runs it against a seeded service.
 */
import createClient from "openapi-fetch"
import type { components, paths } from "./generated/schema.ts"

export type CandlesPage = components["schemas"]["CandlesPage"]
export type Candle = components["schemas"]["Candle"]
export type Job = components["schemas"]["Job"]
export type Timeframe = CandlesPage["timeframe"]

export const makeClient = (fetch: (request: Request) => Promise<Response>, baseUrl = "http://candlekeep.test") => ({
  json: createClient<paths, "application/json">({ baseUrl, fetch }),
  csv: createClient<paths, "text/csv">({ baseUrl, fetch })
})
export type Client = ReturnType<typeof makeClient>

/** Every error answer has the same shape: a code, the field at fault, a message. */
const failed = (what: string, error: components["schemas"]["Error"] | components["schemas"]["Ready"]) =>
  new Error(`${what}: ${error.error ?? "error"}: ${error.message ?? ""}`)

/** The newest bars, naming only what is required: limit, fill and format take their defaults. */
export const latestBars = async (client: Client, symbol: string, timeframe: Timeframe): Promise<CandlesPage> => {
  const { data, error } = await client.json.GET("/api/data/candles", { params: { query: { symbol, timeframe } } })
  if (error) throw failed("candles", error)
  return data
}

/** One page with every optional parameter given. */
export const barsBetween = async (
  client: Client,
  query: { readonly symbol: string; readonly timeframe: Timeframe; readonly start: string; readonly end: string; readonly limit: number; readonly fill: "none" | "null" | "prev" }
): Promise<CandlesPage> => {
  const { data, error } = await client.json.GET("/api/data/candles", { params: { query: { ...query, format: "json", boundary: "utc" } } })
  if (error) throw failed("candles", error)
  return data
}

/** The same page as CSV text. */
export const barsCsv = async (client: Client, symbol: string, timeframe: Timeframe, start: string, end: string): Promise<string> => {
  const { data, error, response } = await client.csv.GET("/api/data/candles", { params: { query: { symbol, timeframe, start, end, format: "csv" } }, parseAs: "text" })
  // This client reads only text/csv; an error answer (JSON) shows as its status.
  if (error !== undefined) throw new Error(`candles as CSV: ${response.status}`)
  return data
}

/** A range of any length, page by page: each page's `next` is the following page's `start`. */
export const walk = async (client: Client, symbol: string, timeframe: Timeframe, start: string, end: string, limit: number) => {
  const candles: Array<Candle> = []
  let pages = 0
  let cursor: string | null = start
  while (cursor !== null) {
    const page: CandlesPage = await barsBetween(client, { symbol, timeframe, start: cursor, end, limit, fill: "none" })
    candles.push(...page.candles)
    pages += 1
    cursor = page.next === null ? null : String(page.next)
  }
  return { pages, candles }
}

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Asks for a sync, then follows its job until it ends; gives up at the deadline. */
export const syncAndWait = async (client: Client, symbol: string, deadlineMillis: number): Promise<Job> => {
  const accepted = await client.json.POST("/api/data/sync", { body: { symbol } })
  if (accepted.error) throw failed("sync", accepted.error)
  const id = accepted.data.job.id
  const deadline = Date.now() + deadlineMillis
  for (;;) {
    const { data, error } = await client.json.GET("/api/data/jobs/{id}", { params: { path: { id } } })
    if (error) throw failed("job", error)
    if (data.status === "succeeded" || data.status === "failed") return data
    if (Date.now() > deadline) throw new Error(`job ${id} still ${data.status} after ${deadlineMillis} ms`)
    await pause(25)
  }
}

export const status = async (client: Client) => {
  const { data, error } = await client.json.GET("/api/data/status")
  if (error) throw failed("status", error)
  return data
}

/** Records the gaps of a range, then lists the stored ones. */
export const gaps = async (client: Client, symbol: string, from: string, to: string) => {
  const detected = await client.json.POST("/api/data/gaps/detect", { body: { symbol, from, to } })
  if (detected.error) throw failed("detect", detected.error)
  const { data, error } = await client.json.GET("/api/data/gaps/{symbol}", { params: { path: { symbol }, query: { timeframe: "M1", status: "detected" } } })
  if (error) throw failed("gaps", error)
  return { detected: detected.data, stored: data }
}

export const quality = async (client: Client, symbol: string, from: string, to: string) => {
  const { data, error } = await client.json.GET("/api/data/quality/{symbol}", { params: { path: { symbol }, query: { from, to } } })
  if (error) throw failed("quality", error)
  return data
}

/** What a client learns of a bad request: the error body, typed. */
export const badCandles = async (client: Client, symbol: string) => {
  const { data, error, response } = await client.json.GET("/api/data/candles", { params: { query: { symbol, timeframe: "M1", limit: 0 } } })
  return { data, error, status: response.status }
}
