CREATE TABLE counter_totals (
  counter_id TEXT    NOT NULL PRIMARY KEY,
  value      INTEGER NOT NULL
) WITHOUT ROWID;
