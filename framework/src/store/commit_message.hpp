// detail: how the event store builds a message: subjects, the RFC 3339 timestamp, a message
// builder that checks the server's size limits, and a commit's message with its headers.
#pragma once

#include <jetsource/event_store.hpp>
#include <jetsource/result.hpp>

#include "nats/handles.hpp"
#include "store/store_state.hpp"

#include <boost/container/small_vector.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace jetsource::detail::store {

// nats-server 2.9.10 refuses a message whose header block is longer than 65535 bytes
// (stream.go: len(hdr) > math.MaxUint16, JSStreamHeaderExceedsMaximumErr, error 10097).
constexpr std::size_t max_header_bytes = 65535;

/// RFC 3339, UTC, microseconds: 2026-11-22T11:28:57.123456Z.
std::string timestamp_now();

/// <prefix>.<Type>.<partition>.<id>, after validating type and id (errc::invalid_id).
result<std::string> make_subject(const store_options& o, std::string_view type,
                                 std::string_view id);

// A message under construction: its headers are set on the natsMsg and counted for the size
// check (NATS/1.0 line, "Key: Value\r\n" each, blank line).
class message_builder {
 public:
  // `subject` and `body` must outlive build().
  message_builder(const std::string& subject, std::string_view body)
      : subject_(subject), body_(body) {}

  void set(const char* key, std::string value) {
    headers_.push_back({key, nullptr, std::move(value)});
  }
  /// A value that outlives build(): not copied.
  void set_ref(const char* key, const std::string& value) { headers_.push_back({key, &value, {}}); }

  /// The header block as sent: "NATS/1.0\r\n", "Key: Value\r\n" each, "\r\n".
  std::size_t header_size() const {
    std::size_t n = std::strlen("NATS/1.0\r\n") + 2;
    for (const auto& h : headers_) n += std::strlen(h.key) + 2 + h.value().size() + 2;
    return n;
  }
  std::size_t size() const { return body_.size() + header_size(); }
  /// Whether the message is within the server's max payload (headers and body).
  bool fits(natsConnection* nc) const {
    auto max = natsConnection_GetMaxPayload(nc);
    return max <= 0 || size() <= static_cast<std::size_t>(max);
  }
  /// Takes back the last header set and sends `body` instead (also outliving build()).
  void drop_last(std::string_view body) {
    headers_.pop_back();
    body_ = body;
  }

  // Fails with payload_too_large (nothing sent) when the message exceeds the server's limits:
  // its max payload (headers and body) and 65535 bytes of headers. `hint` ends the message.
  result<msg_ptr> build(natsConnection* nc, std::string_view hint = {}) const {
    if (header_size() > max_header_bytes)
      return make_error(errc::payload_too_large,
                        "message to {}: its headers are {} bytes, the server accepts at most {} "
                        "bytes of headers{}",
                        subject_, header_size(), max_header_bytes, hint);
    if (!fits(nc))
      return make_error(errc::payload_too_large,
                        "message to {} is {} bytes (body {} + headers), the server accepts at "
                        "most {} bytes",
                        subject_, size(), body_.size(), natsConnection_GetMaxPayload(nc));
    natsMsg* raw = nullptr;
    natsStatus s = natsMsg_Create(&raw, subject_.c_str(), nullptr, body_.data(),
                                  static_cast<int>(body_.size()));
    msg_ptr m(raw);
    for (const auto& h : headers_)
      if (s == NATS_OK) s = natsMsgHeader_Set(m.get(), h.key, h.value().c_str());
    if (s != NATS_OK) return nats_error(s, fmt::format("build message to {}", subject_));
    return m;
  }

  const std::string& subject() const { return subject_; }

 private:
  struct header_value {
    const char* key;
    const std::string* borrowed;  // or:
    std::string owned;
    const std::string& value() const { return borrowed ? *borrowed : owned; }
  };
  const std::string& subject_;
  std::string_view body_;
  boost::container::small_vector<header_value, 12> headers_;
};

/// A commit's message, ready to publish, with its subject and commit id.
struct built_commit {
  msg_ptr msg;
  std::string subject;
  std::string commit_id;
  bool slot = false;   // Nats-Msg-Id is the commit slot <Type>.<id>@<base version> (ADR 0015)
  bool state = false;  // the body carries commit::state (ADR 0022)
};

/// The commit slot of a commit decided on `base_version`: <Type>.<id>@<base version>.
std::string commit_slot(std::string_view type, std::string_view id, std::uint64_t base_version);

/// Validates a commit (ids, headers, body, version, state) and builds its message; nothing is
/// sent. The state is left out when the message would exceed the server's limits with it.
result<built_commit> build_commit(const store_state& st, const commit& c);

}  // namespace jetsource::detail::store
