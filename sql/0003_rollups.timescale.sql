-- TimescaleDB only: M5 → M15 → M30 → H1 as stacked continuous aggregates over the M1 bars.
-- UTC buckets only: timezone-bucketed continuous aggregates have open upstream bugs with bulk upserts,
-- so H4 and D1 (whose day may start at 17:00 New York) are built from H1 at query time.
-- materialized_only: a bucket shows what the last refresh wrote, the same as the plain-PostgreSQL tables.

CREATE MATERIALIZED VIEW IF NOT EXISTS candles_m5
WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
SELECT symbol,
       time_bucket(INTERVAL '5 minutes', ts) AS ts,
       first(open, ts) AS open, max(high) AS high, min(low) AS low, last(close, ts) AS close,
       sum(volume) AS volume, count(*) AS bars
FROM candles
WHERE timeframe = 'M1'
GROUP BY symbol, time_bucket(INTERVAL '5 minutes', ts)
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS candles_m15
WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
SELECT symbol,
       time_bucket(INTERVAL '15 minutes', ts) AS ts,
       first(open, ts) AS open, max(high) AS high, min(low) AS low, last(close, ts) AS close,
       sum(volume) AS volume, sum(bars)::bigint AS bars
FROM candles_m5
GROUP BY symbol, time_bucket(INTERVAL '15 minutes', ts)
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS candles_m30
WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
SELECT symbol,
       time_bucket(INTERVAL '30 minutes', ts) AS ts,
       first(open, ts) AS open, max(high) AS high, min(low) AS low, last(close, ts) AS close,
       sum(volume) AS volume, sum(bars)::bigint AS bars
FROM candles_m15
GROUP BY symbol, time_bucket(INTERVAL '30 minutes', ts)
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS candles_h1
WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
SELECT symbol,
       time_bucket(INTERVAL '1 hour', ts) AS ts,
       first(open, ts) AS open, max(high) AS high, min(low) AS low, last(close, ts) AS close,
       sum(volume) AS volume, sum(bars)::bigint AS bars
FROM candles_m30
GROUP BY symbol, time_bucket(INTERVAL '1 hour', ts)
WITH NO DATA;
