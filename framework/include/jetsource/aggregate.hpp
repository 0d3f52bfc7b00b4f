// Aggregates: one type with two verbs, `handle` (decide: rules, no I/O) and `apply` (evolve).
//
// clang-format off
//   class order {
//    public:
//     static constexpr std::string_view type_name = "Order";
//     using event = std::variant<order_placed, order_paid>;
//     jetsource::decision<event> handle(const pay_order& c) const {
//       if (status_ != order_status::placed) return order_error::not_placed;  // rejected
//       return order_paid{.amount_cents = c.amount_cents};                    // one event
//     }
//     void apply(const order_placed&) { status_ = order_status::placed; }
//     void apply(const order_paid&) { status_ = order_status::paid; }
//
//    private:
//     order_status status_ = order_status::none;
//   };
// clang-format on
//
// A decision is 0..N events (all land in one atomic commit, or none does) or a rejection carrying
// the aggregate's own error enum. Describe an enum's values for people by giving it an ADL
// `std::string_view describe(order_error)`; otherwise the message is generic. Say which values
// are not state rules by giving it an ADL `jetsource::errc errc_of(order_error)` returning
// errc::invalid_argument or errc::not_found for them (errc::rejected, the default, otherwise).
//
// Thread-safety: decisions are values; aggregates are used by one thread at a time.
#pragma once

#include <jetsource/detail/enum_name.hpp>
#include <jetsource/event.hpp>
#include <jetsource/result.hpp>

#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeindex>
#include <utility>
#include <variant>
#include <vector>

namespace jetsource {

namespace detail {
template <class E>
std::string describe_enum(E e) {
  if constexpr (requires {
                  { describe(e) } -> std::convertible_to<std::string_view>;
                }) {
    return std::string(describe(e));
  } else {
    return fmt::format("rejected by a domain rule ({})", jetsource::detail::enum_value_name(e));
  }
}

template <class E>
errc errc_of_enum(E e) {
  if constexpr (requires {
                  { errc_of(e) } -> std::convertible_to<errc>;
                }) {
    return errc_of(e);
  } else {
    return errc::rejected;
  }
}

template <class... Es>
struct emitted {
  std::tuple<Es...> events;
};
}  // namespace detail

/// A domain rejection with the user's enum and an explicit reason. Its code is ADL
/// errc_of(domain_error) when the enum has one, errc::rejected otherwise.
template <class E>
requires std::is_enum_v<E> rejection reject(E domain_error, std::string reason) {
  return rejection{std::type_index(typeid(E)), static_cast<int>(domain_error), std::move(reason),
                   detail::errc_of_enum(domain_error)};
}

/// Several events in one decision (one atomic commit), in order: `return emit(a, b, c);`.
template <class... Es>
detail::emitted<std::decay_t<Es>...> emit(Es&&... events) {
  return {{std::forward<Es>(events)...}};
}

/// The outcome of `handle`: the events to append, or a rejection.
template <event_variant Event>
class decision {
 public:
  /// Accepted with one event.
  template <class E>
  requires std::constructible_from<Event, E> &&(!std::is_enum_v<std::decay_t<E>>)
      decision(E&& e) {  // NOLINT(google-explicit-constructor): `return order_paid{...};`
    events_.emplace_back(std::forward<E>(e));
  }
  /// Accepted with 0..N events, from emit(...).
  template <class... Es>
  decision(detail::emitted<Es...> e) {  // NOLINT(google-explicit-constructor)
    events_.reserve(sizeof...(Es));
    std::apply([&](auto&... x) { (events_.emplace_back(std::move(x)), ...); }, e.events);
  }
  /// Accepted with the events of a vector.
  decision(std::vector<Event> events) : events_(std::move(events)) {}  // NOLINT
  /// Rejected with the user's enum; the reason comes from ADL describe(e) when there is one.
  template <class E>
  requires std::is_enum_v<E> decision(
      E domain_error)  // NOLINT(google-explicit-constructor): `return order_error::x;`
      : rejection_(reject(domain_error, detail::describe_enum(domain_error))) {}
  /// Rejected with an explicit reason, from reject(...).
  decision(jetsource::rejection r) : rejection_(std::move(r)) {}  // NOLINT

  bool accepted() const noexcept { return !rejection_; }
  const std::vector<Event>& events() const& noexcept { return events_; }
  std::vector<Event>&& events() && noexcept { return std::move(events_); }
  const std::optional<jetsource::rejection>& rejection() const noexcept { return rejection_; }

  /// The rejection as a library error: code errc::rejected, or what the enum's errc_of says.
  error to_error() const {
    if (!rejection_) return error{errc::rejected, std::string{}, std::nullopt};
    return error{rejection_->code, rejection_->reason, rejection_};
  }

 private:
  std::vector<Event> events_;
  std::optional<jetsource::rejection> rejection_;
};

namespace detail {
template <class A, class E>
concept applies = requires(A& a, const E& e) {
  a.apply(e);
};
template <class A, class V>
struct applies_all : std::false_type {};
template <class A, class... Es>
struct applies_all<A, std::variant<Es...>> : std::bool_constant<(applies<A, Es> && ...)> {};
}  // namespace detail

/// An aggregate type: default-constructible, a stable `type_name` (a subject token), a closed
/// event set `using event = std::variant<...>`, and `apply(const E&)` for every event in it.
/// Its commands are whatever types it has `handle` overloads for.
template <class A>
concept aggregate = std::default_initializable<A> && std::copy_constructible<A> &&
    event_variant<typename A::event> && detail::applies_all<A, typename A::event>::value &&
    requires {
  { A::type_name } -> std::convertible_to<std::string_view>;
};

/// A command the aggregate A decides: `a.handle(c)` returns a decision<A::event>.
template <class C, class A>
concept command_for = requires(const A& a, const C& c) {
  { a.handle(c) } -> std::convertible_to<decision<typename A::event>>;
};

/// An aggregate whose state cereal can serialise (needed for snapshots only).
template <class A>
concept snapshottable = aggregate<A> && requires(A& a, cereal::JSONOutputArchive& ar) {
  {a.serialize(ar)};
};

/// An aggregate as loaded: its state, version (events so far) and last commit's sequence.
template <class A>
struct loaded {
  A state{};
  std::uint64_t version = 0;
  std::uint64_t sequence = 0;  ///< 0 = no commit yet (a new aggregate)
};

/// Applies one event to an aggregate.
template <aggregate A>
void apply_event(A& a, const typename A::event& e) {
  std::visit([&a](const auto& x) { a.apply(x); }, e);
}

}  // namespace jetsource
