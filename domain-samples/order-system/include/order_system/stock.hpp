// The order-system's inventory: one Stock aggregate per SKU (aggregate id = the SKU), its
// events, commands and errors (issue 12).
//
// Thread-safety: a stock is a value; use one copy from one thread at a time (the repository
// does this for you).
//
//   jetsource::repository<order_system::stock> stocks{store};
//   stocks.execute("widget", order_system::receive_stock{.qty = 10});
//   stocks.execute("widget", order_system::record_sale{.order_id = "o-1", .line = 0, .units = 2});
//
// Stock may go negative (a backorder): a sale is recorded whatever is on hand, so the inventory
// never blocks or changes an order. A sale is counted once per (order, line): recording the same
// line again is accepted with no event (idempotent by domain, whatever the command id), so a
// process manager's redelivery lands once even after the stream's duplicate window. The counted
// keys grow with the SKU's sales, as its history does (loading replays that history anyway).
#pragma once

#include <jetsource/aggregate.hpp>
#include <jetsource/event.hpp>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace order_system {

// -- events ----------------------------------------------------------------------------------
/// `units` arrived in the warehouse.
struct stock_received {
  static constexpr std::string_view type_name = "StockReceived";
  static constexpr int schema_version = 1;
  std::int64_t units = 0;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(units));
  }
};

/// Line `line` (its index in the paid order's lines) of order `order_id` sold `units`.
struct sale_recorded {
  static constexpr std::string_view type_name = "SaleRecorded";
  static constexpr int schema_version = 1;
  std::string order_id;
  std::int64_t line = 0;
  std::int64_t units = 0;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(order_id), CEREAL_NVP(line), CEREAL_NVP(units));
  }
};

// -- errors ----------------------------------------------------------------------------------
/// Every stock error is a malformed command (errc::invalid_argument): no state refuses a sale.
enum class stock_error {
  invalid_quantity,  ///< receive: qty < 1
  missing_order,     ///< record_sale: no order id
  invalid_line,      ///< record_sale: a negative line index
  invalid_units,     ///< record_sale: units < 1
  too_large,         ///< a total that would not fit in 64 bits
};

inline std::string_view describe(stock_error e) {
  switch (e) {
    case stock_error::invalid_quantity:
      return "the quantity must be at least 1";
    case stock_error::missing_order:
      return "a sale needs the order id";
    case stock_error::invalid_line:
      return "the line index must not be negative";
    case stock_error::invalid_units:
      return "the units sold must be at least 1";
    case stock_error::too_large:
      return "the stock's totals would be too large";
  }
  return "?";
}

inline jetsource::errc errc_of(stock_error) {
  return jetsource::errc::invalid_argument;
}

// -- commands --------------------------------------------------------------------------------
struct receive_stock {
  std::int64_t qty = 0;
  std::optional<stock_error> malformed() const {
    if (qty < 1) return stock_error::invalid_quantity;
    return std::nullopt;
  }
};

struct record_sale {
  std::string order_id;
  std::int64_t line = 0;  ///< the index of the line in the paid order's lines
  std::int64_t units = 0;
  std::optional<stock_error> malformed() const {
    if (order_id.empty()) return stock_error::missing_order;
    if (line < 0) return stock_error::invalid_line;
    if (units < 1) return stock_error::invalid_units;
    return std::nullopt;
  }
};

// -- the aggregate ---------------------------------------------------------------------------
class stock {
 public:
  static constexpr std::string_view type_name = "Stock";
  using event = std::variant<stock_received, sale_recorded>;

  jetsource::decision<event> handle(const receive_stock& c) const {
    if (auto e = c.malformed()) return *e;
    std::int64_t total = 0;
    if (__builtin_add_overflow(received_, c.qty, &total)) return stock_error::too_large;
    return stock_received{c.qty};
  }

  jetsource::decision<event> handle(const record_sale& c) const {
    if (auto e = c.malformed()) return *e;
    if (counted(c.order_id, c.line)) return std::vector<event>{};  // already counted: no change
    std::int64_t total = 0;
    if (__builtin_add_overflow(sold_, c.units, &total)) return stock_error::too_large;
    return sale_recorded{c.order_id, c.line, c.units};
  }

  void apply(const stock_received& e) { received_ += e.units; }
  void apply(const sale_recorded& e) {
    if (counted_.emplace(e.order_id, e.line).second) sold_ += e.units;
  }

  std::int64_t received() const { return received_; }
  std::int64_t sold() const { return sold_; }
  /// Negative: a backorder. Both totals are >= 0, so the difference always fits.
  std::int64_t on_hand() const { return received_ - sold_; }
  /// Whether line `line` of order `order_id` was counted already.
  bool counted(const std::string& order_id, std::int64_t line) const {
    return counted_.contains({order_id, line});
  }

 private:
  std::int64_t received_ = 0;
  std::int64_t sold_ = 0;
  std::set<std::pair<std::string, std::int64_t>> counted_;  ///< (order id, line index)
};

}  // namespace order_system
