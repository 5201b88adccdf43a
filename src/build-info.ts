import manifest from "../package.json" with { type: "json" }

/** Set by `npm run build` (scripts/build.ts, `--define`); absent when running from source. */
declare const BUILD_COMMIT: string | undefined

/** The release, from package.json, and the commit a binary was built from ("source" when run with `bun src/main.ts`). */
export const buildInfo = {
  version: manifest.version,
  commit: typeof BUILD_COMMIT === "string" ? BUILD_COMMIT : "source"
} as const

/** `0.1.0 (commit 1a2b3c4)`: what `--version` prints. */
export const versionLine = `${buildInfo.version} (commit ${buildInfo.commit})`
