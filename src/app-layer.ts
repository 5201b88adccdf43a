import { FetchHttpClient } from "@effect/platform"
import { Layer } from "effect"
import { AppConfig, type AppConfigShape } from "./config.ts"
import { Backfill } from "./pipeline/backfill.ts"
import { Broker } from "./pipeline/broker.ts"
import { Gaps } from "./pipeline/gaps.ts"
import { Importer } from "./pipeline/import.ts"
import { Ingest } from "./pipeline/ingest.ts"
import { MassiveClient } from "./sources/massive/client.ts"
import { MassiveRateBudget } from "./sources/massive/rate-limiter.ts"
import { MetaApiClient } from "./sources/metaapi/client.ts"
import { BrokerRepo } from "./store/broker-repo.ts"
import { CandleStore } from "./store/candle-store.ts"
import { DatabaseLive } from "./store/database.ts"
import { GapRepo } from "./store/gap-repo.ts"
import { JobRepo } from "./store/job-repo.ts"
import { QuarantineRepo } from "./store/quarantine-repo.ts"
import { Rollups } from "./store/rollups.ts"
import { RateBudgetRepo } from "./store/rate-budget-repo.ts"
import { SyncRepo } from "./store/sync-repo.ts"
import { StreamEvents } from "./supervisor/events.ts"
import { StreamControl } from "./supervisor/stream-loop.ts"

/** Every service of the application over one configuration: composed here once, for main.ts and the tests. */
export const appLayer = (config: AppConfigShape) =>
  Layer.mergeAll(Gaps.Default, Importer.Default, Broker.Default, StreamEvents.Default, StreamControl.Default).pipe(
    Layer.provideMerge(Backfill.Default),
    Layer.provideMerge(Ingest.Default),
    Layer.provideMerge(Layer.mergeAll(
        MassiveClient.Default,
        MetaApiClient.Default,
        CandleStore.Default,
        Rollups.Default,
        SyncRepo.Default,
        QuarantineRepo.Default,
        GapRepo.Default,
        JobRepo.Default,
        BrokerRepo.Default
      )),
    // The vendor's per-minute budget lives in the database: every instance on it shares one per key.
    Layer.provideMerge(Layer.effect(MassiveRateBudget, RateBudgetRepo).pipe(Layer.provide(RateBudgetRepo.Default))),
    Layer.provideMerge(DatabaseLive),
    Layer.provideMerge(FetchHttpClient.layer),
    Layer.provideMerge(Layer.succeed(AppConfig, config))
  )

export type AppServices = Layer.Layer.Success<ReturnType<typeof appLayer>>
