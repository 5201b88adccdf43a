-- What the vendor's plan covers, per stream, as the sync found it: shown on the status page.

-- The first instant the plan answers for (a 403 NOT_AUTHORIZED before it); null until a refusal was met.
-- The watermark starts here: what lies before it cannot be had on this plan.
ALTER TABLE sync_state ADD COLUMN IF NOT EXISTS history_from timestamptz;

-- How many minutes the plan's data trails real time (MASSIVE_DELAY_MINUTES, or 15 once the vendor answered DELAYED);
-- lag is measured from now minus this, since nothing newer can be delivered.
ALTER TABLE sync_state ADD COLUMN IF NOT EXISTS delay_minutes integer;
