import { describe, expect, test } from "bun:test"
import { Either } from "effect"
import type { DatabaseFlavourSetting } from "../src/config.ts"
import { chooseFlavour, type Flavour, type FlavourProbe } from "../src/store/flavour.ts"

const server = (preload: string, installed = true, created = false): FlavourProbe => ({ embedded: false, installed, created, preload })
const embedded: FlavourProbe = { embedded: true, installed: true, created: false, preload: "" }

const outcome = (requested: DatabaseFlavourSetting, recorded: Flavour | null, probe: FlavourProbe) =>
  Either.match(chooseFlavour({ requested, recorded, probe }), { onLeft: (refused) => `refused: ${refused.message}`, onRight: (choice) => choice.flavour })

describe("choosing the database flavour", () => {
  test.each([
    // requested, recorded, probe, outcome (a prefix of it for refusals)
    ["auto", null, server("timescaledb"), "timescale"],
    ["auto", null, server("pg_stat_statements, timescaledb"), "timescale"],
    ["auto", null, server(""), "plain"],
    ["auto", null, server("", false), "plain"],
    ["auto", null, embedded, "timescale"],
    ["plain", null, server("timescaledb"), "plain"],
    ["plain", null, embedded, "plain"],
    ["timescale", null, server("timescaledb"), "timescale"],
    ["timescale", null, server(""), "refused: TimescaleDB cannot be loaded: timescaledb is installed but not preloaded (shared_preload_libraries = ''). Add timescaledb to shared_preload_libraries"],
    ["timescale", null, server("", false), "refused: TimescaleDB cannot be loaded: the timescaledb extension is not installed on this server"],
    ["auto", "plain", server("timescaledb"), "plain"],
    ["auto", "timescale", server("timescaledb"), "timescale"],
    ["auto", "timescale", server("", true, true), "refused: TimescaleDB cannot be loaded: timescaledb is installed but not preloaded"],
    ["timescale", "plain", server("timescaledb"), "refused: this database was created as plain; DATABASE_FLAVOUR=timescale cannot change it"],
    ["plain", "timescale", server("timescaledb"), "refused: this database was created as timescale; DATABASE_FLAVOUR=plain cannot change it"]
  ] as const)("%s on a database recorded as %s", (requested, recorded, probe, expected) => {
    expect(outcome(requested, recorded, probe).startsWith(expected)).toBe(true)
  })

  test("auto says why it fell back to plain tables, naming shared_preload_libraries", () => {
    const choice = Either.getOrThrow(chooseFlavour({ requested: "auto", recorded: null, probe: server("pg_stat_statements") }))
    expect(choice.reason).toBe(
      "timescaledb is installed but not preloaded (shared_preload_libraries = 'pg_stat_statements'): plain tables, rollups refreshed by candlekeep"
    )
  })

  test("a refusal is one line that names the setting to change", () => {
    const refused = Either.flip(chooseFlavour({ requested: "timescale", recorded: null, probe: server("") }))
    const message = Either.getOrThrow(refused).message
    expect(message.split("\n")).toHaveLength(1)
    expect(message).toContain("shared_preload_libraries")
    expect(message).toContain("DATABASE_FLAVOUR=plain")
  })
})
