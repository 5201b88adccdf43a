/** The shortest run of a secret's characters that counts as leaking it: a vendor echoing a key's prefix leaks that much. */
export const minSecretFragment = 8

const redacted = "[redacted]"

/**
 * `text` with every run of 8 or more characters that also occurs in `secret` replaced by `[redacted]` — the
 * whole secret, a prefix a vendor echoes back, or any other piece of it. Secrets shorter than that are
 * replaced only whole.
 */
export const redactSecretFragments = (text: string, secret: string | null): string => {
  if (secret === null || secret.length === 0 || text.length === 0) return text
  if (secret.length < minSecretFragment) return text.split(secret).join(redacted)
  const pieces = new Set<string>()
  for (let i = 0; i + minSecretFragment <= secret.length; i++) pieces.add(secret.slice(i, i + minSecretFragment))
  // Mark every character covered by an 8-character window that is a piece of the secret; runs of marks go.
  const covered = new Uint8Array(text.length)
  for (let i = 0; i + minSecretFragment <= text.length; i++) {
    if (pieces.has(text.slice(i, i + minSecretFragment))) covered.fill(1, i, i + minSecretFragment)
  }
  let out = ""
  for (let i = 0; i < text.length; ) {
    if (covered[i] === 0) {
      out += text[i]
      i++
      continue
    }
    while (i < text.length && covered[i] === 1) i++
    out += redacted
  }
  return out
}
