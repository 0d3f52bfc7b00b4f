-- product_sales: the table becomes STRICT, so a sum that leaves 64-bit integers (SQLite would
-- turn it into a REAL) is a constraint error that dead-letters its event, never a wrong total.
-- A file already holding such a REAL fails here: rebuild it (`projections rebuild`).
CREATE TABLE products_strict (
  sku           TEXT    NOT NULL PRIMARY KEY,
  units_sold    INTEGER NOT NULL DEFAULT 0,
  revenue_cents INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;
INSERT INTO products_strict (sku, units_sold, revenue_cents)
  SELECT sku, units_sold, revenue_cents FROM products;
DROP TABLE products;
ALTER TABLE products_strict RENAME TO products;
