// jetsource::error: names of error codes and the human form of errors.
#include <jetsource/result.hpp>

namespace jetsource {

std::string_view to_string(errc code) noexcept {
  switch (code) {
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::invalid_id:
      return "invalid_id";
    case errc::unknown_event_type:
      return "unknown_event_type";
    case errc::decode_failed:
      return "decode_failed";
    case errc::encode_failed:
      return "encode_failed";
    case errc::payload_too_large:
      return "payload_too_large";
    case errc::unreachable:
      return "unreachable";
    case errc::timeout:
      return "timeout";
    case errc::conflict:
      return "conflict";
    case errc::stream_config_mismatch:
      return "stream_config_mismatch";
    case errc::server_error:
      return "server_error";
    case errc::server_binary:
      return "server_binary";
    case errc::rejected:
      return "rejected";
    case errc::not_found:
      return "not_found";
    case errc::io:
      return "io";
    case errc::internal:
      return "internal";
    case errc::busy:
      return "busy";
    case errc::corrupt:
      return "corrupt";
  }
  return "unknown";
}

std::string to_string(const error& e) {
  if (e.message.empty()) return std::string(to_string(e.code));
  return fmt::format("{}: {}", to_string(e.code), e.message);
}

}  // namespace jetsource
