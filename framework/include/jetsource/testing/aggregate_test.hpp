// Given / when / then tests for aggregates, without a server (GoogleTest).
//
// Thread-safety: one test, one thread.
//
// clang-format off
//   jetsource::testing::aggregate_test<order>{}
//       .given(order_created{.customer_id = "c1"}, order_placed{})
//       .when(ship_order{})
//       .then_expect_error(order_error::not_paid);
// clang-format on
//
// Events are compared by their wire encoding (type, schema version, JSON data), so event types
// need no operator==, and a failure prints both sides as JSON.
#pragma once

#include <jetsource/aggregate.hpp>
#include <jetsource/event.hpp>

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace jetsource::detail {
/// The user's own error enum (jetsource::errc is the library's code, not a domain error).
template <class E>
concept domain_enum = std::is_enum_v<E> && !std::is_same_v<E, errc>;
}  // namespace jetsource::detail

namespace jetsource::testing {

template <aggregate A>
class aggregate_test {
 public:
  using event = typename A::event;
  using registry = event_registry<event>;

  /// Past events, applied in order to a new aggregate.
  template <class... Es>
  aggregate_test& given(Es&&... events) {
    // Applied directly (not through a variant): GCC 12 + ASan warns on the variant temporary.
    (state_.apply(std::as_const(events)), ...);
    version_ += sizeof...(Es);
    return *this;
  }

  /// The command under test; its events (if accepted) are applied to the state.
  template <command_for<A> C>
  aggregate_test& when(const C& command) {
    decision_.emplace(std::as_const(state_).handle(command));
    if (decision_->accepted())
      for (const auto& e : decision_->events()) apply_event(state_, e);
    return *this;
  }

  /// The command was accepted with exactly these events, in this order.
  template <class... Es>
  aggregate_test& then_expect_events(Es&&... expected) {
    if (!require_decision()) return *this;
    if (!decision_->accepted()) {
      ADD_FAILURE() << "expected events " << encode({event{std::forward<Es>(expected)}...})
                    << ", but the command was rejected: " << decision_->rejection()->reason;
      return *this;
    }
    auto want = encode({event{std::forward<Es>(expected)}...});
    auto got = encode(decision_->events());
    EXPECT_EQ(want, got) << "events differ (expected first, then actual)";
    return *this;
  }

  /// The command was accepted and changed nothing.
  aggregate_test& then_expect_no_events() {
    if (!require_decision()) return *this;
    if (!decision_->accepted())
      ADD_FAILURE() << "expected no events, but the command was rejected: "
                    << decision_->rejection()->reason;
    else
      EXPECT_TRUE(decision_->events().empty())
          << "expected no events, got " << encode(decision_->events());
    return *this;
  }

  /// The command was rejected with exactly this domain error.
  template <detail::domain_enum E>
  aggregate_test& then_expect_error(E domain_error) {
    if (!require_rejection("rejection " + detail::describe_enum(domain_error))) return *this;
    EXPECT_TRUE(decision_->to_error().is(domain_error))
        << "expected rejection '" << detail::describe_enum(domain_error) << "', got '"
        << decision_->rejection()->reason << "'";
    return *this;
  }

  /// The command was rejected with this library code, as a caller of the repository sees it:
  /// errc::rejected (a rule of the state), or what the enum's errc_of says (invalid_argument,
  /// not_found).
  aggregate_test& then_expect_error(errc code) {
    if (!require_rejection(fmt::format("an error with code {}", to_string(code)))) return *this;
    const error e = decision_->to_error();
    EXPECT_TRUE(e.is(code)) << "expected an error with code " << to_string(code) << ", got "
                            << to_string(e);
    return *this;
  }

  /// The command was rejected with exactly this message (the error's message: describe(e), or
  /// the reason given to reject(...)).
  aggregate_test& then_expect_error_message(std::string_view message) {
    if (!require_rejection(fmt::format("rejection '{}'", message))) return *this;
    EXPECT_EQ(decision_->to_error().message, message) << "the rejection's message differs";
    return *this;
  }

  /// Checks the state after given (and when): `check(const A&)` uses EXPECT_* itself.
  template <class F>
  aggregate_test& then_state(F&& check) {
    std::forward<F>(check)(std::as_const(state_));
    return *this;
  }

  const A& state() const noexcept { return state_; }
  std::uint64_t given_version() const noexcept { return version_; }

 private:
  bool require_decision() {
    if (!decision_) ADD_FAILURE() << "then_* without when(command)";
    return decision_.has_value();
  }
  /// False (a failure naming `expected`) unless when(command) ran and rejected it.
  bool require_rejection(const std::string& expected) {
    if (!require_decision()) return false;
    if (!decision_->accepted()) return true;
    ADD_FAILURE() << "expected " << expected << ", but the command was accepted with "
                  << encode(decision_->events());
    return false;
  }
  static std::string encode(const std::vector<event>& events) {
    auto body = registry::encode(events);
    return body ? std::move(body).value() : "<unencodable: " + to_string(body.error()) + ">";
  }

  A state_{};
  std::uint64_t version_ = 0;
  std::optional<decision<event>> decision_;
};

}  // namespace jetsource::testing
