-- TimescaleDB only: time partitioning and the columnstore for the two time-series tables.
CREATE EXTENSION IF NOT EXISTS timescaledb;

-- A week of minute bars per chunk: ~10k rows per symbol, small enough to compress soon after the week closes.
SELECT create_hypertable('candles', by_range('ts', INTERVAL '7 days'), if_not_exists => TRUE, migrate_data => TRUE);

-- Segment by the stream so a compressed chunk answers one symbol's range without reading the others;
-- ts DESC because the newest bars are read most. (timeframe joins symbol: it is part of the key.)
ALTER TABLE candles SET (
  timescaledb.compress,
  timescaledb.compress_segmentby = 'symbol, timeframe',
  timescaledb.compress_orderby = 'ts DESC'
);
-- Late corrections still land in compressed chunks (upserts into the columnstore are supported).
SELECT add_compression_policy('candles', compress_after => INTERVAL '30 days', if_not_exists => TRUE);

SELECT create_hypertable('broker_quotes', by_range('ts', INTERVAL '1 day'), if_not_exists => TRUE, migrate_data => TRUE);
