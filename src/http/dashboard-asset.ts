import { bundleDashboard } from "../dashboard/bundle.ts" with { type: "macro" }
import style from "../dashboard/style.css" with { type: "text" }

/** The dashboard's script, bundled when this file is transpiled (loaded lazily, so CLI commands never pay for it). */
export const dashboardScript: string = bundleDashboard()
export const dashboardStyle: string = style
