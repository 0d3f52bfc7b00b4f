// detail: readable names of enum types and enumerators ("order_system::order_error::not_paid"),
// for the message of a rejection whose enum has no describe(). Not API.
//
// The names come from the compiler's spelling of a template's arguments (__PRETTY_FUNCTION__,
// GCC and Clang), read at compile time; enumerators are looked up among the values 0..127.
#pragma once

#include <fmt/format.h>

#include <array>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace jetsource::detail {

// "... [with T = ns::type; ...]" (GCC) or "... [T = ns::type]" (Clang): the text after `key`
// up to the next ';' or the closing ']'.
constexpr std::string_view template_argument(std::string_view pretty, std::string_view key) {
  auto begin = pretty.find(key);
  if (begin == std::string_view::npos) return {};
  begin += key.size();
  auto end = pretty.find_first_of(";]", begin);
  if (end == std::string_view::npos) return {};
  return pretty.substr(begin, end - begin);
}

/// The qualified name of T as the compiler spells it, e.g. "order_system::order_error".
template <class T>
constexpr std::string_view type_name() {
  return template_argument(__PRETTY_FUNCTION__, "T = ");
}

/// The qualified name of the enumerator V, e.g. "order_system::order_error::not_paid"; "" when
/// no enumerator has that value (the compiler then spells a cast: "(ns::e)7").
template <auto V>
constexpr std::string_view enumerator_name() {
  auto name = template_argument(__PRETTY_FUNCTION__, "V = ");
  return name.empty() || name.front() == '(' ? std::string_view{} : name;
}

template <class E, int... I>
constexpr auto enumerator_names(std::integer_sequence<int, I...>) {
  return std::array<std::string_view, sizeof...(I)>{enumerator_name<static_cast<E>(I)>()...};
}

/// "ns::order_error::not_paid", or "ns::order_error 200" for a value no enumerator in 0..127
/// names. Enumerators are looked up for scoped enums only (casting 0..127 to an unscoped enum
/// without a fixed underlying type may leave its range).
template <class E>
requires std::is_enum_v<E> std::string enum_value_name(E e) {
  const auto value = static_cast<long long>(e);
  if constexpr (!std::is_convertible_v<E, std::underlying_type_t<E>>) {
    static constexpr auto names = enumerator_names<E>(std::make_integer_sequence<int, 128>{});
    if (value >= 0 && value < static_cast<long long>(names.size()) && !names[value].empty())
      return std::string(names[value]);
  }
  return fmt::format("{} {}", type_name<E>(), value);
}

}  // namespace jetsource::detail
