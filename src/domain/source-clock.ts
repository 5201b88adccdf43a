/**
 * Exporters' clocks. HistData files are labelled "EST without daylight saving" but behave as UTC−5 while
 * Europe is on winter time and UTC−4 while Europe is on summer time (see shared/data/README.md).
 */

/** Last Sunday of a month at 01:00 UTC: when the European clocks change. */
const lastSundayAt1Utc = (year: number, month: number): number => {
  const lastDay = new Date(Date.UTC(year, month + 1, 0))
  const back = lastDay.getUTCDay()
  return Date.UTC(year, month, lastDay.getUTCDate() - back, 1)
}

/** Whether the instant falls inside European summer time (last Sunday of March → last Sunday of October, 01:00 UTC). */
export const isEuropeanSummerTime = (utcMs: number): boolean => {
  const year = new Date(utcMs).getUTCFullYear()
  return utcMs >= lastSundayAt1Utc(year, 2) && utcMs < lastSundayAt1Utc(year, 9)
}

const hour = 3_600_000

/** A HistData wall-clock time (read as if it were UTC) to the real UTC instant. */
export const histdataToUtc = (fileMs: number): number =>
  isEuropeanSummerTime(fileMs + 5 * hour) ? fileMs + 4 * hour : fileMs + 5 * hour
