-- One request budget per Massive API key, shared by every instance on this database (the vendor counts
-- requests per key, not per process). Each row is one place in the key's sliding 60 s window, one place per
-- request a minute: a request takes a free place in one UPDATE and holds it until it finishes; the place
-- frees a full window after that. The key itself is never stored.
CREATE TABLE IF NOT EXISTS rate_budget (
  -- The first 16 hex digits of the key's SHA-256: tells keys apart without revealing one.
  key_id    text NOT NULL CHECK (key_id ~ '^[0-9a-f]{16}$'),
  place     integer NOT NULL CHECK (place >= 1),
  -- When the place may be taken again: a window after its request finished or, while the request is in
  -- flight, a window after its lease (its timeout), so a place held by an instance that died frees too.
  free_from timestamptz NOT NULL DEFAULT '-infinity',
  -- How many times the place was taken: a finish names its turn, so a late one cannot shorten the next hold.
  turn      integer NOT NULL DEFAULT 0,
  PRIMARY KEY (key_id, place)
);
