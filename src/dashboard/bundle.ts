/**
 * Bundles the dashboard's browser code (src/dashboard/main.ts, lightweight-charts included) into one minified
 * ES module. Imported as a Bun macro (see src/http/dashboard-asset.ts), so it runs when that file is transpiled:
 * at start-up of `bun src/main.ts` and at `bun build --compile`, which embeds the result in the binary. The CLI
 * is spawned because Bun.build cannot be called from inside a macro.
 */
export function bundleDashboard(): string {
  const entry = new URL("./main.ts", import.meta.url).pathname
  const result = Bun.spawnSync([process.execPath, "build", entry, "--minify", "--target=browser", "--format=esm"], { stdout: "pipe", stderr: "pipe" })
  if (!result.success) throw new Error(`bun build of the dashboard failed: ${result.stderr.toString()}`)
  return result.stdout.toString()
}
