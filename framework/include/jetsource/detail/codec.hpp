// detail: the JSON codec of commit bodies and snapshots (cereal), and the event registry.
// Not API: use jetsource::event_registry. The wire format is documented in docs/wire-format.md.
#pragma once

#include <jetsource/result.hpp>

#include <cereal/archives/json.hpp>
#include <jetsource/detail/json_reader.hpp>
#include <jetsource/detail/personal_codec.hpp>
#include <jetsource/detail/utf8.hpp>

#include <exception>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace jetsource::detail {

/// True when E has a cereal serialization of its own (member serialize / save / save_minimal,
/// or non-member save): a user's non-member serialize is preferred by overload resolution.
template <class E>
constexpr bool has_own_serialization() {
  using A = cereal::JSONOutputArchive;
  namespace t = cereal::traits;
  return t::has_member_serialize<E, A>::value || t::has_member_versioned_serialize<E, A>::value ||
         t::has_member_save<E, A>::value || t::has_member_versioned_save<E, A>::value ||
         t::has_member_save_minimal<E, A>::value || t::has_non_member_save<E, A>::value ||
         t::has_non_member_save_minimal<E, A>::value;
}

/// An event with no fields that has no serialization of its own: jetsource gives it one
/// (`"data":{}`), so `struct order_placed { static constexpr std::string_view type_name = ...; };`
/// is a complete event.
template <class E>
concept field_less_event = event<E> && std::is_empty_v<E> && !has_own_serialization<E>();

/// True, or a readable compile error naming the event type (in the "required from" line) when
/// cereal cannot serialise it: before cereal's own error, deep in its archives.
template <class E>
constexpr bool check_serializable() {
  static_assert(cereal::traits::is_output_serializable<E, cereal::JSONOutputArchive>::value,
                "jetsource: this event type has fields but no cereal serialization; give it "
                "`template <class A> void serialize(A& a) { a(CEREAL_NVP(field), ...); }` "
                "(an event with no fields needs none)");
  return true;
}

}  // namespace jetsource::detail

namespace cereal {
/// The serialization of a field-less event: nothing (see jetsource::detail::field_less_event).
/// In namespace cereal, where cereal's archives find it.
template <class Archive, class E>
requires jetsource::detail::field_less_event<std::remove_cv_t<E>>
void serialize(Archive&, E&) {}
}  // namespace cereal

namespace jetsource::detail {

/// Wire names travel in the comma-separated Es-Events header: letters, digits, '.', '_', '-'.
consteval bool valid_type_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return false;
  return true;
}

template <class... Es>
consteval bool unique_type_names() {
  std::string_view names[] = {Es::type_name...};
  for (std::size_t i = 0; i < sizeof...(Es); ++i)
    for (std::size_t j = i + 1; j < sizeof...(Es); ++j)
      if (names[i] == names[j]) return false;
  return true;
}

inline cereal::JSONOutputArchive::Options compact_json() {
  return cereal::JSONOutputArchive::Options::NoIndent();
}

// cereal's JSON writer is always a rapidjson PrettyWriter: even with NoIndent it writes a
// newline before every value and ": " after every key. The wire format is compact JSON, so that
// whitespace is dropped: outside strings it is insignificant, and inside strings a newline is
// always escaped, so only spaces within strings must be kept. (A linear scan: re-parsing with
// rapidjson cost 3.4 us per commit, twice cereal's own encoding.)
inline std::string compact(std::string json) {
  std::size_t out = 0;
  bool in_string = false, escaped = false;
  for (char c : json) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      continue;
    } else if (c == '"') {
      in_string = true;
    }
    json[out++] = c;
  }
  json.resize(out);
  return json;
}

/// The key of the member whose string value holds byte `at` of compact JSON ("" when that
/// string is not a member's value): names the field in an error message. Linear, error path only.
inline std::string_view key_of_string_at(std::string_view json, std::size_t at) {
  auto quote_before = [&](std::size_t from) {  // an unescaped '"' before `from`, or npos
    while (from-- > 0) {
      if (json[from] != '"') continue;
      std::size_t slashes = 0;
      while (from > slashes && json[from - 1 - slashes] == '\\') ++slashes;
      if (slashes % 2 == 0) return from;
    }
    return std::string_view::npos;
  };
  const std::size_t open = quote_before(at);  // the string's opening quote
  if (open == std::string_view::npos || open < 3 || json[open - 1] != ':' || json[open - 2] != '"')
    return {};
  const std::size_t key_open = quote_before(open - 2);
  if (key_open == std::string_view::npos) return {};
  return json.substr(key_open + 1, open - 2 - key_open - 1);
}

/// encode_failed for JSON that is not valid UTF-8 at byte `at`, naming the event (the wire
/// name in the nearest "type" member before it, when there is one) and the field.
inline error not_utf8(std::string_view json, std::size_t at, std::string_view what) {
  std::string_view type;
  constexpr std::string_view type_member = "{\"type\":\"";  // escaped inside strings: unique
  if (auto t = json.rfind(type_member, at); t != std::string_view::npos) {
    auto begin = t + type_member.size();
    type = json.substr(begin, json.find('"', begin) - begin);
  }
  auto key = key_of_string_at(json, at);
  return make_error(errc::encode_failed,
                    "cannot encode {}{}{}: {}{}{}is not valid UTF-8 (byte {} is \\x{:02x}); "
                    "nothing was stored",
                    what, type.empty() ? "" : " ", type, key.empty() ? "" : "field '", key,
                    key.empty() ? "a string " : "' ", at, static_cast<unsigned char>(json[at]));
}

/// Serialises `value` as the JSON object {"<name>": value} (cereal needs a named root).
template <class T>
result<std::string> to_json(const char* name, const T& value) {
  try {
    std::ostringstream os;
    {
      cereal::JSONOutputArchive ar(os, compact_json());
      ar(cereal::make_nvp(name, value));
    }
    auto json = compact(std::move(os).str());
    if (auto bad = first_invalid_utf8(json); bad != std::string_view::npos)
      return not_utf8(json, bad, name);
    return json;
  } catch (const personal_data_error& e) {  // a personal field: its own code (unreachable, ...)
    return e.get();
  } catch (const std::exception& e) {
    return make_error(errc::encode_failed, "cannot encode {}: {}", name, e.what());
  }
}

/// The JSON of `value` alone, as it goes into a commit's "state" member (ADR 0022).
template <class T>
result<std::string> to_json_value(const T& value) {
  auto doc = to_json("state", value);
  if (!doc) return doc;
  constexpr std::string_view wrapper = "{\"state\":";
  std::string& json = doc.value();
  if (!json.starts_with(wrapper) || !json.ends_with('}'))  // cereal wrote something else
    return make_error(errc::encode_failed, "cannot encode state: unexpected JSON");
  return json.substr(wrapper.size(), json.size() - wrapper.size() - 1);
}

/// Parses {"<name>": value} written by to_json.
template <class T>
result<T> from_json(const char* name, std::string_view json) {
  try {
    json_reader ar(json);
    T value{};
    ar(cereal::make_nvp(name, value));
    return value;
  } catch (const personal_data_error& e) {
    return e.get();
  } catch (const std::exception& e) {
    return make_error(errc::decode_failed, "cannot decode {}: {}", name, e.what());
  }
}

/// Reads the "data" member of the current event node as E, written with schema `version`;
/// older versions go up E's upcast chain (E::previous, E::upcast).
template <class E>
result<E> decode_event(int version, json_reader& ar) {
  static_assert(check_serializable<E>());
  if (version == schema_version_of<E>()) {
    E e{};
    try {
      ar(cereal::make_nvp("data", e));
    } catch (const personal_data_error& x) {  // a key store outage stays retryable
      return x.get();
    }
    return e;
  }
  if constexpr (upcastable<E>) {
    using P = typename E::previous;
    static_assert(P::type_name == E::type_name, "an upcast keeps the event's type_name");
    static_assert(schema_version_of<P>() < schema_version_of<E>(),
                  "previous must have a lower schema_version");
    if (version < schema_version_of<E>()) {
      auto old = decode_event<P>(version, ar);
      if (!old) return std::move(old).error();
      return E::upcast(old.value());
    }
  }
  return make_error(errc::unknown_event_type, "event type '{}' has no schema version {}",
                    E::type_name, version);
}

template <class V>
class registry;

template <class... Es>
class registry<std::variant<Es...>> {
 public:
  using variant = std::variant<Es...>;
  static_assert(unique_type_names<Es...>(), "two events of one set share a type_name");
  static_assert((check_serializable<Es>() && ...));
  static_assert((valid_type_name(Es::type_name) && ...),
                "event type_name: use only letters, digits, '.', '_' and '-'");

  /// True when `name` is the wire name of one of the set's events.
  static bool knows(std::string_view name) { return ((name == Es::type_name) || ...); }

  /// "OrderCreated,ItemAdded": the Es-Events header value.
  static std::string names(std::span<const variant> events) {
    std::string out;
    for (const auto& e : events) {
      if (!out.empty()) out += ',';
      std::visit([&](const auto& x) { out += std::decay_t<decltype(x)>::type_name; }, e);
    }
    return out;
  }

  /// {"events":[{"type":"OrderCreated","v":1,"data":{...}}, ...]}
  static result<std::string> encode(std::span<const variant> events) {
    try {
      std::ostringstream os;
      {
        cereal::JSONOutputArchive ar(os, compact_json());
        ar.setNextName("events");
        ar.startNode();
        ar.makeArray();
        for (const auto& e : events) {
          std::visit(
              [&](const auto& x) {
                using E = std::decay_t<decltype(x)>;
                ar.startNode();
                ar(cereal::make_nvp("type", std::string(E::type_name)),
                   cereal::make_nvp("v", schema_version_of<E>()), cereal::make_nvp("data", x));
                ar.finishNode();
              },
              e);
        }
        ar.finishNode();
      }
      // cereal writes strings' bytes as they are: a body that is not UTF-8 would be stored
      // labelled JSON, and no JSON reader would ever read it back.
      auto body = compact(std::move(os).str());
      if (auto bad = first_invalid_utf8(body); bad != std::string_view::npos)
        return not_utf8(body, bad, "event");
      return body;
    } catch (const personal_data_error& e) {  // nothing is stored: the caller gets its code
      return e.get();
    } catch (const std::exception& e) {
      return make_error(errc::encode_failed, "cannot encode events: {}", e.what());
    }
  }

  /// The inverse of encode, upcasting old schema versions to the current types.
  static result<std::vector<variant>> decode(std::string_view body) {
    std::vector<variant> out;
    try {
      json_reader ar(body);
      ar.setNextName("events");
      ar.startNode();
      cereal::size_type n = 0;
      ar.loadSize(n);
      out.reserve(n);
      for (cereal::size_type i = 0; i < n; ++i) {
        ar.startNode();
        std::string type;
        int version = 0;
        ar(cereal::make_nvp("type", type), cereal::make_nvp("v", version));
        auto e = decode_one<0>(type, version, ar);
        if (!e) return std::move(e).error();
        out.push_back(std::move(e).value());
        ar.finishNode();
      }
      ar.finishNode();
    } catch (const personal_data_error& e) {
      return e.get();
    } catch (const std::exception& e) {
      return make_error(errc::decode_failed, "undecodable commit body: {}", e.what());
    }
    return out;
  }

 private:
  template <std::size_t I>
  static result<variant> decode_one(std::string_view type, int version, json_reader& ar) {
    if constexpr (I == sizeof...(Es)) {
      return make_error(errc::unknown_event_type, "unknown event type '{}'", type);
    } else {
      using E = std::variant_alternative_t<I, variant>;
      if (type != E::type_name) return decode_one<I + 1>(type, version, ar);
      auto e = decode_event<E>(version, ar);
      if (!e)
        return make_error(e.error().code, "{} (current schema version {})", e.error().message,
                          schema_version_of<E>());
      return variant{std::in_place_index<I>, std::move(e).value()};
    }
  }
};

}  // namespace jetsource::detail
