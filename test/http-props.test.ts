import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { Validator } from "@seriousme/openapi-schema-validator"
import { Option, Redacted, Schema } from "effect"
import fc from "fast-check"
import { maxBodyBytes } from "../src/http/app.ts"
import { Instant } from "../src/http/params.ts"
import { databaseKinds } from "./support/databases.ts"
import { iso, post, seedFrom, seedTo, startApi, type ApiHarness } from "./support/http.ts"

const minute = 60_000

/** One operation of the OpenAPI document, as the fuzzer and the checks see it. */
interface Operation {
  readonly method: "get" | "post"
  /** OpenAPI syntax: `/api/data/gaps/{symbol}`. */
  readonly path: string
  readonly pathParams: ReadonlyArray<string>
  readonly queryParams: ReadonlyArray<string>
  readonly isPublic: boolean
}

interface Call {
  readonly method: "get" | "post"
  readonly url: string
  readonly init: RequestInit
}

/** The endpoints issue #7 asks for; the document may list more (broker routes, later). */
const issueEndpoints = [
  "get /api/data/health",
  "get /api/data/ready",
  "get /api/data/symbols",
  "get /api/data/candles",
  "post /api/data/sync",
  "get /api/data/jobs/{id}",
  "get /api/data/status",
  "get /api/data/gaps/{symbol}",
  "post /api/data/gaps/detect",
  "post /api/data/gaps/fill",
  "get /api/data/quality/{symbol}",
  "get /api/data/events",
  "get /metrics"
]

const operationsOf = (document: any): ReadonlyArray<Operation> =>
  Object.entries(document.paths as Record<string, Record<string, any>>).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => {
      const parameters = (operation.parameters ?? []) as ReadonlyArray<{ name: string; in: string }>
      return {
        method: method as "get" | "post",
        path,
        pathParams: parameters.filter((p) => p.in === "path").map((p) => p.name),
        queryParams: parameters.filter((p) => p.in === "query").map((p) => p.name),
        isPublic: Array.isArray(operation.security) && operation.security.length === 0
      }
    })
  )

/** Percent-encodes anything, lone surrogates included (they become U+FFFD, as a browser would send them). */
const encode = (text: string) => encodeURIComponent(text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD"))

const fillPath = (path: string, values: Readonly<Record<string, string>>) => path.replace(/\{(\w+)\}/g, (_, name: string) => values[name] ?? "x")

const isEventStream = (response: Response) => (response.headers.get("content-type") ?? "").startsWith("text/event-stream")

/** Reads the answer once: the text, or nothing for an event stream (which never ends), whose body is cancelled. */
const readAnswer = async (response: Response) => {
  if (isEventStream(response)) {
    await response.body?.cancel()
    return ""
  }
  return response.text()
}

// ---------------------------------------------------------------- generators

const validInstantText = (ms: number) => fc.constantFrom(String(ms), iso(ms), iso(ms).slice(0, 10), iso(ms).replace(/\.\d{3}Z$/, "Z"), iso(ms).replace(/\.\d{3}Z$/, "+00:00"))
const weekMs = fc.integer({ min: seedFrom, max: seedTo })
const weekInstant = weekMs.chain(validInstantText)

/** `2021-13-45T99:99Z` and kin: the shape of a date, the content of none. */
const isoJunk = fc
  .tuple(
    fc.integer({ min: 0, max: 99_999 }),
    fc.integer({ min: 0, max: 99 }),
    fc.integer({ min: 0, max: 99 }),
    fc.integer({ min: 0, max: 99 }),
    fc.integer({ min: 0, max: 99 }),
    fc.constantFrom("Z", "", "+25:00", "-00:00", ":99.9999999999Z", "z", "+0100")
  )
  .map(([y, mo, d, h, mi, zone]) => `${String(y).padStart(4, "0")}-${String(mo).padStart(2, "0")}-${String(d).padStart(2, "0")}T${String(h).padStart(2, "0")}:${String(mi).padStart(2, "0")}${zone}`)

const junkText = fc.oneof(
  fc.string(),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.constantFrom(
    "",
    " ",
    "-1",
    "0",
    "-0",
    "1.5",
    "1e309",
    "NaN",
    "Infinity",
    "99999999999999999999",
    "9007199254740993",
    "8640000000000000",
    "8640000000000001",
    "-8640000000000000",
    "-8640000000000001",
    "2021-13-45T99:99Z",
    "2021-02-30",
    "0000-00-00",
    "+275760-09-13T00:00:00Z",
    "null",
    "true",
    "[]",
    "{}",
    "%",
    "%zz",
    "\u0000",
    "EURUSD\u0000",
    "ＥＵＲＵＳＤ",
    "'; DROP TABLE candles; --",
    "x".repeat(5_000)
  ),
  fc.bigInt().map(String),
  fc.double().map(String),
  fc.integer().map(String),
  isoJunk
)

/** Instants that decode but sit at the edges of time: the epoch, before it, the last millisecond a Date can hold. */
const extremeInstant = fc.oneof(
  fc.constantFrom("0", "-1", "1", "8640000000000000", "-8640000000000000", "1970-01-01", "0000-01-01", "0099-12-31", "0001-01-01T00:00Z", "2099-12-31T23:59:59.999Z", "2100-01-01", "9999-12-31T23:59:59.999999999Z", "2021-01-04T00:00:00+14:00"),
  fc.integer({ min: -8_640_000_000_000_000, max: 8_640_000_000_000_000 }).map(String)
)

/** Values that decode for a parameter or body field of that name; junk for any other. */
const rightFor = (key: string): fc.Arbitrary<string> => {
  switch (key) {
    case "symbol":
      return fc.constantFrom("EURUSD", "eurusd", " EURUSD ", "XAUUSD", "GBPJPY")
    case "timeframe":
      return fc.constantFrom("M1", "m1", "M5", "M15", "M30", "H1", "H4", "d1", "W1")
    case "start":
    case "end":
    case "from":
    case "to":
      return fc.oneof(weekInstant, extremeInstant)
    case "limit":
      return fc.oneof(fc.integer({ min: 1, max: 50_000 }), fc.integer({ min: -5, max: 60_000 })).map(String)
    case "fill":
      return fc.constantFrom("none", "null", "prev", "NONE")
    case "format":
      return fc.constantFrom("json", "csv", "xml")
    case "boundary":
      return fc.constantFrom("utc", "new-york", "UTC")
    case "status":
      return fc.constantFrom("detected", "detected,filled", " filled , unfillable", "detected,", "partially_filled")
    case "stream":
      return fc.constantFrom("EURUSD:M1", "eurusd:m1", "XAUUSD:H1", ":")
    case "id":
      return fc.uuid().map(String)
    default:
      return junkText
  }
}

const valueFor = (key: string) => fc.oneof({ arbitrary: rightFor(key), weight: 3 }, { arbitrary: junkText, weight: 2 })

const queryKey = (known: ReadonlyArray<string>) =>
  fc.oneof(
    { arbitrary: known.length > 0 ? fc.constantFrom(...known) : fc.string(), weight: 6 },
    { arbitrary: fc.string(), weight: 1 },
    { arbitrary: fc.constantFrom("__proto__", "constructor", "toString", "hasOwnProperty", "LIMIT", "limit[]"), weight: 1 }
  )

/** Pairs, keys repeated at will, percent-encoded; sometimes raw characters the parser must cope with. */
const queryString = (known: ReadonlyArray<string>) =>
  fc.oneof(
    {
      arbitrary: fc
        .array(queryKey(known).chain((key) => valueFor(key).map((value) => [key, value] as const)), { maxLength: 8 })
        .map((pairs) => pairs.map(([k, v]) => `${encode(k)}=${encode(v)}`).join("&")),
      weight: 5
    },
    { arbitrary: fc.string({ unit: fc.constantFrom(..."=&%+?#;[] aZ09-:".split("")), maxLength: 30 }), weight: 1 }
  )

/** A path segment, percent-encoded, or raw bytes a router could trip on. */
const pathValue = (name: string) =>
  fc.oneof(
    { arbitrary: valueFor(name).map(encode), weight: 5 },
    { arbitrary: fc.constantFrom("%", "%zz", "%E0%A4%A", "..", ".", "%2F", "a%2Fb", "%00", "EURUSD%20"), weight: 1 }
  )

/** A body field: what decodes for it (numbers too, for from/to), any JSON value, or junk. */
const bodyValue = (key: string) =>
  fc.oneof(
    { arbitrary: rightFor(key), weight: 3 },
    { arbitrary: key === "full_sync" ? fc.boolean() : key === "from" || key === "to" ? fc.oneof(weekMs, fc.double(), fc.constantFrom(1e308, -1e308, 8.64e15, 8.64e15 + 1, -8.64e15, 1.5)) : fc.jsonValue(), weight: 2 },
    { arbitrary: fc.jsonValue(), weight: 1 }
  )

const bodyText = fc.oneof(
  { arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)), weight: 2 },
  {
    arbitrary: fc
      .tuple(
        fc.record({ symbol: bodyValue("symbol"), timeframe: bodyValue("timeframe"), full_sync: bodyValue("full_sync"), from: bodyValue("from"), to: bodyValue("to") }, { requiredKeys: [] }),
        fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 3 })
      )
      .map(([known, junk]) => JSON.stringify({ ...junk, ...known })),
    weight: 4
  },
  { arbitrary: fc.string(), weight: 1 },
  { arbitrary: fc.jsonValue().map((v) => JSON.stringify(v).slice(0, -1)), weight: 1 },
  { arbitrary: fc.constantFrom("", "   ", "\n", "{", "}", "null", "[]", "\u0000", "{\"symbol\":\"EURUSD\",}"), weight: 1 }
)

const contentType = fc.constantFrom<string | undefined>("application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", undefined)

const arbitraryCall = (operation: Operation): fc.Arbitrary<Call> =>
  fc
    .record({
      path: fc.tuple(...operation.pathParams.map(pathValue)),
      query: fc.option(queryString(operation.queryParams), { nil: undefined }),
      body: bodyText,
      type: contentType
    })
    .map(({ path, query, body, type }) => ({
      method: operation.method,
      url: `${fillPath(operation.path, Object.fromEntries(operation.pathParams.map((name, i) => [name, path[i] ?? ""])))}${query === undefined ? "" : `?${query}`}`,
      init: operation.method === "post" ? { method: "POST", body, headers: type === undefined ? {} : { "Content-Type": type } } : { method: "GET" }
    }))

/** Paths no route serves: the router must answer 404 JSON, not fall over. */
const strayCall: fc.Arbitrary<Call> = fc
  .record({ method: fc.constantFrom<"get" | "post">("get", "post"), tail: fc.array(pathValue(""), { minLength: 1, maxLength: 3 }), body: bodyText })
  .map(({ method, tail, body }) => ({ method, url: `/api/data/${tail.join("/")}/x`, init: method === "post" ? { method: "POST", body } : { method: "GET" } }))

/** Unique known keys with values that decode, plus junk keys the routes ignore. */
const withExtras = (pairs: ReadonlyArray<readonly [string, string | undefined]>, extras: ReadonlyArray<readonly [string, string]>) =>
  [...pairs.filter((p): p is readonly [string, string] => p[1] !== undefined), ...extras].map(([k, v]) => `${encode(k)}=${encode(v)}`).join("&")

const extraPairs = fc.array(fc.tuple(fc.constantFrom("x", "page", "_", "debug"), junkText), { maxLength: 2 })
const opt = <A>(arbitrary: fc.Arbitrary<A>) => fc.option(arbitrary, { nil: undefined })

/** Input that is right, so the 200 and 202 paths run: the seeded week, its stream, in random order and sizes. */
const validCalls = (jobIds: ReadonlyArray<string>): Record<string, fc.Arbitrary<Call>> => {
  const range = fc.tuple(weekMs, weekMs).chain(([a, b]) => fc.tuple(validInstantText(a), validInstantText(b)))
  const get = (url: string): Call => ({ method: "get", url, init: { method: "GET" } })
  const syncBody = fc.record({ symbol: fc.constantFrom("EURUSD", "eurusd"), timeframe: opt(fc.constantFrom("M1", "m1")), full_sync: opt(fc.boolean()) }, { requiredKeys: ["symbol"] })
  const gapBody = fc
    .record({ symbol: fc.constantFrom("EURUSD", "eurusd"), timeframe: opt(fc.constantFrom("M1", "m1")), range: opt(fc.tuple(weekMs, weekMs)), asText: fc.boolean() })
    .map(({ symbol, timeframe, range, asText }) => ({
      symbol,
      ...(timeframe === undefined ? {} : { timeframe }),
      ...(range === undefined ? {} : asText ? { from: iso(range[0]), to: iso(range[1]) } : { from: range[0], to: range[1] })
    }))
  return {
    "get /api/data/candles": fc
      .record({
        symbol: fc.constantFrom("EURUSD", "eurusd"),
        timeframe: fc.constantFrom("M1", "m1", "M5", "M15", "M30", "H1", "h4", "D1"),
        range: range,
        start: fc.boolean(),
        end: fc.boolean(),
        limit: opt(fc.oneof(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 50_000 }))),
        fill: opt(fc.constantFrom("none", "null", "prev")),
        format: opt(fc.constantFrom("json", "csv")),
        boundary: opt(fc.constantFrom("utc", "new-york")),
        extras: extraPairs
      })
      .map((q) =>
        get(
          `/api/data/candles?${withExtras(
            [
              ["symbol", q.symbol],
              ["timeframe", q.timeframe],
              ["start", q.start ? q.range[0] : undefined],
              ["end", q.end ? q.range[1] : undefined],
              ["limit", q.limit === undefined ? undefined : String(q.limit)],
              ["fill", q.fill],
              ["format", q.format],
              ["boundary", q.boundary]
            ],
            q.extras
          )}`
        )
      ),
    "get /api/data/gaps/{symbol}": fc
      .record({ timeframe: opt(fc.constantFrom("M1", "H1")), status: opt(fc.constantFrom("detected", "detected, filled", "unfillable,partially_filled")), range: opt(range), extras: extraPairs })
      .map((q) => get(`/api/data/gaps/EURUSD?${withExtras([["timeframe", q.timeframe], ["status", q.status], ["from", q.range?.[0]], ["to", q.range?.[1]]], q.extras)}`)),
    "get /api/data/quality/{symbol}": fc
      .record({ timeframe: opt(fc.constantFrom("M1", "m1")), range: opt(range), extras: extraPairs })
      .map((q) => get(`/api/data/quality/eurusd?${withExtras([["timeframe", q.timeframe], ["from", q.range?.[0]], ["to", q.range?.[1]]], q.extras)}`)),
    "get /api/data/events": opt(fc.constantFrom("EURUSD:M1", "eurusd:m1")).map((stream) => get(`/api/data/events${stream === undefined ? "" : `?stream=${stream}`}`)),
    "get /api/data/jobs/{id}": fc.nat().map((i) => get(`/api/data/jobs/${jobIds.length === 0 ? crypto.randomUUID() : jobIds[i % jobIds.length]}`)),
    "post /api/data/sync": syncBody.map((body) => ({ method: "post", url: "/api/data/sync", init: post(body) })),
    "post /api/data/gaps/detect": gapBody.map((body) => ({ method: "post", url: "/api/data/gaps/detect", init: post(body) })),
    "post /api/data/gaps/fill": gapBody.map((body) => ({ method: "post", url: "/api/data/gaps/fill", init: post(body) }))
  }
}

// ---------------------------------------------------------------- what every answer must be

const decodeInstant = Schema.decodeUnknownSync(Instant)

/** The first value of a key, as Hono reads a query string. */
const firstParam = (url: string, key: string) => new URL(url, "http://localhost").searchParams.get(key) ?? undefined

/** A 200 from /api/data/candles: JSON whose count is its length and within the limit, or CSV under its header; bars in range, oldest first. */
const expectWellFormedCandles = (call: Call, response: Response, text: string) => {
  const limitText = firstParam(call.url, "limit")
  const limit = limitText === undefined ? 1000 : Number(limitText.trim())
  const startText = firstParam(call.url, "start")
  const endText = firstParam(call.url, "end")
  const start = startText === undefined ? Number.NEGATIVE_INFINITY : decodeInstant(startText)
  const end = endText === undefined ? Date.now() + 1 : decodeInstant(endText)
  let stamps: Array<number>
  if ((response.headers.get("content-type") ?? "").startsWith("text/csv")) {
    expect(text).toStartWith("ts,open,high,low,close,volume")
    const lines = text.trimEnd().split("\n")
    const width = lines[0]!.split(",").length
    expect(lines.slice(1).every((line) => line.split(",").length === width)).toBe(true)
    expect(lines.length - 1).toBeLessThanOrEqual(limit)
    stamps = lines.slice(1).map((line) => Date.parse(line.split(",")[0]!))
  } else {
    const body = JSON.parse(text)
    expect(Array.isArray(body.candles)).toBe(true)
    expect(body.count).toBe(body.candles.length)
    expect(body.count).toBeLessThanOrEqual(limit)
    expect(body.next === null || (Number.isInteger(body.next) && body.next < end)).toBe(true)
    stamps = body.candles.map((c: { ts: string }) => Date.parse(c.ts))
  }
  expect(stamps.every((ts, i) => Number.isFinite(ts) && ts >= start && ts < end && (i === 0 || ts > stamps[i - 1]!))).toBe(true)
}

/** The one 5xx that is not a failure: a feature this instance was configured without (broker routes with no MetaApi token). */
const featureOff = new Set<unknown>(["broker_off", "unavailable"])

const errorOf = (text: string): unknown => {
  try {
    return JSON.parse(text)?.error
  } catch {
    return undefined
  }
}

/**
 * The contract for any input: never a 5xx (but a feature switched off); a 4xx is JSON with an `error` string; a 200 of the candles route is
 * well-formed; a 202 names its job. Returns the job id of a 202, if any.
 */
const expectSound = async (call: Call, response: Response): Promise<string | undefined> => {
  const text = await readAnswer(response)
  const what = `${call.method.toUpperCase()} ${call.url.slice(0, 300)} → ${response.status} ${text.slice(0, 300)}`
  const type = response.headers.get("content-type") ?? ""
  if (response.status >= 500 && !(response.status === 503 && featureOff.has(errorOf(text)))) throw new Error(`a 5xx: ${what}`)
  if (response.status >= 400) {
    if (!type.startsWith("application/json") || typeof errorOf(text) !== "string") throw new Error(`a 4xx that is not JSON with an error string: ${what}`)
    return undefined
  }
  if (type.startsWith("application/json")) expect(() => JSON.parse(text)).not.toThrow()
  const route = new URL(call.url, "http://localhost").pathname
  if (response.status === 200 && route === "/api/data/candles") expectWellFormedCandles(call, response, text)
  if (response.status === 202) {
    const id = JSON.parse(text)?.job?.id
    if (typeof id !== "string") throw new Error(`a 202 without job.id: ${what}`)
    return id
  }
  if (response.status === 200 && route.startsWith("/api/data/jobs/")) expect(JSON.parse(text).id).toBe(decodeURIComponent(route.slice("/api/data/jobs/".length)))
  return undefined
}

describe.each(databaseKinds)("the HTTP API under arbitrary input, on the %s database", (kind) => {
  let api: ApiHarness
  let operations: ReadonlyArray<Operation>
  const jobIds: Array<string> = []

  beforeAll(async () => {
    api = await startApi(kind)
    await api.markReady()
    operations = operationsOf(await (await api.request("/openapi.json")).json())
  }, 60_000)
  afterAll(async () => {
    await api?.close()
  })

  /** Sends one call and holds its answer to the contract; remembers the jobs it started, for the job route. */
  const send = async (call: Call) => {
    const response = await api.request(call.url, call.init)
    const id = await expectSound(call, response)
    if (id !== undefined) jobIds.push(id)
    return response.status
  }

  test("arbitrary query strings, path parameters and bodies at every documented route: never a 5xx, every 4xx is JSON with an error", async () => {
    const calls = fc.oneof(...operations.map((operation) => ({ arbitrary: arbitraryCall(operation), weight: 3 })), { arbitrary: strayCall, weight: 1 })
    await fc.assert(
      fc.asyncProperty(calls, async (call) => {
        await send(call)
      }),
      { numRuns: 1000 }
    )
  }, 60_000)

  test("valid input with random limits, fills, formats and ranges: a 200 is well-formed, a 202 names its job", async () => {
    const valid = validCalls(jobIds)
    expect(operations.map((o) => `${o.method} ${o.path}`)).toEqual(expect.arrayContaining(Object.keys(valid)))
    const succeeded = new Set<string>()
    const calls = fc.oneof(...Object.entries(valid).map(([endpoint, call]) => call.map((c) => ({ endpoint, call: c }))))
    await fc.assert(
      fc.asyncProperty(calls, async ({ endpoint, call }) => {
        if ((await send(call)) < 300) succeeded.add(endpoint)
      }),
      { numRuns: 400 }
    )
    // The generators are meant to reach every success path; one never reached would leave its checks untried.
    expect([...succeeded].sort()).toEqual(Object.keys(valid).sort())
  }, 60_000)
})

/** A valid value for each parameter the issue's routes take, so one bad parameter at a time can be blamed. */
const validParam: Readonly<Record<string, string>> = {
  symbol: "EURUSD",
  timeframe: "M1",
  start: "2021-01-05",
  end: "2021-01-06",
  from: "2021-01-05",
  to: "2021-01-06",
  limit: "10",
  fill: "none",
  format: "json",
  boundary: "utc",
  status: "detected",
  stream: "EURUSD:M1",
  id: "00000000-0000-4000-8000-000000000000"
}

/** Fails every parameter type here: names (letters, digits, `._:-`), instants, whole numbers, literals, UUIDs. */
const invalidParam = "!?"

const documentedGet = (operations: ReadonlyArray<Operation>, path: string) => operations.find((o) => o.method === "get" && o.path === path)

/** `n` bytes of JSON that decode as a body with an unknown symbol (so nothing is started), padded with an ignored field. */
const paddedBody = (bytes: number) => {
  const shell = JSON.stringify({ symbol: "NOSUCH", pad: "" })
  return JSON.stringify({ symbol: "NOSUCH", pad: "x".repeat(bytes - shell.length) })
}

describe.each(databaseKinds)("the HTTP API's description and edges, on the %s database", (kind) => {
  let api: ApiHarness
  let document: any
  let operations: ReadonlyArray<Operation>

  beforeAll(async () => {
    api = await startApi(kind)
    await api.markReady()
    document = await (await api.request("/openapi.json")).json()
    operations = operationsOf(document)
  }, 60_000)
  afterAll(async () => {
    await api?.close()
  })

  test("the OpenAPI document validates as OpenAPI 3.1", async () => {
    expect(document.openapi).toStartWith("3.1")
    const validator = new Validator()
    const result = await validator.validate(structuredClone(document))
    expect(result.errors ?? []).toEqual([])
    expect(result.valid).toBe(true)
    expect(validator.version).toStartWith("3.1")
  })

  test("the document lists every endpoint of the issue, and every path it lists is served", async () => {
    expect(operations.map((o) => `${o.method} ${o.path}`)).toEqual(expect.arrayContaining(issueEndpoints))
    for (const operation of operations) {
      const url = fillPath(operation.path, validParam)
      const response = await api.request(url, operation.method === "post" ? post({}) : { method: "GET" })
      const text = await readAnswer(response)
      const unrouted = response.status === 404 && text.includes('"no route')
      expect({ operation: `${operation.method} ${url}`, unrouted }).toEqual({ operation: `${operation.method} ${url}`, unrouted: false })
    }
  })

  test("every documented parameter of the issue's routes is decoded: a bad value for it alone is a 400 naming it", async () => {
    const candles = documentedGet(operations, "/api/data/candles")!
    expect([...candles.queryParams].sort()).toEqual(["boundary", "end", "fill", "format", "limit", "start", "symbol", "timeframe"])
    const checked: Array<string> = []
    for (const operation of operations.filter((o) => o.method === "get" && issueEndpoints.includes(`get ${o.path}`))) {
      const names = [...operation.pathParams.map((name) => ({ name, in: "path" as const })), ...operation.queryParams.map((name) => ({ name, in: "query" as const }))]
      for (const parameter of names) {
        const value = (name: string, where: "path" | "query") => (name === parameter.name && where === parameter.in ? invalidParam : (validParam[name] ?? "x"))
        const path = operation.path.replace(/\{(\w+)\}/g, (_, name: string) => encode(value(name, "path")))
        const query = operation.queryParams.map((name) => `${name}=${encode(value(name, "query"))}`).join("&")
        const url = `${path}${query === "" ? "" : `?${query}`}`
        const response = await api.request(url)
        const body = JSON.parse(await readAnswer(response))
        expect({ url, status: response.status, field: body.field }).toEqual({ url, status: 400, field: parameter.name })
        checked.push(`${operation.path} ${parameter.name}`)
      }
    }
    expect(checked).toEqual(expect.arrayContaining(["/api/data/candles limit", "/api/data/gaps/{symbol} symbol", "/api/data/jobs/{id} id", "/api/data/events stream"]))
  })

  test("a POST body over 64 KiB is a 413 with a JSON error, whether or not it declares its length; one at the limit is read", async () => {
    expect(maxBodyBytes).toBe(64 * 1024)
    for (const operation of operations.filter((o) => o.method === "post")) {
      const over = await api.request(operation.path, post(paddedBody(maxBodyBytes + 1)))
      expect(over.status).toBe(413)
      expect(over.headers.get("content-type")).toStartWith("application/json")
      expect(await over.json()).toMatchObject({ error: "payload_too_large", field: "body" })

      const bytes = new TextEncoder().encode(paddedBody(maxBodyBytes + 1))
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < bytes.length; i += 8 * 1024) controller.enqueue(bytes.slice(i, i + 8 * 1024))
          controller.close()
        }
      })
      const streamed = await api.request(operation.path, { method: "POST", headers: { "Content-Type": "application/json" }, body: stream })
      expect(streamed.status).toBe(413)
      expect(await streamed.json()).toMatchObject({ error: "payload_too_large" })

      const atLimit = await api.request(operation.path, post(paddedBody(maxBodyBytes)))
      expect(atLimit.status).toBe(404)
      expect(await atLimit.json()).toMatchObject({ error: "not_found", field: "symbol" })
    }
  })

  test("an unknown route, or a known path with the wrong method, is a 404 JSON error pointing at the description", async () => {
    const calls: ReadonlyArray<readonly [string, string]> = [
      ["GET", "/nope"],
      ["GET", "/api/data/nope"],
      ["GET", "/api/data/candles/EURUSD"],
      ["GET", "/api/data/sync"],
      ["POST", "/api/data/candles"],
      ["DELETE", "/api/data/jobs/00000000-0000-4000-8000-000000000000"],
      ["PUT", "/metrics"]
    ]
    for (const [method, path] of calls) {
      const response = await api.request(path, { method })
      expect({ method, path, status: response.status }).toEqual({ method, path, status: 404 })
      expect(response.headers.get("content-type")).toStartWith("application/json")
      expect(await response.json()).toMatchObject({ error: "not_found", message: `no route for ${method} ${path}`, docs: "/openapi.json" })
    }
  })
})

const writeToken = "w-8f3c1e9a-write-token-candlekeep"
const readToken = "r-52d7b4aa-read-token-candlekeep"
const tokens = [writeToken, readToken]

/** Calls the app and reads the answer, failing at once if any configured token shows in the body or a header. */
const tokenCaller = (api: () => ApiHarness) => async (path: string, init: RequestInit = {}) => {
  const response = await api().request(path, init)
  const text = await readAnswer(response)
  const headers = [...response.headers.entries()].map(([k, v]) => `${k}: ${v}`).join("\n")
  for (const token of tokens) {
    expect(text.includes(token)).toBe(false)
    expect(headers.includes(token)).toBe(false)
  }
  return { status: response.status, headers: response.headers, text, json: () => JSON.parse(text) }
}

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` })

describe.each(databaseKinds)("API_TOKEN alone, on the %s database", (kind) => {
  let api: ApiHarness
  let operations: ReadonlyArray<Operation>
  const call = tokenCaller(() => api)

  beforeAll(async () => {
    api = await startApi(kind, { http: { apiToken: Option.some(Redacted.make(writeToken)) } })
    await api.markReady()
    operations = operationsOf((await call("/openapi.json")).json())
  }, 60_000)
  afterAll(async () => {
    await api?.close()
  })

  test("every POST without a token, with a wrong one or another scheme is a 401 JSON `unauthorized`; the right one lets the body decide", async () => {
    const posts = operations.filter((o) => o.method === "post")
    expect(posts.map((o) => o.path)).toEqual(expect.arrayContaining(["/api/data/sync", "/api/data/gaps/detect", "/api/data/gaps/fill"]))
    for (const operation of posts) {
      for (const headers of [{}, bearer("wrong"), bearer(readToken), bearer(`${writeToken}x`), { Authorization: writeToken }, { Authorization: `Basic ${writeToken}` }, { Authorization: `Bearer ${writeToken} extra` }]) {
        const refused = await call(operation.path, post({ symbol: "EURUSD" }, headers))
        expect({ path: operation.path, headers, status: refused.status }).toEqual({ path: operation.path, headers, status: 401 })
        expect(refused.headers.get("content-type")).toStartWith("application/json")
        expect(refused.json().error).toBe("unauthorized")
        expect(refused.headers.get("www-authenticate")).toStartWith("Bearer")
      }
      const unknown = await call(operation.path, post({ symbol: "NOSUCH" }, bearer(writeToken)))
      expect(unknown.status).toBe(404)
      expect(unknown.json()).toMatchObject({ error: "not_found", field: "symbol" })
    }
    const sync = await call("/api/data/sync", post({ symbol: "EURUSD", timeframe: "M1" }, { Authorization: `bearer  ${writeToken} ` }))
    expect(sync.status).toBe(202)
    expect(typeof sync.json().job.id).toBe("string")
    const fill = await call("/api/data/gaps/fill", post({ symbol: "EURUSD", from: seedFrom, to: seedFrom + 60 * minute }, bearer(writeToken)))
    expect(fill.status).toBe(202)
    const detect = await call("/api/data/gaps/detect", post({ symbol: "EURUSD", from: seedFrom, to: seedFrom + 60 * minute }, bearer(writeToken)))
    expect(detect.status).toBe(200)
  })

  test("any Authorization header but the token is refused on a POST", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string(), fc.string().map((s) => `Bearer ${s}`), fc.string().map((s) => `Bearer ${writeToken.slice(0, s.length % writeToken.length)}${s}`)), async (authorization) => {
        fc.pre(!new RegExp(`^bearer\\s+${writeToken}\\s*$`, "i").test(authorization.trim()))
        const answer = await call("/api/data/sync", post({ symbol: "EURUSD" }, { Authorization: authorization }))
        expect(answer.status).toBe(401)
      }),
      { numRuns: 150 }
    )
  })

  test("GETs stay open when only API_TOKEN is set", async () => {
    const gets = operations.filter((o) => o.method === "get" && issueEndpoints.includes(`get ${o.path}`))
    expect(gets.length).toBe(issueEndpoints.filter((e) => e.startsWith("get ")).length)
    for (const operation of gets) {
      const answer = await call(`${fillPath(operation.path, validParam)}?symbol=EURUSD&timeframe=M1&start=2021-01-05&end=2021-01-06`)
      expect({ path: operation.path, status: answer.status }).not.toEqual({ path: operation.path, status: 401 })
      expect(answer.status).toBeLessThan(500)
    }
    expect((await call("/api/data/candles?symbol=EURUSD&timeframe=M1&start=2021-01-05&end=2021-01-06&limit=5")).json().count).toBe(5)
  })
})

describe.each(databaseKinds)("API_TOKEN and API_READ_TOKEN, on the %s database", (kind) => {
  let api: ApiHarness
  let document: any
  const call = tokenCaller(() => api)
  const candles = "/api/data/candles?symbol=EURUSD&timeframe=M1&start=2021-01-05&end=2021-01-06&limit=5"

  beforeAll(async () => {
    api = await startApi(kind, { http: { apiToken: Option.some(Redacted.make(writeToken)), apiReadToken: Option.some(Redacted.make(readToken)) } })
    await api.markReady()
    document = (await call("/openapi.json")).json()
  }, 60_000)
  afterAll(async () => {
    await api?.close()
  })

  test("candles needs the read token or the write token; without one, or with a wrong one, it is a 401 JSON error", async () => {
    for (const headers of [{}, bearer("wrong"), bearer(`${readToken}${writeToken}`), { Authorization: `Basic ${readToken}` }]) {
      const refused = await call(candles, { headers })
      expect(refused.status).toBe(401)
      expect(refused.json().error).toBe("unauthorized")
    }
    for (const token of [readToken, writeToken]) {
      const answer = await call(candles, { headers: bearer(token) })
      expect(answer.status).toBe(200)
      expect(answer.json().count).toBe(5)
    }
  })

  test("health, ready and the description stay public; every other route the description does not mark public needs a token", async () => {
    for (const path of ["/api/data/health", "/api/data/ready", "/openapi.json"]) expect((await call(path)).status).toBe(200)
    const operations = operationsOf(document)
    expect(operations.filter((o) => o.isPublic).map((o) => `${o.method} ${o.path}`).sort()).toEqual(["get /api/data/health", "get /api/data/ready"])
    expect(document.security).toEqual([{ bearer: [] }])
    for (const operation of operations.filter((o) => !o.isPublic)) {
      const url = fillPath(operation.path, validParam)
      const refused = await call(url, operation.method === "post" ? post({ symbol: "EURUSD" }) : {})
      expect({ url, status: refused.status }).toEqual({ url, status: 401 })
    }
  })

  test("the read token does not open writes", async () => {
    for (const path of ["/api/data/sync", "/api/data/gaps/detect", "/api/data/gaps/fill"]) {
      const refused = await call(path, post({ symbol: "EURUSD" }, bearer(readToken)))
      expect({ path, status: refused.status }).toEqual({ path, status: 401 })
    }
    expect((await call("/api/data/gaps/detect", post({ symbol: "NOSUCH" }, bearer(writeToken)))).status).toBe(404)
  })
})
