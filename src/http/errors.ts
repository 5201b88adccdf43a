import { SqlError } from "@effect/sql/SqlError"
import { Cause, Data, Option } from "effect"
import { PlanLacksAsset, StreamFetchFailed, UnknownStreamSymbol } from "../pipeline/backfill.ts"
import { DerivedTimeframe } from "../pipeline/gaps.ts"
import { BrokerFetchFailed, BrokerOff, UnknownBrokerStream } from "../pipeline/broker.ts"
import { NotAStream } from "../supervisor/jobs.ts"
import { StreamRequestError } from "../supervisor/stream-entity.ts"
import { StreamRequestFailed } from "../supervisor/stream-loop.ts"
import { describeError } from "../store/database-error.ts"
import type { ErrorBody } from "./contract.ts"

/** Something the client sent that cannot be used: which field, and what is wrong with it. */
export class BadRequest extends Data.TaggedError("BadRequest")<{ readonly field: string; readonly message: string }> {}

/** A symbol, timeframe, job or route that does not exist; `valid` lists what does, when that list is short. */
export class NotFound extends Data.TaggedError("NotFound")<{
  readonly field?: string
  readonly message: string
  readonly valid?: ReadonlyArray<string>
}> {}

export class Unauthorized extends Data.TaggedError("Unauthorized")<{ readonly message: string }> {}

/** The request does not fit the resource's present state (a Retry for a stream that has not failed). */
export class Conflict extends Data.TaggedError("Conflict")<{ readonly field: string; readonly message: string }> {}

/** A feature that is off on this instance (broker comparison without MetaApi settings). */
export class Unavailable extends Data.TaggedError("Unavailable")<{ readonly message: string }> {}

export interface ErrorAnswer {
  readonly status: 400 | 401 | 404 | 409 | 500 | 502 | 503
  readonly body: ErrorBody
  readonly headers?: Readonly<Record<string, string>>
  /** Worth a line in the log: the client did nothing wrong. */
  readonly log: boolean
}

/**
 * Every typed failure's HTTP answer, in one place. What a client sent wrong is a 4xx naming the problem;
 * an outside system or the database failing is a 502/503; anything else is a 500 with the request id.
 */
export const errorAnswer = (cause: Cause.Cause<unknown>, requestId: string): ErrorAnswer => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (error instanceof BadRequest) return { status: 400, body: { error: "bad_request", field: error.field, message: error.message }, log: false }
    if (error instanceof NotFound) {
      return { status: 404, body: { error: "not_found", ...(error.field ? { field: error.field } : {}), message: error.message, ...(error.valid ? { valid: error.valid } : {}) }, log: false }
    }
    if (error instanceof Conflict) return { status: 409, body: { error: "conflict", field: error.field, message: error.message }, log: false }
    if (error instanceof Unauthorized) {
      return { status: 401, body: { error: "unauthorized", message: error.message }, headers: { "WWW-Authenticate": 'Bearer realm="candlekeep"' }, log: false }
    }
    if (error instanceof NotAStream) return { status: 404, body: { error: "not_found", field: "timeframe", message: error.message, valid: error.streams }, log: false }
    if (error instanceof DerivedTimeframe) return { status: 400, body: { error: "bad_request", field: "timeframe", message: error.message }, log: false }
    if (error instanceof UnknownStreamSymbol) return { status: 404, body: { error: "not_found", field: "symbol", message: error.message, valid: error.known }, log: false }
    if (error instanceof BrokerOff) return { status: 503, body: { error: "broker_off", message: error.message }, log: false }
    if (error instanceof UnknownBrokerStream) return { status: 404, body: { error: "not_found", message: error.message }, log: false }
    if (error instanceof BrokerFetchFailed) return { status: 502, body: { error: "broker_failed", message: error.message }, log: true }
    if (error instanceof Unavailable) return { status: 503, body: { error: "unavailable", message: error.message }, log: false }
    if (error instanceof StreamRequestFailed || error instanceof StreamRequestError) {
      return { status: 503, body: { error: "stream_unavailable", message: error.message }, log: true }
    }
    if (error instanceof PlanLacksAsset) return { status: 502, body: { error: "vendor_refused", message: error.message }, log: false }
    if (error instanceof StreamFetchFailed) return { status: 502, body: { error: "vendor_failed", message: error.message }, log: true }
    if (error instanceof SqlError) return { status: 503, body: { error: "database_unavailable", message: describeError(error), request_id: requestId }, log: true }
  }
  return { status: 500, body: { error: "internal", request_id: requestId, message: "unexpected error; it has been logged with this request id" }, log: true }
}
