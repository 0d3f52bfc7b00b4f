// detail of jetsource/sqlite.hpp: a column value and its conversions to the types a row is read
// as (row::get, statement::column), as SQLite's column functions convert.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

namespace jetsource::sqlite {

/// One column value of a result row: NULL, integer, real, text, or blob.
using value =
    std::variant<std::nullptr_t, std::int64_t, double, std::string, std::vector<std::byte>>;

namespace detail {
template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
std::int64_t to_int64(const value& v) noexcept;
double to_double(const value& v) noexcept;
std::string to_text(const value& v);
std::vector<std::byte> to_blob(const value& v);
[[noreturn]] void bad_column(std::size_t i, std::size_t size) noexcept;

// Converts a column value to T, like SQLite's column functions do.
template <class T>
T as(const value& v) {
  if constexpr (is_optional<T>::value) {
    if (std::holds_alternative<std::nullptr_t>(v)) return T{};
    return T{as<typename T::value_type>(v)};
  } else if constexpr (std::is_same_v<T, bool>) {
    return to_int64(v) != 0;
  } else if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(to_int64(v));
  } else if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(to_double(v));
  } else if constexpr (std::is_same_v<T, std::string>) {
    return to_text(v);
  } else if constexpr (std::is_same_v<T, std::vector<std::byte>>) {
    return to_blob(v);
  } else {
    static_assert(sizeof(T) == 0, "jetsource::sqlite: unsupported column type");
  }
}
}  // namespace detail

}  // namespace jetsource::sqlite
