-- customer_stats: running counts per customer (an order placed and then paid counts in both).
CREATE TABLE customers (
  customer_id          TEXT    NOT NULL PRIMARY KEY,
  orders_created       INTEGER NOT NULL DEFAULT 0,
  orders_placed        INTEGER NOT NULL DEFAULT 0,
  orders_paid          INTEGER NOT NULL DEFAULT 0,
  orders_shipped       INTEGER NOT NULL DEFAULT 0,
  orders_cancelled     INTEGER NOT NULL DEFAULT 0,
  lifetime_value_cents INTEGER NOT NULL DEFAULT 0 -- sum of paid amounts
) WITHOUT ROWID;
