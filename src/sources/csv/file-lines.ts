import { createReadStream } from "node:fs"
import { createInterface } from "node:readline"
import { pipeline, type Readable } from "node:stream"
import { createGunzip } from "node:zlib"

/**
 * The lines of a `.csv` or `.csv.gz` file, read as a stream: memory stays a few chunks whatever the size.
 * A missing file or a corrupt archive rejects the iteration; stopping early closes the file.
 */
export async function* csvFileLines(path: string): AsyncGenerator<string, void, undefined> {
  const file = createReadStream(path)
  // pipeline forwards a read error to the gunzip stream, which readline then rejects with.
  const input: Readable = path.endsWith(".gz") ? pipeline(file, createGunzip(), () => {}) : file
  const reader = createInterface({ input, crlfDelay: Infinity })
  try {
    yield* reader
  } finally {
    reader.close()
    input.destroy()
    file.destroy()
  }
}
