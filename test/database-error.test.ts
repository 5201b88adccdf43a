import { afterAll, describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { Cause, Effect } from "effect"
import { errorAnswer } from "../src/http/errors.ts"
import { describeError, redactSecrets } from "../src/store/database-error.ts"
import { createTestDatabase, databaseKinds, type TestDatabase } from "./support/databases.ts"

const opened: Array<TestDatabase> = []
afterAll(async () => {
  for (const db of opened) await db.close().then(() => db.drop())
})

describe("database errors say what PostgreSQL said", () => {
  test("a password in a connection string is redacted wherever it appears", () => {
    expect(redactSecrets("could not connect to postgres://candlekeep:s3cret@db:5432/x")).toBe("could not connect to postgres://candlekeep:***@db:5432/x")
    expect(redactSecrets("host=db password=s3cret user=x")).toBe("host=db password=*** user=x")
  })

  test("an error without PostgreSQL's fields keeps the driver's message", () => {
    expect(describeError(new SqlError({ message: "Failed to acquire connection" }))).toBe("Failed to acquire connection")
  })

  for (const kind of databaseKinds) {
    test(`on the ${kind} database: the code, message and detail reach the line a person reads and the HTTP 503 body`, async () => {
      const db = await createTestDatabase(kind)
      opened.push(db)
      const error = await db.run(
        Effect.flatMap(SqlClient.SqlClient, (sql) =>
          Effect.flip(
            Effect.zipRight(
              sql`CREATE TABLE unique_probe (k int PRIMARY KEY)`,
              sql`INSERT INTO unique_probe VALUES (1), (1)`
            )
          )
        )
      )
      expect(error).toBeInstanceOf(SqlError)
      const line = describeError(error)
      expect(line).toBe('database error 23505: duplicate key value violates unique constraint "unique_probe_pkey" (detail: Key (k)=(1) already exists.)')
      const answer = errorAnswer(Cause.fail(error), "req-1")
      expect(answer.status).toBe(503)
      expect(answer.body).toMatchObject({ error: "database_unavailable", message: line })
    })
  }
})
