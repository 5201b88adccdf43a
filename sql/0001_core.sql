-- The tables every flavour has: plain PostgreSQL and TimescaleDB alike.
-- Times are timestamptz in UTC; a bar's `ts` is its open time.

-- Instruments as configured; the config file is the source of truth, this records what the store has seen.
CREATE TABLE IF NOT EXISTS symbols (
  symbol           text PRIMARY KEY,
  ticker           text NOT NULL,
  digits           smallint NOT NULL CHECK (digits BETWEEN 0 AND 10),
  instrument_class text NOT NULL CHECK (instrument_class IN ('forex', 'metal', 'crypto')),
  updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Raw bars as the vendor sent them (after validation). double precision: a JSON number round-trips exactly.
CREATE TABLE IF NOT EXISTS candles (
  symbol      text NOT NULL,
  timeframe   text NOT NULL CHECK (timeframe IN ('M1', 'M5', 'M15', 'M30', 'H1', 'H4', 'D1')),
  ts          timestamptz NOT NULL,
  open        double precision NOT NULL,
  high        double precision NOT NULL,
  low         double precision NOT NULL,
  close       double precision NOT NULL,
  volume      double precision NOT NULL,
  vwap        double precision,
  trades      bigint,
  source      text NOT NULL CHECK (source IN ('massive', 'import', 'metaapi')),
  ingested_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (symbol, timeframe, ts)
);

-- One row per stream (symbol × timeframe): where it is, and how it is doing.
CREATE TABLE IF NOT EXISTS sync_state (
  symbol               text NOT NULL,
  timeframe            text NOT NULL,
  status               text NOT NULL DEFAULT 'starting'
                       CHECK (status IN ('starting', 'backfilling', 'live', 'degraded', 'failed', 'stopped')),
  -- Every bar with ts < watermark has been asked for and stored; never passes a range that failed.
  watermark            timestamptz,
  last_success_at      timestamptz,
  last_error           text,
  consecutive_failures integer NOT NULL DEFAULT 0,
  bars_stored          bigint NOT NULL DEFAULT 0,
  owner                text,
  updated_at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (symbol, timeframe)
);

-- Every range asked of a source, and what came back: the evidence behind "unfillable".
CREATE TABLE IF NOT EXISTS fetch_log (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  symbol        text NOT NULL,
  timeframe     text NOT NULL,
  purpose       text NOT NULL CHECK (purpose IN ('backfill', 'sync', 'gap_fill', 'verify', 'import', 'compare')),
  range_from    timestamptz NOT NULL,
  range_to      timestamptz NOT NULL,
  bars_received integer NOT NULL DEFAULT 0,
  request_id    text,
  status        text NOT NULL CHECK (status IN ('ok', 'empty', 'error')),
  http_status   integer,
  error         text,
  requested_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS fetch_log_stream_range ON fetch_log (symbol, timeframe, range_from);

-- Runs of missing bars inside open sessions; gap_start and gap_end are open times of the first and last missing bar.
CREATE TABLE IF NOT EXISTS data_gaps (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  symbol          text NOT NULL,
  timeframe       text NOT NULL,
  gap_start       timestamptz NOT NULL,
  gap_end         timestamptz NOT NULL CHECK (gap_end >= gap_start),
  missing_bars    integer NOT NULL CHECK (missing_bars > 0),
  status          text NOT NULL DEFAULT 'detected'
                  CHECK (status IN ('detected', 'filling', 'filled', 'partially_filled', 'unfillable')),
  attempts        integer NOT NULL DEFAULT 0,
  last_attempt_at timestamptz,
  evidence        jsonb,
  detected_at     timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (symbol, timeframe, gap_start)
);

-- Quarantine: a bar that failed a rule, with the rule's name and the raw values. Nothing is dropped silently.
CREATE TABLE IF NOT EXISTS rejected_candles (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  symbol      text NOT NULL,
  timeframe   text NOT NULL,
  ts          timestamptz NOT NULL,
  rule        text NOT NULL,
  detail      text NOT NULL,
  raw         jsonb NOT NULL,
  source      text NOT NULL,
  rejected_at timestamptz NOT NULL DEFAULT now(),
  -- A page fetched twice quarantines its bad bar once.
  UNIQUE (symbol, timeframe, ts, rule)
);

-- The broker's bid/ask as sampled through MetaApi.
CREATE TABLE IF NOT EXISTS broker_quotes (
  account_id    text NOT NULL,
  symbol        text NOT NULL,
  broker_symbol text NOT NULL,
  ts            timestamptz NOT NULL,
  bid           double precision NOT NULL,
  ask           double precision NOT NULL,
  broker_time   text,
  PRIMARY KEY (account_id, symbol, ts)
);
