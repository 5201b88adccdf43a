/** Requests to this service's API, with the token the user gave (kept for the browser session only). */

const tokenKey = "candlekeep.token"

export class ApiError extends Error {
  constructor(readonly status: number, readonly body: { readonly error?: string; readonly message?: string; readonly field?: string }) {
    super(body.message ?? `HTTP ${status}`)
  }
}

let asking: Promise<string | null> | null = null

/** Asks for the token once, in a dialog; concurrent callers share the one question. Null when cancelled. */
export const askToken = (reason: string): Promise<string | null> =>
  (asking ??= new Promise<string | null>((resolve) => {
    const dialog = document.getElementById("token-dialog") as HTMLDialogElement
    const input = document.getElementById("token-input") as HTMLInputElement
    document.getElementById("token-reason")!.textContent = reason
    input.value = ""
    dialog.addEventListener(
      "close",
      () => {
        asking = null
        const token = dialog.returnValue === "ok" && input.value.trim() !== "" ? input.value.trim() : null
        if (token !== null) sessionStorage.setItem(tokenKey, token)
        resolve(token)
      },
      { once: true }
    )
    dialog.showModal()
  }))

export const authHeaders = (): Record<string, string> => {
  const token = sessionStorage.getItem(tokenKey)
  return token === null ? {} : { Authorization: `Bearer ${token}` }
}

/** A JSON request; a 401 asks for the token once and tries again with it. */
export const api = async <A>(path: string, init: { readonly method?: "GET" | "POST"; readonly body?: unknown } = {}): Promise<{ readonly status: number; readonly body: A }> => {
  const send = () =>
    fetch(path, {
      method: init.method ?? "GET",
      headers: { ...authHeaders(), ...(init.body === undefined ? {} : { "Content-Type": "application/json" }) },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) })
    })
  let response = await send()
  if (response.status === 401) {
    sessionStorage.removeItem(tokenKey)
    const token = await askToken(init.method === "POST" ? "This action needs the write token (API_TOKEN)." : "Reading needs a token (API_READ_TOKEN or API_TOKEN).")
    if (token !== null) response = await send()
  }
  const body = (await response.json().catch(() => ({ message: `HTTP ${response.status} without a JSON body` }))) as A
  if (!response.ok) throw new ApiError(response.status, body as ApiError["body"])
  return { status: response.status, body }
}
