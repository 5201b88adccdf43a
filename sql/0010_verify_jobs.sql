-- POST /api/data/verify runs as a job like the others: compare every rollup bucket with a fresh aggregation
-- of the stored M1 bars and rebuild the ones that differ.
ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check CHECK (kind IN ('sync', 'full_sync', 'gap_fill', 'verify'));
