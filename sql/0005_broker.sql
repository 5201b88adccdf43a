-- The broker side (MetaApi): where each broker stream is, and the history of its comparisons with the vendor.
-- broker_quotes itself is in 0001 (a hypertable since 0002); its retention follows BROKER_QUOTE_RETENTION_DAYS,
-- set at start-up (a TimescaleDB policy where there is one) and enforced by the sampling loop everywhere.

-- One row per broker stream (account × our symbol): how its quote loop is doing, for /api/data/status.
CREATE TABLE IF NOT EXISTS broker_state (
  account_id           text NOT NULL,
  symbol               text NOT NULL,
  broker_symbol        text NOT NULL,
  status               text NOT NULL DEFAULT 'starting'
                       CHECK (status IN ('starting', 'live', 'degraded', 'failed', 'off')),
  last_error           text,
  consecutive_failures integer NOT NULL DEFAULT 0,
  last_quote_at        timestamptz,
  last_compare_at      timestamptz,
  last_compare_status  text,
  owner                text,
  updated_at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account_id, symbol)
);

-- One row per comparison run, so drift can be followed over days. A window the broker answered with no candle
-- is 'no_broker_data' with null statistics, never a zero difference; a failed run is 'error' with the reason.
CREATE TABLE IF NOT EXISTS broker_comparisons (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account_id        text NOT NULL,
  symbol            text NOT NULL,
  broker_symbol     text NOT NULL,
  -- The window compared: [window_from, window_to), whole UTC minutes.
  window_from       timestamptz NOT NULL,
  window_to         timestamptz NOT NULL CHECK (window_to > window_from),
  compared_at       timestamptz NOT NULL,
  status            text NOT NULL CHECK (status IN ('ok', 'no_broker_data', 'no_vendor_data', 'error')),
  samples           integer NOT NULL DEFAULT 0,
  vendor_minutes    integer NOT NULL DEFAULT 0,
  broker_minutes    integer NOT NULL DEFAULT 0,
  vendor_only       integer NOT NULL DEFAULT 0,
  broker_only       integer NOT NULL DEFAULT 0,
  one_sided_share   double precision,
  -- broker close − vendor close, in price and in pips.
  mean_diff         double precision,
  max_abs_diff      double precision,
  std_diff          double precision,
  mean_diff_pips    double precision,
  max_abs_diff_pips double precision,
  std_diff_pips     double precision,
  error             text
);
CREATE INDEX IF NOT EXISTS broker_comparisons_stream_at ON broker_comparisons (account_id, symbol, compared_at);
