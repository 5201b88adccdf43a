import type { Context, Hono } from "hono"

/** One static file: its text, the content type, and an ETag from its SHA-256 (the same bytes, the same tag). */
interface Asset {
  readonly body: string
  readonly type: string
  readonly etag: string
}

const asset = (body: string, type: string): Asset => ({
  body,
  type,
  etag: `"${new Bun.CryptoHasher("sha256").update(body).digest("hex").slice(0, 32)}"`
})

// Nothing may come from another host: scripts, styles, data and the event stream are all this origin's. Inline
// styles are allowed because the chart library positions its canvases with them.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>candlekeep</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/style.css">
<script type="module" src="/dashboard/app.js"></script>
</head>
<body>
<header>
  <h1>candlekeep</h1>
  <form id="controls" aria-label="Chart">
    <label>Symbol <select id="symbol" name="symbol"></select></label>
    <label>Timeframe <select id="timeframe" name="timeframe"></select></label>
    <label><input type="checkbox" id="fill"> fill missing bars (previous close)</label>
    <button type="button" id="latest">Latest</button>
  </form>
  <span id="live" role="status" aria-live="polite">○ connecting…</span>
</header>
<main>
  <section id="chart-section" aria-labelledby="chart-title">
    <h2 id="chart-title">Chart</h2>
    <div id="chart" tabindex="0" role="img" aria-label="Candlestick chart; arrow keys scroll, + and - zoom"><div id="gap-bands" aria-hidden="true"></div></div>
    <p id="chart-status" role="status" aria-live="polite"></p>
    <div id="gap-legend"><span class="swatch open"></span> open gap <span class="swatch filled"></span> filled <span class="swatch unfillable"></span> unfillable <span class="swatch hollow"></span> stand-in (fill)</div>
    <div id="gap-detail" hidden><h3>Gap</h3><dl></dl><pre></pre><button type="button" id="gap-close">Close</button></div>
    <details id="gap-list-box"><summary>Gaps of this symbol</summary><ul id="gap-list"></ul></details>
  </section>
  <section id="streams-section" aria-labelledby="streams-title">
    <h2 id="streams-title">Streams</h2>
    <div class="scroll"><table id="streams">
      <thead><tr><th scope="col">stream</th><th scope="col">state</th><th scope="col">watermark</th><th scope="col">lag</th><th scope="col">last error</th><th scope="col">owner</th><th scope="col">history from</th><th scope="col">plan delay</th><th scope="col">actions</th></tr></thead>
      <tbody></tbody>
    </table></div>
    <p id="streams-status" role="status" aria-live="polite"></p>
  </section>
  <section id="quality-section" aria-labelledby="quality-title">
    <h2 id="quality-title">Quality (M1 completeness by month)</h2>
    <div id="quality" class="scroll"></div>
  </section>
  <section id="broker-section" aria-labelledby="broker-title" hidden>
    <h2 id="broker-title">Broker</h2>
    <div id="broker"></div>
    <div id="broker-chart"></div>
  </section>
</main>
<dialog id="token-dialog">
  <form method="dialog">
    <p id="token-reason">This action needs the API token.</p>
    <label>Token <input type="password" id="token-input" autocomplete="off" required></label>
    <menu><button value="cancel" formnovalidate>Cancel</button> <button value="ok" id="token-ok">Use token</button></menu>
  </form>
</dialog>
</body>
</html>
`

const html = asset(page, "text/html; charset=utf-8")

/** The bundled script and stylesheet are read once, on the first request that needs them. */
let assets: Promise<{ readonly script: Asset; readonly style: Asset }> | undefined
const loadAssets = () =>
  (assets ??= import("./dashboard-asset.ts").then((m) => ({
    script: asset(m.dashboardScript, "text/javascript; charset=utf-8"),
    style: asset(m.dashboardStyle, "text/css; charset=utf-8")
  })))

/** 304 when the browser holds these bytes already; else the file, revalidated on each use (`no-cache`). */
const serve = (c: Context, file: Asset, headers: Record<string, string> = {}) => {
  const common = { ETag: file.etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff", ...headers }
  const match = c.req.header("if-none-match")
  if (match !== undefined && match.split(",").some((tag) => tag.trim().replace(/^W\//, "") === file.etag)) return c.body(null, 304, common)
  return c.body(file.body, 200, { "Content-Type": file.type, ...common })
}

/**
 * The dashboard: `GET /` (the page), `/dashboard/app.js` (its script, lightweight-charts bundled in) and
 * `/dashboard/style.css`. Public like `/openapi.json`: the page holds no data; it asks the API, with the
 * token the user gives when one is needed.
 */
export const dashboardRoutes = (app: Hono) => {
  app.get("/", (c) => serve(c, html, { "Content-Security-Policy": contentSecurityPolicy, "Referrer-Policy": "no-referrer" }))
  app.get("/dashboard/app.js", async (c) => serve(c, (await loadAssets()).script))
  app.get("/dashboard/style.css", async (c) => serve(c, (await loadAssets()).style))
}
