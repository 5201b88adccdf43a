import { Data } from "effect"
import { createReadStream } from "node:fs"
import { pipeline, type Readable } from "node:stream"
import { createGunzip } from "node:zlib"

/** The longest line read; a longer one is skipped to its end unbuffered and counted as a bad line. */
export const maxLineBytes = 65_536

/** A line longer than `maxLineBytes`: only its length was kept. */
export class OverlongLine extends Data.TaggedClass("OverlongLine")<{ readonly bytes: number }> {}

/** What a file gives line by line: the text, or the length of a line too long to read. */
export type FileLine = string | OverlongLine

/** The file could not be read to its end (missing, unreadable, a corrupt or truncated archive). */
export class CsvFileBroken extends Data.TaggedError("CsvFileBroken")<{
  readonly file: string
  /** The line being read when the file broke, 1-based: every line before it was given. */
  readonly line: number
  readonly reason: string
}> {
  override get message() {
    return `${this.file}: ${this.reason} (at line ${this.line})`
  }
}

const newline = 0x0a

/**
 * The lines of a `.csv` or `.csv.gz` file, read as a stream: memory stays a few chunks plus one line of at most
 * `maxBytes`, whatever the file holds. A failure to read rejects with `CsvFileBroken`; stopping early closes the file.
 */
export async function* csvFileLines(path: string, maxBytes = maxLineBytes): AsyncGenerator<FileLine, void, undefined> {
  const file = createReadStream(path)
  // pipeline forwards a read error to the gunzip stream, whose iteration then rejects with it.
  const input: Readable = path.endsWith(".gz") ? pipeline(file, createGunzip(), () => {}) : file
  let parts: Array<Buffer> = []
  let length = 0
  let line = 1
  const take = (): FileLine => {
    const text = length > maxBytes ? new OverlongLine({ bytes: length }) : (parts.length === 1 ? parts[0]! : Buffer.concat(parts)).toString("utf8")
    parts = []
    length = 0
    line++
    return text
  }
  try {
    try {
      for await (const chunk of input as AsyncIterable<Buffer>) {
        let at = 0
        while (at < chunk.length) {
          const end = chunk.indexOf(newline, at)
          const stop = end < 0 ? chunk.length : end
          // Past the limit only the count grows: the line's bytes are not kept.
          if (length + (stop - at) <= maxBytes) parts.push(chunk.subarray(at, stop))
          else parts = []
          length += stop - at
          if (end < 0) break
          yield take()
          at = end + 1
        }
      }
    } catch (cause) {
      throw new CsvFileBroken({ file: path, line, reason: cause instanceof Error ? cause.message : String(cause) })
    }
    if (length > 0) yield take()
  } finally {
    input.destroy()
    file.destroy()
  }
}
