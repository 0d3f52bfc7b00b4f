-- The benchmark projection: one row per account, upserted per deposit.
CREATE TABLE balances (
  account_id    TEXT    NOT NULL PRIMARY KEY,
  balance_cents INTEGER NOT NULL,
  deposits      INTEGER NOT NULL
) WITHOUT ROWID;
