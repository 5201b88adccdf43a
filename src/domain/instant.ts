/**
 * Reading an instant as a person writes it: `2021-01-03`, `2021-01-03T22:00`, `2021-01-03T22:00:00.5Z`,
 * `…+02:00`. `Date.parse` rolls an impossible date over (`2021-02-30` becomes March 2nd): here every field
 * must name a real day and time, or the text is not an instant.
 */
const isoPattern = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-](\d{2}):(\d{2}))?)?$/

const daysInMonth = (year: number, month: number): number => new Date(Date.UTC(year, month, 0)).getUTCDate()

/** Unix ms of an ISO 8601 date or instant (no zone = UTC), or null when it is malformed or names no real day or time. */
export const parseIsoInstant = (text: string): number | null => {
  const match = isoPattern.exec(text)
  if (match === null) return null
  const [, y, mo, d, h = "0", mi = "0", s = "0", fraction = "", zone, zh = "0", zm = "0"] = match
  const year = Number(y)
  const month = Number(mo)
  const day = Number(d)
  const hour = Number(h)
  const minute = Number(mi)
  const second = Number(s)
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null
  if (hour > 23 || minute > 59 || second > 59 || Number(zh) > 23 || Number(zm) > 59) return null
  const millis = fraction === "" ? 0 : Math.floor(Number(`0.${fraction}`) * 1000)
  const offset = zone === undefined || zone === "Z" ? 0 : (zone.startsWith("-") ? -1 : 1) * (Number(zh) * 60 + Number(zm)) * 60_000
  const utc = new Date(0)
  utc.setUTCFullYear(year, month - 1, day)
  utc.setUTCHours(hour, minute, second, millis)
  return utc.getTime() - offset
}
