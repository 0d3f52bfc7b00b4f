-- jetsource's own tables, created in every projection database before the projection's own
-- migrations (issue 3). Each projection owns its database file; these tables are written in the
-- same transactions as the read model, so they are exactly as durable as the read model itself.

-- One row per projection kept in this database: where it stands, for status and restarts.
CREATE TABLE projection_state (
  projection     TEXT    NOT NULL PRIMARY KEY, -- the projection's declared name
  version        INTEGER NOT NULL,             -- the projection's declared version the read model
                                               -- was built with; a different declared version
                                               -- means a rebuild
  stream         TEXT    NOT NULL,             -- the JetStream stream it follows
  consumer       TEXT    NOT NULL,             -- its durable pull consumer's name
  max_sequence   INTEGER NOT NULL DEFAULT 0,   -- highest stream sequence committed here; workers
                                               -- commit in parallel, so lower sequences of other
                                               -- aggregates may still be in flight (the resume
                                               -- point is the consumer's ack floor + dedup)
  applied_sequence INTEGER NOT NULL DEFAULT 0, -- every message of the consumer at or below it
                                               -- is committed here (or dead-lettered): the
                                               -- read-your-writes mark and the resume point
                                               -- when the consumer has to be recreated
  events_applied INTEGER NOT NULL DEFAULT 0,   -- events committed, skipped (unhandled) ones too
  events_per_s   REAL    NOT NULL DEFAULT 0,   -- recent apply rate, written by the projector
  status         TEXT    NOT NULL DEFAULT 'live'
                 CHECK (status IN ('live', 'rebuilding', 'stopped')), -- what it is doing
  updated_at     TEXT    NOT NULL              -- UTC ISO 8601 of the last commit that touched it
) WITHOUT ROWID;

-- Dedup, bounded: one row per aggregate (not per event), the last applied position. A message
-- at or below `version` is a duplicate (skipped and acked); one above version + 1 is a gap and
-- waits until the missing events arrive. Written in the transaction that applies the events.
CREATE TABLE applied_versions (
  aggregate_type TEXT    NOT NULL, -- e.g. "Order" (subject token)
  aggregate_id   TEXT    NOT NULL, -- e.g. "ord-42" (subject token)
  version        INTEGER NOT NULL, -- version of the aggregate's last applied event
  sequence       INTEGER NOT NULL, -- stream sequence of the message (commit) that carried it
  PRIMARY KEY (aggregate_type, aggregate_id)
) WITHOUT ROWID;

-- Dead letters: a poison message (a handler failed, or a handled event could not be decoded)
-- and, behind it, every later message of the same aggregate, parked so that its order is kept
-- while other aggregates flow. Retry re-applies an aggregate's rows in sequence order; skip
-- marks the poison one as done (its version counts as applied) and releases the parked ones.
-- A row holds the whole message, so a retry does not need the stream to still have it.
CREATE TABLE dead_letters (
  sequence       INTEGER NOT NULL PRIMARY KEY, -- stream sequence of the message
  aggregate_type TEXT    NOT NULL,             -- the aggregate it belongs to ...
  aggregate_id   TEXT    NOT NULL,             -- ... whose later messages are parked behind it
  first_version  INTEGER NOT NULL,             -- version of the message's first event
  last_version   INTEGER NOT NULL,             -- version of its last event
  kind           TEXT    NOT NULL CHECK (kind IN ('poison', 'parked')),
                                               -- poison: it failed; parked: waits behind one
  event_type     TEXT,                         -- the event type that failed (NULL when parked
                                               -- or when the message as a whole is undecodable)
  error          TEXT,                         -- the error ("decode_failed: ..."); NULL if parked
  subject        TEXT    NOT NULL,             -- the message's subject
  headers        TEXT    NOT NULL,             -- its headers, as a JSON object
  payload        BLOB    NOT NULL,             -- its body, byte for byte
  attempts       INTEGER NOT NULL DEFAULT 1,   -- times it was tried (retries included)
  first_failed_at TEXT   NOT NULL,             -- UTC ISO 8601 when it was parked
  last_failed_at TEXT    NOT NULL              -- UTC ISO 8601 of the last attempt
);

-- Parked messages of one aggregate, in order (retry, and "is this aggregate parked?").
CREATE INDEX dead_letters_by_aggregate ON dead_letters (aggregate_type, aggregate_id, sequence);
