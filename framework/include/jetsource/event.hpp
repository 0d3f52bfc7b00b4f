// Domain events: stable wire names, schema versions, upcasting, and the registry of an
// aggregate's events.
//
// An event is a cereal-serialisable struct with a stable wire name and a schema version
// (default 1). When its shape changes, keep the old struct, bump the version, and say how to
// upcast: stored history is never rewritten, old commits are upcast when read.
//
// clang-format off
//   struct item_added {
//     static constexpr std::string_view type_name = "ItemAdded";
//     static constexpr int schema_version = 2;
//     using previous = item_added_v1;  // schema 1, same type_name
//     static item_added upcast(const item_added_v1& old) { return {old.sku, old.qty, 0}; }
//     std::string sku;
//     int qty = 0;
//     std::int64_t unit_price_cents = 0;
//     template <class A> void serialize(A& a) {
//       a(CEREAL_NVP(sku), CEREAL_NVP(qty), CEREAL_NVP(unit_price_cents));
//     }
//   };
// clang-format on
//
// Thread-safety: everything here is stateless or immutable; safe from any thread.
#pragma once

#include <jetsource/result.hpp>

#include <cereal/cereal.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <concepts>
#include <cstdint>
#include <string_view>
#include <type_traits>
#include <variant>

namespace jetsource {

/// An event type: a default-constructible struct with `static constexpr std::string_view
/// type_name` (its stable wire name), optionally `static constexpr int schema_version` (>= 1,
/// default 1), and a cereal `serialize` (or `save`/`load`) function.
template <class E>
concept event = std::default_initializable<E> && std::copy_constructible<E> && requires {
  { E::type_name } -> std::convertible_to<std::string_view>;
};

/// The schema version of an event type (1 unless it declares `schema_version`).
template <event E>
constexpr int schema_version_of() {
  if constexpr (requires { E::schema_version; }) {
    static_assert(E::schema_version >= 1, "schema_version starts at 1");
    return E::schema_version;
  } else {
    return 1;
  }
}

/// An event type that names its previous schema (`using previous = ...;`) and how to upcast
/// from it (`static E upcast(const previous&)`).
template <class E>
concept upcastable = event<E> && requires(const typename E::previous& old) {
  { E::upcast(old) } -> std::convertible_to<E>;
};

/// A closed set of events, as an aggregate declares it: `using event = std::variant<...>;`.
template <class V>
struct is_event_variant : std::false_type {};
template <event... Es>
struct is_event_variant<std::variant<Es...>> : std::true_type {};
template <class V>
concept event_variant = is_event_variant<V>::value;

/// The wire name of the event held by a variant.
template <event_variant V>
std::string_view type_name_of(const V& e) {
  return std::visit(
      [](const auto& x) { return std::string_view{std::decay_t<decltype(x)>::type_name}; }, e);
}

}  // namespace jetsource

#include <jetsource/detail/codec.hpp>

namespace jetsource {

/// The registry of one event set: maps (wire name, schema version) to a decoder producing the
/// current type, following upcast chains; encodes and decodes commit bodies (see
/// docs/wire-format.md). Wire names must be unique within the set (checked at compile time).
template <event_variant V>
using event_registry = detail::registry<V>;

}  // namespace jetsource
