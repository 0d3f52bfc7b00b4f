// detail: the event store's small pure helpers shared by its parts: tokens shown in messages,
// decimal numbers in headers, the validation of store options.
#pragma once

#include <jetsource/event_store.hpp>
#include <jetsource/result.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace jetsource::detail::store {

/// A token shown in an error message: control characters escaped (and every byte >= 0x80 when
/// the token is not valid UTF-8, so the message itself stays UTF-8), long tokens shortened.
std::string printable(std::string_view s);

/// A whole string as a decimal number; errc::decode_failed otherwise.
result<std::uint64_t> parse_u64(std::string_view s);

/// The options of event_store::open, checked before anything is sent (errc::invalid_argument).
result<void> check_options(const store_options& o);

}  // namespace jetsource::detail::store
