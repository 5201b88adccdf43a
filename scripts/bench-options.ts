/** Command-line options of the benchmarks: `--flag value`, else the environment variable, else the default. */
export const option = (flag: string, env: string, fallback: string): string => {
  const at = process.argv.indexOf(flag)
  return (at >= 0 ? process.argv[at + 1] : undefined) ?? process.env[env] ?? fallback
}

/** A positive whole-number option; anything else stops the benchmark with one line naming the flag. */
export const positiveInt = (flag: string, env: string, fallback: number): number => {
  const value = Number(option(flag, env, String(fallback)))
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${flag} expects a positive integer, got ${option(flag, env, "")}`)
  return value
}
