import { JSONSchema, Schema } from "effect"
import type { RouteSpec } from "./api.ts"

/** A Struct's fields as OpenAPI parameters, each with the JSON Schema of the type it decodes to. */
const parameters = (where: "query" | "path", schema: Schema.Schema<any, any> | undefined) => {
  if (schema === undefined) return []
  const json = JSONSchema.make(Schema.typeSchema(schema), { target: "openApi3.1" }) as { properties?: Record<string, Record<string, unknown>>; required?: Array<string> }
  return Object.entries(json.properties ?? {}).map(([name, property]) => {
    const { description, ...rest } = property
    return {
      name,
      in: where,
      required: where === "path" || (json.required ?? []).includes(name),
      ...(typeof description === "string" ? { description } : {}),
      schema: rest
    }
  })
}

const errorBody = {
  type: "object",
  required: ["error", "message"],
  properties: {
    error: { type: "string", description: "bad_request, not_found, unauthorized, unavailable, internal, …" },
    field: { type: "string", description: "the parameter or body field at fault" },
    message: { type: "string" },
    valid: { type: "array", items: { type: "string" }, description: "the valid values, for an unknown symbol or timeframe" },
    request_id: { type: "string" }
  }
}

/**
 * The OpenAPI 3.1 document, built from the registered routes: their paths, their access, and the same
 * schemas that decode their query strings, path parameters and bodies.
 */
export const openApiDocument = (routes: ReadonlyArray<RouteSpec>, info: { readonly version: string; readonly tokens: boolean }) => {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const route of routes) {
    const path = route.path.replace(/:(\w+)/g, "{$1}")
    const produces = route.produces ?? ["application/json"]
    paths[path] = {
      ...paths[path],
      [route.method]: {
        operationId: `${route.method}${path.replace(/[{}]/g, "").replace(/(^|[/_.-])(\w)/g, (_, __, ch: string) => ch.toUpperCase())}`,
        tags: [route.tag],
        summary: route.summary,
        parameters: [...parameters("path", route.params), ...parameters("query", route.query)],
        ...(route.body === undefined
          ? {}
          : { requestBody: { required: true, content: { "application/json": { schema: JSONSchema.make(route.body, { target: "openApi3.1" }) } } } }),
        ...(route.access === "public" ? { security: [] } : {}),
        responses: Object.fromEntries(
          Object.entries(route.responses).map(([status, description]) => [
            status,
            {
              description,
              content: Number(status) >= 400 ? { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } : Object.fromEntries(produces.map((type) => [type, {}]))
            }
          ])
        )
      }
    }
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "candlekeep",
      version: info.version,
      description: "A complete, trustworthy history of OHLCV candles: bars, streams, gaps, data quality and broker comparison."
    },
    servers: [{ url: "/" }],
    ...(info.tokens ? { security: [{ bearer: [] }] } : {}),
    components: {
      schemas: { Error: errorBody },
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "API_TOKEN for POST; API_READ_TOKEN (or API_TOKEN) for reads when set" } }
    },
    paths
  }
}
