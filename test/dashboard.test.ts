import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { existsSync, mkdirSync } from "node:fs"
import { join } from "node:path"
import { Layer, ManagedRuntime, Option, Redacted } from "effect"
import { chromium, type Browser, type Page } from "playwright-core"
import type { AppConfigShape } from "../src/config.ts"
import type { Candle } from "../src/domain/candle.ts"
import { makeApp } from "../src/http/app.ts"
import { runEffectWith } from "../src/http/run-effect.ts"
import { Backfill } from "../src/pipeline/backfill.ts"
import { Broker } from "../src/pipeline/broker.ts"
import { Gaps } from "../src/pipeline/gaps.ts"
import { CandleStore } from "../src/store/candle-store.ts"
import { GapRepo } from "../src/store/gap-repo.ts"
import { ClusterLive } from "../src/supervisor/cluster.ts"
import { StreamEvents } from "../src/supervisor/events.ts"
import { Jobs } from "../src/supervisor/jobs.ts"
import { Readiness } from "../src/supervisor/readiness.ts"
import { SupervisorLive } from "../src/supervisor/supervisor.ts"
import { startMassiveFake, type MassiveFake } from "./fakes/massive.ts"
import { startMetaApiFake, type MetaApiFake } from "./fakes/metaapi.ts"
import { createTestDatabase, databaseKinds, storeLayer, type DatabaseKind, type TestDatabase } from "./support/databases.ts"
import { hasSharedData, loadBinanceBtc, noSharedDataReason } from "./support/shared-data.ts"

/**
 * The dashboard in Debian's Chromium (playwright-core, no downloaded browser): real BTCUSD bars with two holes
 * cut in them, one recorded as an open gap and one as unfillable with evidence; a live supervisor whose vendor
 * key can be withdrawn; the page opened on a deep link. Everything is checked through the page's DOM and the
 * chart's own API, each wait a poll with a deadline.
 */

// Names the page's own code sees, inside page.evaluate (the test's types have no DOM).
declare const document: any, window: any, getComputedStyle: any
type HTMLElement = any

const chromiumPath = "/usr/bin/chromium"
/** Screenshots for a person to look at (gitignored). */
const outputDir = join(import.meta.dir, "..", "test-output")
const minute = 60_000
const writeToken = "dashboard-write-token"
const apiKey = "dashboard-test-key"

/** Seeded: 2023-03-06 00:00 → 2023-03-09 00:00 UTC (three days of BTCUSD M1, crypto: no closures). */
const seedFrom = Date.parse("2023-03-06T00:00:00Z")
const seedTo = Date.parse("2023-03-09T00:00:00Z")
/** The holes cut in: [first missing minute, end exclusive); the gap records name the first and the last missing minute. */
const openGap = { start: Date.parse("2023-03-08T10:00:00Z"), end: Date.parse("2023-03-08T10:45:00Z") }
const unfillableGap = { start: Date.parse("2023-03-08T12:30:00Z"), end: Date.parse("2023-03-08T12:50:00Z") }
/** The deep link's range. */
const viewFrom = Date.parse("2023-03-08T08:00:00Z")
const viewTo = Date.parse("2023-03-08T14:00:00Z")
/** The broker's BTCUSD closes sit this far above the vendor's (30 pips of 0.1). */
const brokerOffset = 3
const brokerAccount = "acc-1"

const inHole = (ts: number) => [openGap, unfillableGap].some((g) => ts >= g.start && ts < g.end)

const skipReason = !hasSharedData ? noSharedDataReason : !existsSync(chromiumPath) ? `skipped: ${chromiumPath} is absent (apt-get install -y chromium; .ci/run does)` : null
if (skipReason !== null) console.warn(`dashboard browser test ${skipReason}`)

/** Polls `check` until it returns a value that is not undefined, or fails after `millis` with what it saw last. */
const eventually = async <A>(what: string, millis: number, check: () => Promise<A | undefined>): Promise<A> => {
  const deadline = Date.now() + millis
  let last: unknown
  for (;;) {
    try {
      const value = await check()
      if (value !== undefined) return value
    } catch (error) {
      last = error
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${millis} ms${last === undefined ? "" : ` (last error: ${String(last)})`}`)
    await Bun.sleep(50)
  }
}

const freePort = (): number => {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: () => undefined } })
  const port = listener.port
  listener.stop(true)
  return port
}

// The embedded database and the production flavour (the page reads M1 bars and gaps, the same SQL on plain tables).
const kinds: ReadonlyArray<DatabaseKind> = databaseKinds.filter((kind) => kind !== "plain")

describe.skipIf(skipReason !== null).each(kinds)("the dashboard in Chromium, on the %s database", (kind) => {
  let db: TestDatabase
  let fake: MassiveFake
  let broker: MetaApiFake
  let runtime: ManagedRuntime.ManagedRuntime<any, unknown>
  let server: ReturnType<typeof Bun.serve>
  let browser: Browser
  let page: Page
  let origin: string
  let seeded: ReadonlyArray<Candle>
  let gapIds: { open: number; unfillable: number }
  /** The vendor's accepted keys: emptied to make the stream fail, refilled before Retry. */
  const acceptedKeys: Array<string> = [apiKey]
  const requests: Array<string> = []
  const errors: Array<string> = []

  beforeAll(async () => {
    seeded = loadBinanceBtc().filter((bar) => bar.ts >= seedFrom && bar.ts < seedTo && !inHole(bar.ts))
    fake = startMassiveFake({ apiKeys: acceptedKeys, bars: new Map([["X:BTCUSD", seeded]]) })
    const brokerBars = seeded.map((b) => ({ ...b, open: b.open + brokerOffset, high: b.high + brokerOffset, low: b.low + brokerOffset, close: b.close + brokerOffset }))
    broker = startMetaApiFake({ tokens: ["meta-token"], accounts: new Map([[brokerAccount, new Map([["BTCUSD", brokerBars]])]]) })
    db = await createTestDatabase(kind)
    // One runtime per database (PGlite opens its directory once): the test database's own is closed first.
    await db.close()
    const now = Date.now()
    const config: AppConfigShape = {
      ...db.config,
      streams: Option.some([{ symbol: "BTCUSD", timeframe: "M1" }]),
      backfillFrom: Option.some(now - (now % minute) - 30 * minute),
      massive: { ...db.config.massive, apiKey: Option.some(Redacted.make(apiKey)), baseUrl: fake.baseUrl, plan: "paid", timeoutSeconds: 10 },
      // A port free now: other test runs on this machine take fixed ones.
      supervisor: { ...db.config.supervisor, runnerPort: freePort() },
      http: { ...db.config.http, apiToken: Option.some(Redacted.make(writeToken)) },
      broker: {
        ...db.config.broker,
        token: Option.some(Redacted.make("meta-token")),
        accounts: [brokerAccount],
        baseUrl: broker.baseUrl,
        marketDataUrl: broker.baseUrl,
        symbols: Option.some({ BTCUSD: "BTCUSD" }),
        timeoutSeconds: 10
      }
    }
    const base = Layer.mergeAll(Jobs.Default, Readiness.Default).pipe(Layer.provideMerge(ClusterLive), Layer.provideMerge(storeLayer(config)))
    runtime = ManagedRuntime.make(Layer.merge(SupervisorLive.pipe(Layer.provide(base)), base))
    // Seeded through the pipeline, as a backfill stores them; then the gaps recorded as detection records them.
    await runtime.runPromise(Backfill.use((b) => b.run({ symbol: "BTCUSD", timeframe: "M1", from: seedFrom, to: seedTo, purpose: "backfill", refetch: true })))
    await runtime.runPromise(Gaps.use((g) => g.detect({ symbol: "BTCUSD", timeframe: "M1", from: seedFrom, to: seedTo })))
    const gaps = await runtime.runPromise(GapRepo.use((r) => r.list("BTCUSD", "M1", null)))
    const open = gaps.find((g) => g.start === openGap.start)
    const unfillable = gaps.find((g) => g.start === unfillableGap.start)
    if (open === undefined || unfillable === undefined) throw new Error(`detection did not record the cut holes: ${JSON.stringify(gaps)}`)
    await runtime.runPromise(
      GapRepo.use((r) => r.settle(unfillable.id, { status: "unfillable", remaining: null, evidence: { fetch_log: [{ from: new Date(unfillableGap.start).toISOString(), bars: 0 }], vendor: "no bars for the range" } }))
    )
    gapIds = { open: open.id, unfillable: unfillable.id }
    // One stored comparison (the hour before the deep link's range), for the broker panel's history.
    await runtime.runPromise(Broker.use((b) => b.compareAndRecord({ account: brokerAccount, symbol: "BTCUSD", end: viewFrom })))

    const app = makeApp(runEffectWith(await runtime.runtime()), config.http, "test")
    server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: app.fetch, idleTimeout: 60 })
    origin = `http://127.0.0.1:${server.port}`
    browser = await chromium.launch({ executablePath: chromiumPath, args: ["--headless", "--no-sandbox"] })
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
    page.on("request", (request) => void requests.push(request.url()))
    page.on("pageerror", (error) => void errors.push(`pageerror: ${error.message}`))
    page.on("console", (message) => {
      // The browser logs the 401 that makes the page ask for the token: expected, not a script error.
      if (message.type() === "error" && !/status of 401/.test(message.text())) errors.push(`console: ${message.text()}`)
    })
  }, 120_000)

  afterAll(async () => {
    await browser?.close()
    await server?.stop(true)
    await runtime?.dispose()
    await db?.drop()
    await fake?.stop()
    await broker?.stop()
  })

  const rowState = () => page.locator('tr[data-stream="BTCUSD:M1"] td.state').textContent()

  test("a deep link opens the chart on the seeded bars, in the linked range", async () => {
    await page.goto(`${origin}/?symbol=BTCUSD&timeframe=M1&from=${new Date(viewFrom).toISOString()}&to=${new Date(viewTo).toISOString()}`)
    await page.waitForFunction(() => document.body.dataset.ready === "true", null, { timeout: 30_000 })
    expect(await page.locator("#symbol").inputValue()).toBe("BTCUSD")
    expect(await page.locator("#timeframe").inputValue()).toBe("M1")
    const held = await page.evaluate(() => {
      const chart = (window as any).candlekeep.chart
      return (chart.candles.data() as Array<any>).filter((p) => p.open !== undefined).map((p) => ({ ts: p.time * 1000, open: p.open, high: p.high, low: p.low, close: p.close }))
    })
    // Every seeded bar of the linked range is in the chart, with the file's prices; none inside a hole.
    const expected = seeded.filter((bar) => bar.ts >= viewFrom && bar.ts < viewTo)
    const byTime = new Map(held.map((bar) => [bar.ts, bar]))
    expect(expected.length).toBe((viewTo - viewFrom) / minute - 45 - 20)
    for (const bar of expected) expect(byTime.get(bar.ts)).toEqual({ ts: bar.ts, open: bar.open, high: bar.high, low: bar.low, close: bar.close })
    expect(held.filter((bar) => inHole(bar.ts))).toEqual([])
    const visible = await page.evaluate(() => (window as any).candlekeep.chart.chart.timeScale().getVisibleRange())
    expect(visible.from * 1000).toBe(viewFrom)
    expect(Math.abs(visible.to * 1000 - viewTo)).toBeLessThanOrEqual(minute)
  })

  test("the broker panel shows the configured account's comparison: the one-sided share and the offset's history as a line", async () => {
    await page.waitForSelector("#broker-section:not([hidden]) #broker dl", { timeout: 20_000 })
    const text = await page.locator("#broker dl").textContent()
    expect(text).toContain(brokerAccount)
    // The compared hour (07:00–08:00) has every minute on both sides, each broker close 3 (30 pips) above the vendor's.
    expect(text).toContain("last comparison30.00 pips over 60 minutes (ok,")
    expect(text).toContain("one-sided minutes0.0 %")
    const line = await page.evaluate(() => document.querySelectorAll("#broker-chart canvas").length)
    expect(line).toBeGreaterThan(0)
  })

  test("each gap is a band over exactly its missing minutes, in its status's colour; a click shows its evidence", async () => {
    // Measured against the real bars on either side of the hole (the chart's own coordinates for them): the band
    // must start half a bar after the last bar before it and end half a bar before the first bar after it, so it
    // covers every missing minute and no stored one; the hole keeps its width (one bar spacing per missing minute).
    const placement = async (id: number, gap: { start: number; end: number }) =>
      eventually(`band of gap ${id} placed`, 10_000, async () => {
        const seen = await page.evaluate(
          ({ id, start, end }) => {
            const chart = (window as any).candlekeep.chart
            const scale = chart.chart.timeScale()
            const x = (ms: number) => scale.timeToCoordinate(ms / 1000)
            const band = document.querySelector(`.gap-band[data-gap-id="${id}"]`) as HTMLElement | null
            if (band === null || band.hidden) return { missing: band === null ? "no band" : "band hidden" }
            const box = band.getBoundingClientRect()
            const container = document.getElementById("chart")!
            // The chart and the bands are laid out inside the container's border.
            const originX = container.getBoundingClientRect().left + container.clientLeft
            return {
              left: box.left - originX,
              right: box.right - originX,
              status: band.dataset.status,
              colour: getComputedStyle(band).backgroundImage + getComputedStyle(band).backgroundColor,
              beforeBefore: x(start - 120_000),
              before: x(start - 60_000),
              after: x(end)
            }
          },
          { id, start: gap.start, end: gap.end }
        )
        if ("missing" in seen) throw new Error(seen.missing)
        if (seen.before === null || seen.after === null || seen.beforeBefore === null) throw new Error(`a neighbouring bar has no coordinate: ${JSON.stringify(seen)}`)
        const missing = (gap.end - gap.start) / minute
        const spacing = seen.before - seen.beforeBefore
        const ok =
          Math.round((seen.after - seen.before) / spacing) === missing + 1 &&
          Math.abs(seen.left - (seen.before + spacing / 2)) <= 1 &&
          Math.abs(seen.right - (seen.after - spacing / 2)) <= 1
        if (!ok) throw new Error(`misplaced: ${JSON.stringify({ ...seen, spacing })}`)
        return seen
      })
    const open = await placement(gapIds.open, openGap)
    const unfillable = await placement(gapIds.unfillable, unfillableGap)
    expect(open.status).toBe("detected")
    expect(unfillable.status).toBe("unfillable")
    expect(open.colour).not.toBe(unfillable.colour)
    // 45 missing minutes against 20: the bands' widths follow.
    expect((open.right - open.left) / (unfillable.right - unfillable.left)).toBeCloseTo(45 / 20, 0)

    const chartBox = (await page.locator("#chart").boundingBox())!
    const border = await page.evaluate(() => document.getElementById("chart")!.clientLeft as number)
    await page.mouse.click(chartBox.x + border + (unfillable.left + unfillable.right) / 2, chartBox.y + 100)
    await page.waitForSelector(`#gap-detail[data-gap-id="${gapIds.unfillable}"]:not([hidden])`, { timeout: 10_000 })
    expect(await page.locator("#gap-detail pre").textContent()).toContain("no bars for the range")
    expect(await page.locator("#gap-detail dl").textContent()).toContain("unfillable")
    mkdirSync(outputDir, { recursive: true })
    await page.screenshot({ path: join(outputDir, `dashboard-1280-${kind}.png`), fullPage: true })
  })

  test("with fill on, each missing minute of the open gap is a hollow stand-in at the previous close", async () => {
    await page.locator("#fill").check()
    const standIns = await eventually("stand-ins in the open gap", 20_000, async () => {
      const points = await page.evaluate(
        ({ start, end }) =>
          ((window as any).candlekeep.chart.candles.data() as Array<any>)
            .filter((p) => p.time * 1000 >= start && p.time * 1000 < end)
            .map((p) => ({ ts: p.time * 1000, open: p.open, high: p.high, low: p.low, close: p.close, color: p.color })),
        openGap
      )
      return points.length === (openGap.end - openGap.start) / minute && points.every((p) => p.color === "rgba(0,0,0,0)") ? points : undefined
    })
    const previousClose = seeded.findLast((bar) => bar.ts < openGap.start)!.close
    for (const bar of standIns) expect(bar).toMatchObject({ open: previousClose, high: previousClose, low: previousClose, close: previousClose })
    expect(new URL(page.url()).searchParams.get("fill")).toBe("prev")
    // Stored bars keep their own colours.
    const stored = await page.evaluate((ts) => ((window as any).candlekeep.chart.candles.data() as Array<any>).find((p) => p.time * 1000 === ts), openGap.start - minute)
    expect(stored.color).toBeUndefined()
    await page.locator("#fill").uncheck()
    await eventually("stand-ins gone", 20_000, async () =>
      (await page.evaluate((start) => ((window as any).candlekeep.chart.candles.data() as Array<any>).some((p) => p.time * 1000 === start), openGap.start)) ? undefined : true
    )
  })

  test("a stream row follows state events: the vendor refuses the key after Sync now, the row turns failed; Retry brings it back", async () => {
    await page.waitForSelector('body[data-live="connected"]', { timeout: 20_000 })
    await eventually("the stream live", 60_000, async () => ((await rowState()) === "live" ? true : undefined))
    // The page shows Retry only for a failed stream.
    expect(await page.locator('tr[data-stream="BTCUSD:M1"] button.retry').isDisabled()).toBe(true)
    acceptedKeys.splice(0)
    await page.locator('tr[data-stream="BTCUSD:M1"] button.sync').click()
    // No token yet: the POST answers 401 and the page asks for the write token once.
    await page.waitForSelector("#token-dialog[open]", { timeout: 10_000 })
    await page.locator("#token-input").fill(writeToken)
    const accepted = page.waitForResponse((r) => r.url().endsWith("/api/data/sync") && r.status() === 202, { timeout: 10_000 })
    await page.locator("#token-ok").click()
    await accepted
    await eventually("the row failed", 60_000, async () => ((await rowState()) === "failed" ? true : undefined))
    expect(await page.locator('tr[data-stream="BTCUSD:M1"] td.error').textContent()).not.toBe("")

    acceptedKeys.push(apiKey)
    const retried = page.waitForResponse((r) => r.url().endsWith("/api/data/retry"), { timeout: 20_000 })
    await page.locator('tr[data-stream="BTCUSD:M1"] button.retry').click()
    const answer = await retried
    expect(answer.status()).toBe(200)
    expect(await answer.json()).toEqual({ stream: "BTCUSD:M1", state: "starting" })
    // The token was kept for the session: not asked a second time.
    expect(await page.locator("#token-dialog[open]").count()).toBe(0)
    await eventually("the row live again", 60_000, async () => ((await rowState()) === "live" ? true : undefined))

    // The endpoint behind the button, as a client sees it: no token 401, a stream that is not failed 409, one
    // that is not configured 404; each a JSON body naming the problem.
    const retry = (body: unknown, token: string | null) =>
      fetch(`${origin}/api/data/retry`, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...(token === null ? {} : { Authorization: `Bearer ${token}` }) },
        body: JSON.stringify(body)
      })
    expect((await retry({ symbol: "BTCUSD" }, null)).status).toBe(401)
    const live = await retry({ symbol: "BTCUSD", timeframe: "M1" }, writeToken)
    expect(live.status).toBe(409)
    expect(await live.json()).toMatchObject({ error: "conflict", field: "symbol", message: "BTCUSD:M1 is live, not failed: only a failed stream waits for a retry" })
    const unconfigured = await retry({ symbol: "EURUSD", timeframe: "M1" }, writeToken)
    expect(unconfigured.status).toBe(404)
    expect(await unconfigured.json()).toMatchObject({ error: "not_found", valid: ["BTCUSD:M1"] })
  })

  test("scrolling left loads older bars", async () => {
    const earliest = () => page.evaluate(() => ((window as any).candlekeep.chart.candles.data()[0]?.time ?? 0) * 1000)
    const before = await earliest()
    expect(before).toBeGreaterThan(seedFrom)
    const box = (await page.locator("#chart").boundingBox())!
    await eventually("older bars after dragging right", 30_000, async () => {
      await page.mouse.move(box.x + 200, box.y + box.height / 2)
      await page.mouse.down()
      await page.mouse.move(box.x + box.width - 150, box.y + box.height / 2, { steps: 12 })
      await page.mouse.up()
      return (await earliest()) < before ? true : undefined
    })
    const after = await earliest()
    expect(after).toBeGreaterThanOrEqual(seedFrom)
    expect(after).toBeLessThan(before)
  })

  test("keyboard, phone width and dark mode: controls reachable by Tab, nothing wider than the screen, dark colours", async () => {
    await page.locator("#symbol").focus()
    const reached = await eventually("Sync now reached by Tab", 10_000, async () => {
      for (let i = 0; i < 60; i++) {
        await page.keyboard.press("Tab")
        if (await page.evaluate(() => document.activeElement?.classList.contains("sync") === true)) return true
      }
      return undefined
    })
    expect(reached).toBe(true)
    const colours = () =>
      page.evaluate(() => ({ page: getComputedStyle(document.body).backgroundColor, chart: (window as any).candlekeep.chart.chart.options().layout.background.color }))
    const light = await colours()
    await page.emulateMedia({ colorScheme: "dark" })
    // The page by its stylesheet, the chart by listening to the same media query.
    await eventually("dark colours", 10_000, async () => {
      const dark = await colours()
      return dark.page !== light.page && dark.chart !== light.chart ? true : undefined
    })
    await page.screenshot({ path: join(outputDir, `dashboard-1280-dark-${kind}.png`), fullPage: true })
    await page.emulateMedia({ colorScheme: "light" })
    await page.setViewportSize({ width: 390, height: 844 })
    await eventually("no horizontal overflow at 390 px", 10_000, async () =>
      (await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)) ? true : undefined
    )
    await page.screenshot({ path: join(outputDir, `dashboard-390-${kind}.png`), fullPage: true })
    await page.setViewportSize({ width: 1280, height: 900 })
  })

  test("on the newest bars, a stored page's event brings its bar into the chart", async () => {
    // Stored as the pipeline stores a page, then announced as it announces one (commit first, then the event).
    const last = seeded.at(-1)!
    const t0 = Date.now() - (Date.now() % minute) - 10 * minute
    const bar = (ts: number, close: number): Candle => ({ ts, open: last.close, high: Math.max(last.close, close), low: Math.min(last.close, close), close, volume: 1.5, vwap: null, trades: null })
    await runtime.runPromise(CandleStore.use((s) => s.upsertPage({ symbol: "BTCUSD", timeframe: "M1", source: "massive", candles: [bar(t0, last.close + 1)] })))
    await page.goto(`${origin}/?symbol=BTCUSD&timeframe=M1`)
    await page.waitForFunction(() => document.body.dataset.ready === "true", null, { timeout: 30_000 })
    const newest = () => page.evaluate(() => {
      const point = ((window as any).candlekeep.chart.candles.data() as Array<any>).at(-1)
      return point === undefined ? null : { ts: point.time * 1000, close: point.close }
    })
    expect(await newest()).toEqual({ ts: t0, close: last.close + 1 })
    // The page says when its event stream is subscribed; an event published before that would be nobody's.
    await page.waitForSelector('body[data-live="connected"]', { timeout: 20_000 })
    await runtime.runPromise(CandleStore.use((s) => s.upsertPage({ symbol: "BTCUSD", timeframe: "M1", source: "massive", candles: [bar(t0 + minute, last.close + 2)] })))
    await runtime.runPromise(
      StreamEvents.use((events) => events.publish({ type: "page", stream: "BTCUSD:M1", at: Date.now(), fetched: 1, stored: 1, rejected: 0, watermark: t0 + 2 * minute }))
    )
    await eventually("the new bar in the chart", 10_000, async () => {
      const seen = await newest()
      return seen?.ts === t0 + minute && seen.close === last.close + 2 ? true : undefined
    })
  })

  test("the script is served with an ETag (304 when unchanged); no request left the service's origin; no script error", async () => {
    const first = await fetch(`${origin}/dashboard/app.js`)
    const etag = first.headers.get("etag")
    expect(first.status).toBe(200)
    expect(etag).toMatch(/^(W\/)?"[0-9a-f]{32}"$/)
    const again = await fetch(`${origin}/dashboard/app.js`, { headers: { "If-None-Match": etag! } })
    expect(again.status).toBe(304)
    expect(requests.length).toBeGreaterThan(10)
    expect(requests.filter((url) => !url.startsWith(`${origin}/`))).toEqual([])
    expect(errors).toEqual([])
  })
})
