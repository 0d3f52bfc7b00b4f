// The order-system sample domain: the Order aggregate, its events, commands and errors.
//
// Thread-safety: an order is a value; use one copy from one thread at a time (the repository
// does this for you).
//
//   jetsource::repository<order_system::order> orders{store};
//   auto r = orders.execute("ord-1", order_system::create_order{.customer_id = "c-7"});
//   if (!r && r.error().is(order_system::order_error::already_exists)) ...
//
// States: draft -> placed -> paid -> shipped, and cancelled (from draft or placed). Amounts are
// integer cents. Each event carries what a read model needs, so projections are written from
// events alone (no lookups in other projections).
#pragma once

#include <jetsource/aggregate.hpp>
#include <jetsource/event.hpp>
#include <jetsource/personal.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace order_system {

/// One line of an order: a SKU, how many, and the price of one, in cents.
struct order_line {
  std::string sku;
  std::int64_t qty = 0;
  std::int64_t unit_price_cents = 0;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(sku), CEREAL_NVP(qty), CEREAL_NVP(unit_price_cents));
  }
};

// -- events ----------------------------------------------------------------------------------
/// Schema 1 of OrderCreated (before the customer's name and e-mail): old history upcasts.
struct order_created_v1 {
  static constexpr std::string_view type_name = "OrderCreated";
  static constexpr int schema_version = 1;
  std::string customer_id;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(customer_id));
  }
};

/// The customer's name and e-mail are personal data of the customer (the data subject):
/// encrypted with the customer's key, unreadable once `customer forget` destroyed it.
struct order_created {
  static constexpr std::string_view type_name = "OrderCreated";
  static constexpr int schema_version = 2;
  using previous = order_created_v1;
  static order_created upcast(const order_created_v1& old) { return {old.customer_id, {}, {}}; }
  std::string customer_id;
  jetsource::personal<std::string> customer_name;   ///< no value when not given
  jetsource::personal<std::string> customer_email;  ///< no value when not given
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(customer_id), CEREAL_NVP(customer_name), CEREAL_NVP(customer_email));
  }
};

/// A SKU's quantity grew by `qty` (a new line, or more of one already on the order).
struct item_added {
  static constexpr std::string_view type_name = "ItemAdded";
  static constexpr int schema_version = 1;
  std::string sku;
  std::int64_t qty = 0;
  std::int64_t unit_price_cents = 0;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(sku), CEREAL_NVP(qty), CEREAL_NVP(unit_price_cents));
  }
};

/// A whole line was removed; it says what the line held.
struct item_removed {
  static constexpr std::string_view type_name = "ItemRemoved";
  static constexpr int schema_version = 1;
  std::string sku;
  std::int64_t qty = 0;
  std::int64_t unit_price_cents = 0;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(sku), CEREAL_NVP(qty), CEREAL_NVP(unit_price_cents));
  }
};

struct order_placed {
  static constexpr std::string_view type_name = "OrderPlaced";
  static constexpr int schema_version = 1;
  std::string customer_id;
  std::int64_t total_cents = 0;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(customer_id), CEREAL_NVP(total_cents));
  }
};

/// Paid in full; carries the lines paid for (what product sales count).
struct order_paid {
  static constexpr std::string_view type_name = "OrderPaid";
  static constexpr int schema_version = 1;
  std::string customer_id;
  std::int64_t amount_cents = 0;
  std::vector<order_line> lines;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(customer_id), CEREAL_NVP(amount_cents), CEREAL_NVP(lines));
  }
};

struct order_shipped {
  static constexpr std::string_view type_name = "OrderShipped";
  static constexpr int schema_version = 1;
  std::string customer_id;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(customer_id));
  }
};

struct order_cancelled {
  static constexpr std::string_view type_name = "OrderCancelled";
  static constexpr int schema_version = 1;
  std::string customer_id;
  std::string reason;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(customer_id), CEREAL_NVP(reason));
  }
};

// -- errors ----------------------------------------------------------------------------------
enum class order_error {
  // malformed commands (errc::invalid_argument), whatever the order's state
  missing_customer,
  missing_sku,
  invalid_quantity,
  invalid_price,
  invalid_amount,
  too_large,
  // no such order (errc::not_found)
  not_found,
  // rules of the order's state (errc::rejected)
  already_exists,
  not_draft,
  price_mismatch,
  item_not_on_order,
  empty_order,
  not_placed,
  wrong_amount,
  not_paid,
  not_cancellable,
};

inline std::string_view describe(order_error e) {
  switch (e) {
    case order_error::missing_customer:
      return "a customer id is required";
    case order_error::missing_sku:
      return "a SKU is required";
    case order_error::invalid_quantity:
      return "the quantity must be at least 1";
    case order_error::invalid_price:
      return "the unit price must not be negative";
    case order_error::invalid_amount:
      return "the amount must not be negative";
    case order_error::too_large:
      return "the quantity or amount is too large";
    case order_error::not_found:
      return "no such order";
    case order_error::already_exists:
      return "the order already exists";
    case order_error::not_draft:
      return "the order is no longer a draft";
    case order_error::price_mismatch:
      return "the SKU is already on the order at another unit price";
    case order_error::item_not_on_order:
      return "the SKU is not on the order";
    case order_error::empty_order:
      return "an order needs at least one item to be placed";
    case order_error::not_placed:
      return "only a placed order can be paid";
    case order_error::wrong_amount:
      return "the amount differs from the order total";
    case order_error::not_paid:
      return "only a paid order can be shipped";
    case order_error::not_cancellable:
      return "only a draft or placed order can be cancelled";
  }
  return "?";
}

/// Which errors are malformed commands or a missing order rather than rules of the state.
inline jetsource::errc errc_of(order_error e) {
  switch (e) {
    case order_error::missing_customer:
    case order_error::missing_sku:
    case order_error::invalid_quantity:
    case order_error::invalid_price:
    case order_error::invalid_amount:
    case order_error::too_large:
      return jetsource::errc::invalid_argument;
    case order_error::not_found:
      return jetsource::errc::not_found;
    case order_error::already_exists:
    case order_error::not_draft:
    case order_error::price_mismatch:
    case order_error::item_not_on_order:
    case order_error::empty_order:
    case order_error::not_placed:
    case order_error::wrong_amount:
    case order_error::not_paid:
    case order_error::not_cancellable:
      return jetsource::errc::rejected;
  }
  return jetsource::errc::rejected;
}

// -- commands --------------------------------------------------------------------------------
// A command that can be malformed whatever the order's state says what is wrong in
// `malformed()`: callers may check it before any I/O, and `handle` checks it first.

namespace detail {
inline std::optional<order_error> malformed_item(std::string_view sku, std::int64_t qty,
                                                 std::int64_t unit_price_cents) {
  if (sku.empty()) return order_error::missing_sku;
  if (qty < 1) return order_error::invalid_quantity;
  if (unit_price_cents < 0) return order_error::invalid_price;
  return std::nullopt;
}
}  // namespace detail

struct create_order {
  std::string customer_id;
  std::vector<order_line> items;              ///< optional initial items, added in the same commit
  std::optional<std::string> customer_name;   ///< personal data (see order_created)
  std::optional<std::string> customer_email;  ///< personal data (see order_created)
  std::optional<order_error> malformed() const {
    if (customer_id.empty()) return order_error::missing_customer;
    for (const auto& i : items)
      if (auto e = detail::malformed_item(i.sku, i.qty, i.unit_price_cents)) return e;
    return std::nullopt;
  }
};
struct add_item {
  std::string sku;
  std::int64_t qty = 0;
  std::int64_t unit_price_cents = 0;
  std::optional<order_error> malformed() const {
    return detail::malformed_item(sku, qty, unit_price_cents);
  }
};
struct remove_item {
  std::string sku;
  std::optional<order_error> malformed() const {
    if (sku.empty()) return order_error::missing_sku;
    return std::nullopt;
  }
};
struct place_order {};
struct pay_order {
  std::int64_t amount_cents = 0;
  std::optional<order_error> malformed() const {
    if (amount_cents < 0) return order_error::invalid_amount;
    return std::nullopt;
  }
};
struct ship_order {};
struct cancel_order {
  std::string reason;
};

enum class order_status { none, draft, placed, paid, shipped, cancelled };

/// "draft", "placed", ... ("none" for an order that does not exist).
inline std::string_view to_string(order_status s) {
  switch (s) {
    case order_status::none:
      return "none";
    case order_status::draft:
      return "draft";
    case order_status::placed:
      return "placed";
    case order_status::paid:
      return "paid";
    case order_status::shipped:
      return "shipped";
    case order_status::cancelled:
      return "cancelled";
  }
  return "?";
}

// -- the aggregate ---------------------------------------------------------------------------
class order {
 public:
  static constexpr std::string_view type_name = "Order";
  using event = std::variant<order_created, item_added, item_removed, order_placed, order_paid,
                             order_shipped, order_cancelled>;

  jetsource::decision<event> handle(const create_order& c) const {
    if (auto e = c.malformed()) return *e;
    if (status_ != order_status::none) return order_error::already_exists;
    auto personal = [&](const std::optional<std::string>& v) {
      return v ? jetsource::personal<std::string>(c.customer_id, *v)
               : jetsource::personal<std::string>{};
    };
    std::vector<event> events{
        order_created{c.customer_id, personal(c.customer_name), personal(c.customer_email)}};
    order draft;  // each initial item follows the add-item rules, in order
    draft.apply(order_created{c.customer_id, {}, {}});
    for (const auto& item : c.items) {
      auto added = draft.handle(add_item{item.sku, item.qty, item.unit_price_cents});
      if (!added.accepted()) return *added.rejection();
      for (const auto& e : added.events()) {
        jetsource::apply_event(draft, e);
        events.push_back(e);
      }
    }
    return events;
  }

  jetsource::decision<event> handle(const add_item& c) const {
    if (auto e = c.malformed()) return *e;
    if (auto e = must_be_draft("items can only be added to a draft order")) return *e;
    const order_line* line = find(c.sku);
    if (line && line->unit_price_cents != c.unit_price_cents)
      return jetsource::reject(order_error::price_mismatch,
                               c.sku + " is on the order at " +
                                   std::to_string(line->unit_price_cents) + " cents, not " +
                                   std::to_string(c.unit_price_cents));
    std::int64_t line_total = 0, total = 0, count = 0;  // the sums must stay representable
    if (__builtin_add_overflow(item_count_, c.qty, &count) ||
        __builtin_mul_overflow(c.qty, c.unit_price_cents, &line_total) ||
        __builtin_add_overflow(total_cents_, line_total, &total))
      return order_error::too_large;
    return item_added{c.sku, c.qty, c.unit_price_cents};
  }

  jetsource::decision<event> handle(const remove_item& c) const {
    if (auto e = c.malformed()) return *e;
    if (auto e = must_be_draft("items can only be removed from a draft order")) return *e;
    const order_line* line = find(c.sku);
    if (!line)
      return jetsource::reject(order_error::item_not_on_order, c.sku + " is not on the order");
    return item_removed{line->sku, line->qty, line->unit_price_cents};
  }

  jetsource::decision<event> handle(const place_order&) const {
    if (auto e = must_be_draft("only a draft order can be placed")) return *e;
    if (lines_.empty()) return order_error::empty_order;
    return order_placed{customer_id_, total_cents_};
  }

  jetsource::decision<event> handle(const pay_order& c) const {
    if (auto e = c.malformed()) return *e;
    if (auto e = must_exist()) return *e;
    if (status_ != order_status::placed)
      return rejected_in_state(order_error::not_placed, "only a placed order can be paid");
    if (c.amount_cents != total_cents_)
      return jetsource::reject(order_error::wrong_amount,
                               "the order total is " + std::to_string(total_cents_) +
                                   " cents, not " + std::to_string(c.amount_cents));
    return order_paid{customer_id_, c.amount_cents, lines_};
  }

  jetsource::decision<event> handle(const ship_order&) const {
    if (auto e = must_exist()) return *e;
    if (status_ != order_status::paid)
      return rejected_in_state(order_error::not_paid, "only a paid order can be shipped");
    return order_shipped{customer_id_};
  }

  jetsource::decision<event> handle(const cancel_order& c) const {
    if (auto e = must_exist()) return *e;
    if (status_ != order_status::draft && status_ != order_status::placed)
      return rejected_in_state(order_error::not_cancellable,
                               "only a draft or placed order can be cancelled");
    return order_cancelled{customer_id_, c.reason};
  }

  void apply(const order_created& e) {
    status_ = order_status::draft;
    customer_id_ = e.customer_id;
  }
  void apply(const item_added& e) {
    auto line = std::find_if(lines_.begin(), lines_.end(),
                             [&](const order_line& l) { return l.sku == e.sku; });
    if (line != lines_.end())
      line->qty += e.qty;
    else
      lines_.push_back({e.sku, e.qty, e.unit_price_cents});
    item_count_ += e.qty;
    total_cents_ += e.qty * e.unit_price_cents;
  }
  void apply(const item_removed& e) {
    std::erase_if(lines_, [&](const order_line& l) { return l.sku == e.sku; });
    item_count_ -= e.qty;
    total_cents_ -= e.qty * e.unit_price_cents;
  }
  void apply(const order_placed&) { status_ = order_status::placed; }
  void apply(const order_paid&) { status_ = order_status::paid; }
  void apply(const order_shipped&) { status_ = order_status::shipped; }
  void apply(const order_cancelled&) { status_ = order_status::cancelled; }

  order_status status() const { return status_; }
  const std::string& customer_id() const { return customer_id_; }
  const std::vector<order_line>& lines() const { return lines_; }
  std::int64_t total_cents() const { return total_cents_; }
  std::int64_t item_count() const { return item_count_; }  ///< the sum of the quantities
  /// The line of a SKU, or nullptr.
  const order_line* find(std::string_view sku) const {
    auto it = std::find_if(lines_.begin(), lines_.end(),
                           [&](const order_line& l) { return l.sku == sku; });
    return it == lines_.end() ? nullptr : &*it;
  }

 private:
  std::optional<jetsource::rejection> must_exist() const {
    if (status_ == order_status::none)
      return jetsource::reject(order_error::not_found, "no such order");
    return std::nullopt;
  }
  std::optional<jetsource::rejection> must_be_draft(std::string_view rule) const {
    if (auto e = must_exist()) return e;
    if (status_ != order_status::draft) return rejected_in_state(order_error::not_draft, rule);
    return std::nullopt;
  }
  // "the order is paid: only a placed order can be paid"
  jetsource::rejection rejected_in_state(order_error e, std::string_view rule) const {
    return jetsource::reject(
        e, "the order is " + std::string(to_string(status_)) + ": " + std::string(rule));
  }

  order_status status_ = order_status::none;
  std::string customer_id_;
  std::vector<order_line> lines_;
  std::int64_t item_count_ = 0;
  std::int64_t total_cents_ = 0;
};

}  // namespace order_system
