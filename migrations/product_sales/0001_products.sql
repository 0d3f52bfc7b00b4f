-- product_sales: per SKU, counted when an order is paid.
CREATE TABLE products (
  sku           TEXT    NOT NULL PRIMARY KEY,
  units_sold    INTEGER NOT NULL DEFAULT 0,
  revenue_cents INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
