-- The test projection "balances": one row per bank account.
CREATE TABLE balances (
  account_id    TEXT    NOT NULL PRIMARY KEY,
  owner         TEXT    NOT NULL,
  balance_cents INTEGER NOT NULL,
  version       INTEGER NOT NULL, -- the account version of the last event applied
  deposits      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
