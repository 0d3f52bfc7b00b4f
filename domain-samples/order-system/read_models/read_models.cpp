// The order-system read models (see read_models.hpp).
#include <order_system/customer.hpp>
#include <order_system/order.hpp>
#include <order_system/read_models.hpp>
#include <order_system/stream.hpp>

namespace order_system {

using jetsource::projection;
using jetsource::projection_context;
using jetsource::result;

namespace {
// Every order event moves the order's version; status changes are one statement each.
result<void> set_status(projection_context& cx, const char* status) {
  return cx.execute("UPDATE orders SET status = ?2, version = ?3 WHERE order_id = ?1",
                    cx.aggregate_id(), status, cx.version());
}

// qty * unit price of a line. Events come from the stream, not only from this aggregate (which
// refuses such lines): an overflow is an error that dead-letters the event, not undefined
// behaviour. Sums in SQL cannot overflow silently either: the tables are STRICT (migration 0002),
// so a sum SQLite would turn into a REAL is a constraint error.
result<std::int64_t> line_total(std::string_view event, std::int64_t qty, std::int64_t price) {
  std::int64_t total = 0;
  if (__builtin_mul_overflow(qty, price, &total))
    return jetsource::make_error(jetsource::errc::invalid_argument,
                                 "{}: qty {} * unit_price_cents {} overflows 64 bits", event, qty,
                                 price);
  return total;
}

// customer_stats holds personal data (name, e-mail): every write of it runs with secure_delete on,
// so a row's old copies (freed cells, freed pages) are zeroed, not left in the file to be read
// after the customer was forgotten. A per-connection setting: set before each handler's writes.
result<void> secure(projection_context& cx) {
  return cx.execute("PRAGMA secure_delete = ON");
}

// The upsert that counts one more of something for a customer, its text written once per
// column (a handler that formats its SQL per event makes and hashes a new string each time, where
// a fixed text is found by its address in the statement cache).
struct counter {
  std::string upsert;
  explicit counter(std::string_view column)
      : upsert(fmt::format("INSERT INTO customers (customer_id, {0}) VALUES (?1, 1) "
                           "ON CONFLICT (customer_id) DO UPDATE SET {0} = {0} + 1",
                           column)) {}
};
const counter orders_created{"orders_created"}, orders_placed{"orders_placed"},
    orders_paid{"orders_paid"}, orders_shipped{"orders_shipped"},
    orders_cancelled{"orders_cancelled"};

result<void> count(projection_context& cx, const std::string& customer, const counter& c) {
  JETSOURCE_TRY(secure(cx));
  return cx.execute(c.upsert, customer);
}

// The latest name or e-mail given, unless the customer was forgotten (an OrderCreated appended
// before the forget may be applied after it: it never brings the data back).
struct personal_column {
  std::string update;
  explicit personal_column(std::string_view column)
      : update(fmt::format("UPDATE customers SET {} = ?2 WHERE customer_id = ?1 AND forgotten = 0",
                           column)) {}
};
const personal_column name_column{"name"}, email_column{"email"};

result<void> set_personal(projection_context& cx, const std::string& customer,
                          const personal_column& column,
                          const jetsource::personal<std::string>& value) {
  if (!value.has_value()) return jetsource::success();  // not given, or forgotten
  return cx.execute(column.update, customer, value.value());
}
}  // namespace

projection order_summary() {
  return projection("order_summary", 1)
      .follow<order>(orders_stream())
      .on<order_created>([](projection_context& cx, const order_created& e) {
        return cx.execute(
            "INSERT INTO orders (order_id, customer_id, status, version) "
            "VALUES (?1, ?2, 'draft', ?3)",
            cx.aggregate_id(), e.customer_id, cx.version());
      })
      .on<item_added>([](projection_context& cx, const item_added& e) -> result<void> {
        JETSOURCE_TRY(total, line_total(item_added::type_name, e.qty, e.unit_price_cents));
        JETSOURCE_TRY(
            cx.execute("INSERT INTO order_lines (order_id, sku, qty, unit_price_cents) "
                       "VALUES (?1, ?2, ?3, ?4) "
                       "ON CONFLICT (order_id, sku) DO UPDATE SET qty = qty + excluded.qty",
                       cx.aggregate_id(), e.sku, e.qty, e.unit_price_cents));
        return cx.execute(
            "UPDATE orders SET item_count = item_count + ?2, total_cents = total_cents + ?3, "
            "version = ?4 WHERE order_id = ?1",
            cx.aggregate_id(), e.qty, total, cx.version());
      })
      .on<item_removed>([](projection_context& cx, const item_removed& e) -> result<void> {
        JETSOURCE_TRY(total, line_total(item_removed::type_name, e.qty, e.unit_price_cents));
        JETSOURCE_TRY(cx.execute("DELETE FROM order_lines WHERE order_id = ?1 AND sku = ?2",
                                 cx.aggregate_id(), e.sku));
        return cx.execute(
            "UPDATE orders SET item_count = item_count - ?2, total_cents = total_cents - ?3, "
            "version = ?4 WHERE order_id = ?1",
            cx.aggregate_id(), e.qty, total, cx.version());
      })
      .on<order_placed>(
          [](projection_context& cx, const order_placed&) { return set_status(cx, "placed"); })
      .on<order_paid>(
          [](projection_context& cx, const order_paid&) { return set_status(cx, "paid"); })
      .on<order_shipped>(
          [](projection_context& cx, const order_shipped&) { return set_status(cx, "shipped"); })
      .on<order_cancelled>([](projection_context& cx, const order_cancelled& e) {
        return cx.execute(
            "UPDATE orders SET status = 'cancelled', cancel_reason = ?2, version = ?3 "
            "WHERE order_id = ?1",
            cx.aggregate_id(), e.reason, cx.version());
      });
}

projection customer_stats() {
  // Version 2: name, e-mail, forgotten; follows the whole stream (Order and Customer subjects).
  return projection("customer_stats", 2)
      .follow(projection::subject_filter_of(orders_stream(), "*"))
      .on<order_created>([](projection_context& cx, const order_created& e) -> result<void> {
        JETSOURCE_TRY(count(cx, e.customer_id, orders_created));
        JETSOURCE_TRY(set_personal(cx, e.customer_id, name_column, e.customer_name));
        return set_personal(cx, e.customer_id, email_column, e.customer_email);
      })
      .on<customer_forgotten>(
          [](projection_context& cx, const customer_forgotten& e) -> result<void> {
            JETSOURCE_TRY(secure(cx));
            return cx.execute(
                "INSERT INTO customers (customer_id, forgotten) VALUES (?1, 1) "
                "ON CONFLICT (customer_id) DO UPDATE SET name = NULL, email = NULL, forgotten = 1",
                e.customer_id);
          })
      .on<order_placed>([](projection_context& cx, const order_placed& e) {
        return count(cx, e.customer_id, orders_placed);
      })
      .on<order_paid>([](projection_context& cx, const order_paid& e) -> result<void> {
        JETSOURCE_TRY(count(cx, e.customer_id, orders_paid));
        return cx.execute(
            "UPDATE customers SET lifetime_value_cents = lifetime_value_cents + ?2 "
            "WHERE customer_id = ?1",
            e.customer_id, e.amount_cents);
      })
      .on<order_shipped>([](projection_context& cx, const order_shipped& e) {
        return count(cx, e.customer_id, orders_shipped);
      })
      .on<order_cancelled>([](projection_context& cx, const order_cancelled& e) {
        return count(cx, e.customer_id, orders_cancelled);
      });
}

projection product_sales() {
  return projection("product_sales", 1)
      .follow<order>(orders_stream())
      .on<order_paid>([](projection_context& cx, const order_paid& e) -> result<void> {
        for (const auto& line : e.lines) {
          JETSOURCE_TRY(total, line_total(order_paid::type_name, line.qty, line.unit_price_cents));
          JETSOURCE_TRY(cx.execute(
              "INSERT INTO products (sku, units_sold, revenue_cents) VALUES (?1, ?2, ?3) "
              "ON CONFLICT (sku) DO UPDATE SET units_sold = units_sold + excluded.units_sold, "
              "revenue_cents = revenue_cents + excluded.revenue_cents",
              line.sku, line.qty, total));
        }
        return jetsource::success();
      });
}

std::vector<projection> read_models() {
  return {order_summary(), customer_stats(), product_sales()};
}

}  // namespace order_system
