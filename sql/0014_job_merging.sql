-- Identical jobs are merged: a POST that asks for what is already queued or running (same kind, stream and
-- arguments) gets that job back instead of starting another. `args` is the request's own arguments, as a
-- canonical JSON text ('' for none); the partial unique index makes the merge hold across instances.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS args text NOT NULL DEFAULT '';

-- Before the index can exist, duplicates already unfinished (the newest of each is kept) are closed.
UPDATE jobs SET status = 'failed', error = 'superseded by an identical job when jobs began to be merged', finished_at = now()
WHERE status IN ('queued', 'running')
  AND id NOT IN (
    SELECT DISTINCT ON (kind, symbol, timeframe, args) id FROM jobs
    WHERE status IN ('queued', 'running')
    ORDER BY kind, symbol, timeframe, args, created_at DESC
  );

CREATE UNIQUE INDEX IF NOT EXISTS jobs_unfinished_once ON jobs (kind, symbol, timeframe, args) WHERE status IN ('queued', 'running');
