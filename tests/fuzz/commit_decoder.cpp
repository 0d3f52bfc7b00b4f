// libFuzzer target: the commit decoder, fed a whole message as published (docs/wire-format.md
// §3): a header block, a blank line, the body. The headers are read with the projector's header
// reader; the body is decoded the two ways jetsource decodes stored commits:
// - the repository's load (event_registry<...>::decode, with the bank sample's upcast chain and
//   the order sample's nested lines), then re-encoded: what decodes must encode and decode again
//   to the same events;
// - the projector's walk (applier.cpp, run_handlers): the number of events in the body against
//   Es-Events / Es-Version, then each event by its "type" and "v" through decode_event, as a
//   projection's handler decodes it;
// - a snapshot body (repository: from_json<aggregate>("state", ...)).
// Bad input must come back as an error, never a crash, a hang or undefined behaviour.
#include <bank/account.hpp>
#include <order_system/order.hpp>

#include <jetsource/detail/commit_events.hpp>
#include <jetsource/detail/personal_codec.hpp>
#include <jetsource/event.hpp>

#include "wire/header_block.hpp"
#include "wire/headers.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <variant>

// The order sample's events carry personal fields (crypto-shredding): the decoder asks a key
// provider. The fuzz build links the cipher (libsodium) but not the key store (nats.c), so this
// file provides the provider lookup itself: one fixed key for every subject, so the base64 and
// authentication paths of personal<T> are fuzzed too (a forged field must fail to authenticate).
namespace jetsource::detail {
namespace {
class fixed_key_provider final : public key_provider {
 public:
  result<data_key> key_for_write(std::string_view) override { return key_; }
  result<std::optional<data_key>> key_for_read(std::string_view) override {
    return std::optional<data_key>(key_);
  }

 private:
  data_key key_{};
};
}  // namespace
key_provider* current_key_provider() noexcept {
  static fixed_key_provider fixed;
  return &fixed;
}
}  // namespace jetsource::detail

namespace {

using jetsource::detail::json_reader;

void require(bool ok) {
  if (!ok) std::abort();  // an invariant broken: libFuzzer reports it as a crash
}

// The repository's load: decode, and what decodes re-encodes and decodes to the same events.
template <class Variant>
void load(std::string_view body) {
  using registry = jetsource::event_registry<Variant>;
  auto events = registry::decode(body);
  if (!events) return;
  auto again = registry::encode(*events);
  if (!again) return;  // e.g. a string that is not UTF-8: refused at encode, stored never
  auto back = registry::decode(*again);
  require(back.has_value() && back->size() == events->size());
  require(registry::names(*back) == registry::names(*events));
}

// One event by its wire name and schema version, as projection::on's handler decodes it.
template <class Variant, std::size_t I = 0>
void decode_one(std::string_view type, int schema, json_reader& ar) {
  if constexpr (I < std::variant_size_v<Variant>) {
    using E = std::variant_alternative_t<I, Variant>;
    if (type == E::type_name) {
      (void)jetsource::detail::decode_event<E>(schema, ar);
      return;
    }
    decode_one<Variant, I + 1>(type, schema, ar);
  }
}

// The projector's and the reactors' walk over a body (detail::for_each_commit_event): `named`
// events per Es-Events; a mismatch is their decode_failed.
template <class Variant>
void project(std::string_view body, std::size_t named) {
  const auto decode = [](std::size_t, std::string_view type, int schema,
                         json_reader& ar) -> jetsource::result<void> {
    decode_one<Variant>(type, schema, ar);
    return jetsource::success();
  };
  try {
    std::string type;
    (void)jetsource::detail::for_each_commit_event(body, named, type, decode);
  } catch (const std::exception&) {  // decode_failed (dead letter)
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto blank = in.find("\r\n\r\n");
  const std::string_view block = blank == std::string_view::npos ? "" : in.substr(0, blank + 4);
  const std::string_view body = blank == std::string_view::npos ? in : in.substr(blank + 4);
  const auto headers = jetsource::detail::parse_commit_headers(block);
  const std::size_t named = jetsource::detail::event_count(headers ? headers->events : "");

  load<bank::account::event>(body);
  load<order_system::order::event>(body);
  project<bank::account::event>(body, named);
  project<order_system::order::event>(body, named);
  (void)jetsource::detail::from_json<bank::account>("state", body);
  return 0;
}
