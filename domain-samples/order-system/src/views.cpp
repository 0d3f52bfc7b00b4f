// The read models' rows as JSON (see views.hpp): the one place that builds these shapes.
#include "views.hpp"

#include <jetsource/sqlite.hpp>

#include <fmt/format.h>

#include <initializer_list>
#include <utility>
#include <variant>

namespace order_system::cli {

namespace {

// Opens a read model for one query; a missing file means nothing was projected yet.
jetsource::result<jetsource::sqlite::database> open(const globals& g,
                                                    const jetsource::projection& p) {
  auto db = jetsource::open_read_model(read_model_options(g, p).database);
  if (!db && db.error().is(jetsource::errc::not_found))
    return jetsource::make_error(jetsource::errc::not_found,
                                 "no {} read model in {} yet (run `order-system serve`)", p.name(),
                                 g.data_dir.string());
  return db;
}

// Reads columns of a row into `j`, starting at column `first`: a text column as a string, an
// integer column only when SQLite holds an integer there. A REAL (a sum that left 64 bits in a
// file written before the tables were STRICT) or anything else is an error, never a clamped
// number.
enum class kind { text, integer };
jetsource::result<void> read_columns(nlohmann::ordered_json& j, const jetsource::sqlite::row& r,
                                     std::size_t first,
                                     std::initializer_list<std::pair<const char*, kind>> columns) {
  std::size_t i = first;
  for (const auto& [name, k] : columns) {
    const auto& v = r[i];
    if (k == kind::text) {
      j[name] = r.get<std::string>(i);
    } else if (const auto* n = std::get_if<std::int64_t>(&v)) {
      j[name] = *n;
    } else {
      return jetsource::make_error(
          jetsource::errc::decode_failed,
          "{} is not an integer in the read model ({}): the file is damaged or was written by an "
          "older version; rebuild it (`order-system projections rebuild`)",
          name,
          std::holds_alternative<double>(v) ? fmt::format("the real {}", std::get<double>(v))
                                            : std::string("not a number"));
    }
    ++i;
  }
  return jetsource::success();
}

}  // namespace

jetsource::result<std::optional<nlohmann::ordered_json>> order_view(const globals& g,
                                                                    const std::string& order_id) {
  JETSOURCE_TRY(db, open(g, order_summary()));
  JETSOURCE_TRY(row, db.query_one("SELECT order_id, customer_id, status, item_count, total_cents, "
                                  "version FROM orders WHERE order_id = ?1",
                                  order_id));
  if (!row) return std::optional<nlohmann::ordered_json>{};
  const auto& r = *row;
  JETSOURCE_TRY(lines, db.query("SELECT sku, qty, unit_price_cents FROM order_lines WHERE "
                                "order_id = ?1 ORDER BY sku",
                                order_id));
  nlohmann::ordered_json items = nlohmann::ordered_json::array();
  for (const auto& l : lines) {
    nlohmann::ordered_json item;
    JETSOURCE_TRY(read_columns(
        item, l, 0,
        {{"sku", kind::text}, {"qty", kind::integer}, {"unit_price_cents", kind::integer}}));
    items.push_back(std::move(item));
  }
  nlohmann::ordered_json j;
  JETSOURCE_TRY(read_columns(
      j, r, 0, {{"order_id", kind::text}, {"customer_id", kind::text}, {"status", kind::text}}));
  j["items"] = std::move(items);
  JETSOURCE_TRY(read_columns(
      j, r, 3,
      {{"item_count", kind::integer}, {"total_cents", kind::integer}, {"version", kind::integer}}));
  return std::optional{std::move(j)};
}

jetsource::result<std::optional<nlohmann::ordered_json>> customer_view(
    const globals& g, const std::string& customer_id) {
  JETSOURCE_TRY(db, open(g, customer_stats()));
  JETSOURCE_TRY(row, db.query_one("SELECT customer_id, orders_created, orders_placed, orders_paid, "
                                  "orders_shipped, orders_cancelled, lifetime_value_cents, name, "
                                  "email, forgotten FROM customers WHERE customer_id = ?1",
                                  customer_id));
  if (!row) return std::optional<nlohmann::ordered_json>{};
  nlohmann::ordered_json j;
  JETSOURCE_TRY(read_columns(j, *row, 0,
                             {{"customer_id", kind::text},
                              {"orders_created", kind::integer},
                              {"orders_placed", kind::integer},
                              {"orders_paid", kind::integer},
                              {"orders_shipped", kind::integer},
                              {"orders_cancelled", kind::integer},
                              {"lifetime_value_cents", kind::integer}}));
  // Personal data (null when never given or forgotten); "forgotten": its key was destroyed.
  for (std::size_t i : {7, 8}) {
    const char* name = i == 7 ? "name" : "email";
    if (const auto* text = std::get_if<std::string>(&(*row)[i]))
      j[name] = *text;
    else
      j[name] = nullptr;
  }
  j["forgotten"] = row->get<std::int64_t>(9) != 0;
  return std::optional{std::move(j)};
}

jetsource::result<std::optional<nlohmann::ordered_json>> product_view(const globals& g,
                                                                      const std::string& sku) {
  JETSOURCE_TRY(db, open(g, product_sales()));
  JETSOURCE_TRY(
      row, db.query_one("SELECT sku, units_sold, revenue_cents FROM products WHERE sku = ?1", sku));
  if (!row) return std::optional<nlohmann::ordered_json>{};
  nlohmann::ordered_json j;
  JETSOURCE_TRY(read_columns(
      j, *row, 0,
      {{"sku", kind::text}, {"units_sold", kind::integer}, {"revenue_cents", kind::integer}}));
  return std::optional{std::move(j)};
}

nlohmann::ordered_json status_view(const jetsource::projection_status& s) {
  return {{"name", s.name},
          {"version", s.version},
          {"database_version", s.database_version},
          {"state", s.state},
          {"last_applied_seq", s.last_applied_seq},
          {"pending", s.pending},
          {"dead_letters", s.dead_letters},
          {"events_applied", s.events_applied},
          {"events_per_s", s.events_per_s},
          {"consumer", s.consumer},
          {"database", s.database},
          {"rebuild", s.rebuild},
          {"rebuild_applied_seq", s.rebuild_applied_seq},
          {"error", s.error},
          {"max_applied_seq", s.max_applied_seq},
          {"held", s.held},
          {"duplicates", s.duplicates},
          {"applied_event_time", s.applied_event_time},
          {"lag_seconds", s.lag_seconds}};
}

jetsource::result<nlohmann::ordered_json> statuses_view(const jetsource::connection& conn,
                                                        const globals& g) {
  nlohmann::ordered_json all = nlohmann::ordered_json::array();
  for (const auto& p : read_models()) {
    auto s = jetsource::read_status(conn, p, read_model_options(g, p));
    if (!s) {
      auto e = std::move(s).error();
      e.message = fmt::format("status of {}: {}", p.name(), e.message);
      return e;
    }
    all.push_back(status_view(*s));
  }
  return all;
}

nlohmann::ordered_json dead_letter_view(std::string_view projection,
                                        const jetsource::dead_letter& d) {
  return {{"projection", projection},
          {"sequence", d.sequence},
          {"aggregate_type", d.aggregate_type},
          {"aggregate_id", d.aggregate_id},
          {"first_version", d.first_version},
          {"last_version", d.last_version},
          {"kind", d.kind},
          {"event_type", d.event_type},
          {"error", d.error},
          {"attempts", d.attempts},
          {"first_failed_at", d.first_failed_at},
          {"last_failed_at", d.last_failed_at}};
}

}  // namespace order_system::cli
