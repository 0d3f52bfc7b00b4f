// The Customer aggregate of the order-system sample: only what crypto-shredding needs, the
// record that a customer's personal data was forgotten (subjects orders.Customer.<p>.<id>).
//
// Thread-safety: a customer is a value; the repository gives each command its own copy.
//
// `order-system customer forget C` destroys C's key (jetsource::key_store::forget) and then
// executes forget_customer on C: the read models learn of it from CustomerForgotten.
#pragma once

#include <jetsource/aggregate.hpp>
#include <jetsource/event.hpp>

#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace order_system {

/// The customer's personal data was forgotten (its key destroyed): read models drop it.
struct customer_forgotten {
  static constexpr std::string_view type_name = "CustomerForgotten";
  std::string customer_id;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(customer_id));
  }
};

struct forget_customer {
  std::string customer_id;
};

class customer {
 public:
  static constexpr std::string_view type_name = "Customer";
  using event = std::variant<customer_forgotten>;

  /// Once is enough: forgetting a forgotten customer is accepted and changes nothing.
  jetsource::decision<event> handle(const forget_customer& c) const {
    if (forgotten_) return std::vector<event>{};
    return customer_forgotten{c.customer_id};
  }
  void apply(const customer_forgotten&) { forgotten_ = true; }

  bool forgotten() const { return forgotten_; }

 private:
  bool forgotten_ = false;
};

}  // namespace order_system
