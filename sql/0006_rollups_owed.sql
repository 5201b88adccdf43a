-- Rollup buckets a write has made owed: one row per (symbol, UTC hour) whose M5 → H1 rollups must be rebuilt.
-- A page records its hours in the same transaction as its bars, so a crash between the write and the refresh
-- leaves the debt behind instead of a stale rollup; whoever pays next (a command, or serve at start-up and
-- every minute) rebuilds those hours bottom-up and then deletes exactly the rows it read.
CREATE SEQUENCE IF NOT EXISTS rollups_owed_seq;

CREATE TABLE IF NOT EXISTS rollups_owed (
  symbol  text NOT NULL,
  hour    timestamptz NOT NULL,
  -- Taken anew by every write to the hour: a payer deletes a row only if seq is still the one it read,
  -- so bars written while it was paying stay owed.
  seq     bigint NOT NULL,
  owed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (symbol, hour)
);
