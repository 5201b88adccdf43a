import { askToken, authHeaders } from "./api.ts"

export interface LiveEvent {
  readonly type: string
  readonly stream?: string
  readonly status?: string
  readonly error?: string
  readonly watermark?: number
  readonly stored?: number
  readonly at?: number
  readonly job?: string
  readonly detail?: string
}

/**
 * Reads `/api/data/events` with fetch (EventSource cannot send a token), hands each event on, and reconnects
 * with backoff when the line drops; `onConnected` runs on every (re)connection so callers can catch up.
 */
export const followEvents = (onEvent: (event: LiveEvent) => void, onConnected: () => void, onLine: (connected: boolean) => void) => {
  let delay = 1_000
  const connect = async (): Promise<void> => {
    try {
      const response = await fetch("/api/data/events", { headers: authHeaders() })
      if (response.status === 401) {
        await askToken("The live feed needs a read token (API_READ_TOKEN or API_TOKEN).")
        throw new Error("unauthorized")
      }
      if (!response.ok || response.body === null) throw new Error(`HTTP ${response.status}`)
      delay = 1_000
      // The server subscribes before it answers: from here on no event is missed.
      onLine(true)
      onConnected()
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
      let buffer = ""
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        buffer += value
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const data = block
            .split("\n")
            .filter((line) => line.startsWith("data: "))
            .map((line) => line.slice(6))
            .join("\n")
          if (data !== "") {
            try {
              onEvent(JSON.parse(data) as LiveEvent)
            } catch {
              // a line that is not JSON (a future event kind) is not ours to handle
            }
          }
        }
      }
    } catch {
      // dropped or refused: try again below
    }
    onLine(false)
    setTimeout(() => void connect(), delay)
    delay = Math.min(30_000, delay * 2)
  }
  void connect()
}
