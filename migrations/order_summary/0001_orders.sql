-- order_summary: one row per order, its lines beside it.
CREATE TABLE orders (
  order_id      TEXT    NOT NULL PRIMARY KEY,
  customer_id   TEXT    NOT NULL,
  status        TEXT    NOT NULL CHECK (status IN ('draft', 'placed', 'paid', 'shipped', 'cancelled')),
  item_count    INTEGER NOT NULL DEFAULT 0, -- sum of the lines' quantities
  total_cents   INTEGER NOT NULL DEFAULT 0, -- sum of qty * unit price (kept when cancelled)
  version       INTEGER NOT NULL,           -- events of the order applied
  cancel_reason TEXT
) WITHOUT ROWID;

CREATE TABLE order_lines (
  order_id         TEXT    NOT NULL,
  sku              TEXT    NOT NULL,
  qty              INTEGER NOT NULL,
  unit_price_cents INTEGER NOT NULL,
  PRIMARY KEY (order_id, sku)
) WITHOUT ROWID;

CREATE INDEX orders_by_status ON orders (status);
CREATE INDEX orders_by_customer ON orders (customer_id);
