-- Plain PostgreSQL: the same four rollups as ordinary tables, with the same columns.
-- CandleStore.refreshAggregates rebuilds the touched window bottom-up, as a refresh of the continuous aggregates would.

CREATE TABLE IF NOT EXISTS candles_m5 (
  symbol text NOT NULL,
  ts     timestamptz NOT NULL,
  open   double precision NOT NULL,
  high   double precision NOT NULL,
  low    double precision NOT NULL,
  close  double precision NOT NULL,
  volume double precision NOT NULL,
  bars   bigint NOT NULL,
  PRIMARY KEY (symbol, ts)
);

CREATE TABLE IF NOT EXISTS candles_m15 (
  symbol text NOT NULL,
  ts     timestamptz NOT NULL,
  open   double precision NOT NULL,
  high   double precision NOT NULL,
  low    double precision NOT NULL,
  close  double precision NOT NULL,
  volume double precision NOT NULL,
  bars   bigint NOT NULL,
  PRIMARY KEY (symbol, ts)
);

CREATE TABLE IF NOT EXISTS candles_m30 (
  symbol text NOT NULL,
  ts     timestamptz NOT NULL,
  open   double precision NOT NULL,
  high   double precision NOT NULL,
  low    double precision NOT NULL,
  close  double precision NOT NULL,
  volume double precision NOT NULL,
  bars   bigint NOT NULL,
  PRIMARY KEY (symbol, ts)
);

CREATE TABLE IF NOT EXISTS candles_h1 (
  symbol text NOT NULL,
  ts     timestamptz NOT NULL,
  open   double precision NOT NULL,
  high   double precision NOT NULL,
  low    double precision NOT NULL,
  close  double precision NOT NULL,
  volume double precision NOT NULL,
  bars   bigint NOT NULL,
  PRIMARY KEY (symbol, ts)
);
