-- order_summary: the tables become STRICT, so a sum that leaves 64-bit integers (SQLite would
-- turn it into a REAL) is a constraint error that dead-letters its event, never a wrong total.
-- A file already holding such a REAL fails here: rebuild it (`projections rebuild`).
CREATE TABLE orders_strict (
  order_id      TEXT    NOT NULL PRIMARY KEY,
  customer_id   TEXT    NOT NULL,
  status        TEXT    NOT NULL CHECK (status IN ('draft', 'placed', 'paid', 'shipped', 'cancelled')),
  item_count    INTEGER NOT NULL DEFAULT 0, -- sum of the lines' quantities
  total_cents   INTEGER NOT NULL DEFAULT 0, -- sum of qty * unit price (kept when cancelled)
  version       INTEGER NOT NULL,           -- events of the order applied
  cancel_reason TEXT
) STRICT, WITHOUT ROWID;
INSERT INTO orders_strict (order_id, customer_id, status, item_count, total_cents, version,
                           cancel_reason)
  SELECT order_id, customer_id, status, item_count, total_cents, version, cancel_reason FROM orders;
DROP TABLE orders;
ALTER TABLE orders_strict RENAME TO orders;
CREATE INDEX orders_by_status ON orders (status);
CREATE INDEX orders_by_customer ON orders (customer_id);

CREATE TABLE order_lines_strict (
  order_id         TEXT    NOT NULL,
  sku              TEXT    NOT NULL,
  qty              INTEGER NOT NULL,
  unit_price_cents INTEGER NOT NULL,
  PRIMARY KEY (order_id, sku)
) STRICT, WITHOUT ROWID;
INSERT INTO order_lines_strict (order_id, sku, qty, unit_price_cents)
  SELECT order_id, sku, qty, unit_price_cents FROM order_lines;
DROP TABLE order_lines;
ALTER TABLE order_lines_strict RENAME TO order_lines;
