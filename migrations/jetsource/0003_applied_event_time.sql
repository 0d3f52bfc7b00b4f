-- How old the applied events are (issue 16): the Es-Timestamp of the newest commit (highest stream
-- sequence) a group commit wrote, recorded with the mark, so that status can tell the lag in
-- seconds ("now minus the time of the last applied event") as well as in messages.
ALTER TABLE projection_state ADD COLUMN applied_event_time TEXT NOT NULL DEFAULT '';
                                               -- RFC 3339 UTC as the writer stamped it
                                               -- ("2026-11-22T11:42:50.462123Z"); '' = none yet
