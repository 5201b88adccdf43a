/** How the page writes instants and durations: UTC, to the minute. */
export const utc = (ms: number | string | null | undefined): string => {
  if (ms === null || ms === undefined) return "—"
  const date = new Date(ms)
  return Number.isNaN(date.getTime()) ? "—" : date.toISOString().slice(0, 16).replace("T", " ")
}

export const duration = (seconds: number | null | undefined): string => {
  if (seconds === null || seconds === undefined) return "—"
  if (seconds < 120) return `${seconds} s`
  if (seconds < 7_200) return `${Math.round(seconds / 60)} min`
  if (seconds < 172_800) return `${Math.round(seconds / 3_600)} h`
  return `${Math.round(seconds / 86_400)} d`
}

export const timeframeMillis: Readonly<Record<string, number>> = {
  M1: 60_000,
  M5: 300_000,
  M15: 900_000,
  M30: 1_800_000,
  H1: 3_600_000,
  H4: 14_400_000,
  D1: 86_400_000
}

/** `<tag class>text</tag>`, without innerHTML (no server text is ever parsed as markup). */
export const element = <K extends keyof HTMLElementTagNameMap>(tag: K, props: { readonly className?: string; readonly text?: string } = {}, ...children: ReadonlyArray<Node>): HTMLElementTagNameMap[K] => {
  const node = document.createElement(tag)
  if (props.className !== undefined) node.className = props.className
  if (props.text !== undefined) node.textContent = props.text
  node.append(...children)
  return node
}

/** A colour the stylesheet defines for the current scheme (light or dark). */
export const themeColour = (name: string) => getComputedStyle(document.documentElement).getPropertyValue(name).trim()

/** The options every chart on the page shares, for the current scheme. */
export const chartTheme = () => {
  const grid = themeColour("--grid")
  return {
    layout: { background: { color: themeColour("--bg") }, textColor: themeColour("--fg"), attributionLogo: false },
    grid: { vertLines: { color: grid }, horzLines: { color: grid } }
  }
}

/** Runs `apply` whenever the system switches between light and dark. */
export const onSchemeChange = (apply: () => void) => window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", apply)
