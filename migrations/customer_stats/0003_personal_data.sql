-- customer_stats: the customer's name and e-mail (personal data, from OrderCreated schema 2; the
-- latest given) and whether they were forgotten (CustomerForgotten: both NULL from then on).
ALTER TABLE customers ADD COLUMN name TEXT;
ALTER TABLE customers ADD COLUMN email TEXT;
ALTER TABLE customers ADD COLUMN forgotten INTEGER NOT NULL DEFAULT 0;
