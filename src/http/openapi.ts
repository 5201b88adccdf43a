import { JSONSchema, Option, Schema, SchemaAST } from "effect"
import type { RouteSpec } from "./api.ts"
import { ErrorBody, type Answer } from "./contract.ts"

const definitionPath = "#/components/schemas/"

type JsonObject = Record<string, unknown>

/** The defaults a Struct's `optionalWith(…, { default })` fields decode to when absent, read from the transformation itself. */
const defaultsOf = (schema: Schema.Schema<any, any>): Readonly<Record<string, unknown>> => {
  const ast = schema.ast
  if (!SchemaAST.isTransformation(ast) || !SchemaAST.isTypeLiteralTransformation(ast.transformation)) return {}
  return Object.fromEntries(
    ast.transformation.propertySignatureTransformations.flatMap((field) =>
      Option.match(field.decode(Option.none()), { onNone: () => [], onSome: (value) => [[String(field.from), value] as const] })
    )
  )
}

/** What a route implies whatever it lists: its input may not decode, a token may be missing, the body too big, the database away. */
const impliedErrors = (route: RouteSpec, tokens: boolean): Readonly<Record<number, string>> => ({
  ...(route.query !== undefined || route.params !== undefined || route.body !== undefined ? { 400: "a parameter or the body does not decode: `field` names it" } : {}),
  ...(tokens && route.access !== "public" ? { 401: "no valid bearer token for this route" } : {}),
  ...(route.body !== undefined ? { 413: "the body is over the size limit" } : {}),
  500: "unexpected: logged with the answer's `request_id`",
  503: "the database does not answer, or the service is stopping"
})

/**
 * The OpenAPI 3.1 document, built from the registered routes: their paths and access, the same schemas that
 * decode their query strings, path parameters and bodies, and the same schemas that encode their answers
 * (components named by each schema's `identifier`).
 */
export const openApiDocument = (routes: ReadonlyArray<RouteSpec>, info: { readonly version: string; readonly tokens: boolean }) => {
  const definitions: Record<string, JSONSchema.JsonSchema7> = {}
  /** The encoded side: what travels on the wire. */
  const jsonSchemaOf = (schema: Schema.Schema<any, any>, extra: "strict" | "allow" = "strict"): JsonObject => ({
    ...JSONSchema.fromAST(schema.ast, { definitions, definitionPath, target: "openApi3.1", additionalPropertiesStrategy: extra })
  })
  const errorSchema = jsonSchemaOf(ErrorBody)

  /** A Struct's fields as parameters: required as the wire sees it (a field with a default is not), the default shown. */
  const parameters = (where: "query" | "path", schema: Schema.Schema<any, any> | undefined) => {
    if (schema === undefined) return []
    const json = jsonSchemaOf(schema) as { properties?: Record<string, JsonObject>; required?: Array<string> }
    const defaults = defaultsOf(schema)
    return Object.entries(json.properties ?? {}).map(([name, property]) => {
      const { description, ...rest } = property
      return {
        name,
        in: where,
        required: where === "path" || (json.required ?? []).includes(name),
        ...(typeof description === "string" ? { description } : {}),
        schema: name in defaults ? { ...rest, default: defaults[name] } : rest
      }
    })
  }

  const requestBody = (schema: Schema.Schema<any, any>) => {
    // Fields a body schema does not know are ignored, not refused.
    const json = jsonSchemaOf(schema, "allow") as { properties?: Record<string, JsonObject> }
    const defaults = defaultsOf(schema)
    const properties = Object.fromEntries(Object.entries(json.properties ?? {}).map(([name, property]) => [name, name in defaults ? { ...property, default: defaults[name] } : property]))
    return { required: true, content: { "application/json": { schema: { ...json, properties } } } }
  }

  const answerContent = (answers: ReadonlyArray<Answer>) =>
    Object.fromEntries(answers.map((a) => [a.contentType, { schema: jsonSchemaOf(a.schema), example: Schema.encodeSync(a.schema)(a.example) }]))

  const response = (route: RouteSpec, status: number, listed: Answer | ReadonlyArray<Answer> | string | undefined, implied: string | undefined) => {
    if (listed !== undefined && typeof listed !== "string") {
      const answers: ReadonlyArray<Answer> = Array.isArray(listed) ? listed : [listed as Answer]
      const headers = Object.fromEntries(
        answers.flatMap((a) => Object.entries(a.headers ?? {})).map(([name, header]) => [name, { description: header.description, schema: { type: header.type } }])
      )
      return {
        description: answers.map((a) => a.description).join("; or "),
        ...(Object.keys(headers).length === 0 ? {} : { headers }),
        content: answerContent(answers)
      }
    }
    // A route's own words for a status win, but a 503 it lists can still come from the database too.
    const description = status === 503 && listed !== undefined && implied !== undefined ? `${listed}; or ${implied}` : (listed ?? implied ?? "")
    if (status >= 400) return { description, content: { "application/json": { schema: errorSchema } } }
    // A success listed only in words (a route not yet given its Answer): its content types, without a schema.
    return { description, content: Object.fromEntries((route.produces ?? ["application/json"]).map((type) => [type, {}])) }
  }

  const paths: Record<string, Record<string, unknown>> = {}
  for (const route of routes) {
    const path = route.path.replace(/:(\w+)/g, "{$1}")
    const implied = impliedErrors(route, info.tokens)
    const statuses = [...new Set([...Object.keys(route.responses), ...Object.keys(implied)].map(Number))].sort((a, b) => a - b)
    paths[path] = {
      ...paths[path],
      [route.method]: {
        operationId: `${route.method}${path.replace(/[{}]/g, "").replace(/(^|[/_.-])(\w)/g, (_, __, ch: string) => ch.toUpperCase())}`,
        tags: [route.tag],
        summary: route.summary,
        parameters: [...parameters("path", route.params), ...parameters("query", route.query)],
        ...(route.body === undefined ? {} : { requestBody: requestBody(route.body) }),
        ...(route.access === "public" ? { security: [] } : {}),
        responses: Object.fromEntries(statuses.map((status) => [String(status), response(route, status, route.responses[status], implied[status])]))
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
      schemas: definitions,
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "API_TOKEN for POST; API_READ_TOKEN (or API_TOKEN) for reads when set" } }
    },
    paths
  }
}
