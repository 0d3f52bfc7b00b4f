-- customer_stats: the table becomes STRICT, so a sum that leaves 64-bit integers (SQLite would
-- turn it into a REAL) is a constraint error that dead-letters its event, never a wrong total.
-- A file already holding such a REAL fails here: rebuild it (`projections rebuild`).
CREATE TABLE customers_strict (
  customer_id          TEXT    NOT NULL PRIMARY KEY,
  orders_created       INTEGER NOT NULL DEFAULT 0,
  orders_placed        INTEGER NOT NULL DEFAULT 0,
  orders_paid          INTEGER NOT NULL DEFAULT 0,
  orders_shipped       INTEGER NOT NULL DEFAULT 0,
  orders_cancelled     INTEGER NOT NULL DEFAULT 0,
  lifetime_value_cents INTEGER NOT NULL DEFAULT 0 -- sum of paid amounts
) STRICT, WITHOUT ROWID;
INSERT INTO customers_strict (customer_id, orders_created, orders_placed, orders_paid,
                              orders_shipped, orders_cancelled, lifetime_value_cents)
  SELECT customer_id, orders_created, orders_placed, orders_paid, orders_shipped,
         orders_cancelled, lifetime_value_cents FROM customers;
DROP TABLE customers;
ALTER TABLE customers_strict RENAME TO customers;
