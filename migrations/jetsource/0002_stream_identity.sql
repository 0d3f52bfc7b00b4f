-- Which stream's history a read model was built from (issue 10): the stream's creation time,
-- recorded with the mark. A stream deleted and created again (or a server that came back on an
-- empty store) has another creation time, and its sequences start over: the projector refuses to
-- apply it onto this file instead of silently skipping everything up to the old mark.
ALTER TABLE projection_state ADD COLUMN stream_created INTEGER NOT NULL DEFAULT 0;
                                               -- ns since the epoch (JetStream stream info
                                               -- "created"); 0 = not recorded yet
