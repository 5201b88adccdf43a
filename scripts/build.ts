/**
 * `npm run build`: compiles the service into one executable that carries everything it runs on (the code, the SQL
 * migrations, PGlite's WASM and data bundle, the TimescaleDB extension) and stamps it with the commit it was built from.
 *
 *   bun scripts/build.ts [--target bun-linux-x64|bun-linux-arm64|bun-darwin-arm64|…] [--outfile dist/candlekeep]
 *
 * The commit is BUILD_COMMIT when set (a Docker build has no .git), else `git rev-parse --short HEAD`, else "unknown".
 * Prints a table then one JSON line.
 */
import { statSync } from "node:fs"
import { parseArgs } from "node:util"

const { values } = parseArgs({ options: { target: { type: "string" }, outfile: { type: "string" } } })
const outfile = values.outfile ?? (values.target ? `dist/candlekeep-${values.target.replace(/^bun-/, "")}` : "dist/candlekeep")

const gitCommit = () => {
  if (Bun.which("git") === null) return null
  const git = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { stderr: "ignore" })
  if (!git.success) return null
  const dirty = Bun.spawnSync(["git", "status", "--porcelain", "--untracked-files=no"], { stderr: "ignore" }).stdout.toString().trim() !== ""
  return `${git.stdout.toString().trim()}${dirty ? "-dirty" : ""}`
}
const commit = process.env.BUILD_COMMIT?.trim() || gitCommit() || "unknown"
if (!/^[\w.-]{1,64}$/.test(commit)) throw new Error(`BUILD_COMMIT ${JSON.stringify(commit)} is not a commit id`)

const started = performance.now()
const build = Bun.spawnSync(
  [
    process.execPath, "build", "--compile", "src/main.ts",
    "--outfile", outfile,
    "--define", `BUILD_COMMIT=${JSON.stringify(commit)}`,
    ...(values.target ? ["--target", values.target] : [])
  ],
  { stdout: "inherit", stderr: "inherit" }
)
const seconds = Math.round((performance.now() - started) / 100) / 10
if (!build.success) {
  console.log(JSON.stringify({ build: outfile, status: "failed", target: values.target ?? "host", commit, seconds }))
  process.exit(build.exitCode ?? 1)
}
const bytes = statSync(outfile).size
console.log(`${outfile}  ${(bytes / 2 ** 20).toFixed(1)} MiB  commit ${commit}  ${seconds} s`)
console.log(JSON.stringify({ build: outfile, status: "ok", target: values.target ?? "host", commit, bytes, seconds }))
