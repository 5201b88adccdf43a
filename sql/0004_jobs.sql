-- Work asked for over HTTP (a sync, a full re-sync, a gap fill): kept in the database, so any instance
-- behind a load balancer can answer GET /api/data/jobs/:id, whichever instance took the request.
CREATE TABLE IF NOT EXISTS jobs (
  id          uuid PRIMARY KEY,
  kind        text NOT NULL CHECK (kind IN ('sync', 'full_sync', 'gap_fill')),
  symbol      text NOT NULL,
  timeframe   text NOT NULL,
  status      text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
  -- The latest progress seen (pages, bars, watermark) while it runs; the outcome's numbers once done.
  progress    jsonb,
  result      jsonb,
  error       text,
  -- The instance that took the request.
  instance    text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  started_at  timestamptz,
  finished_at timestamptz
);

-- "What ran lately for this stream?"
CREATE INDEX IF NOT EXISTS jobs_stream_idx ON jobs (symbol, timeframe, created_at DESC);
