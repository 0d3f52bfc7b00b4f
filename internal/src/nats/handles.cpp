// detail: nats.c status mapping and small message helpers.
#include "nats/handles.hpp"

#include "nats/reply_inboxes.hpp"

#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace jetsource::detail {
namespace {

// The latest permission violation noted, until when it explains a timeout. Written by nats.c's
// error-handler thread, read by whichever thread maps an error: guarded by its mutex.
struct noted_violation {
  std::mutex mutex;
  std::string text;
  std::chrono::steady_clock::time_point until{};
};

noted_violation& violations() {
  static noted_violation v;
  return v;
}

std::optional<std::string> recent_permission_violation() {
  auto& v = violations();
  std::lock_guard lock(v.mutex);
  if (v.text.empty() || std::chrono::steady_clock::now() > v.until) return std::nullopt;
  return v.text;
}

}  // namespace

void note_permission_violation(std::string text, std::chrono::milliseconds window) {
  auto& v = violations();
  std::lock_guard lock(v.mutex);
  v.text = std::move(text);
  v.until = std::chrono::steady_clock::now() + window;
}

void permission_notes::note(std::string text) {
  std::lock_guard lock(mutex_);
  recent_.push_back({std::move(text), clock::now()});
  if (recent_.size() > 32) recent_.pop_front();
  count_.fetch_add(1, std::memory_order_release);
}

std::optional<std::string> permission_notes::about(std::string_view needle,
                                                   clock::time_point since) const {
  std::lock_guard lock(mutex_);
  for (auto it = recent_.rbegin(); it != recent_.rend() && it->at >= since; ++it)
    if (it->text.find(needle) != std::string::npos) return it->text;
  return std::nullopt;
}

void retire(natsConnection* nc, subscription_ptr sub, std::chrono::milliseconds patience) noexcept {
  if (!sub) return;
  natsSubscription_Unsubscribe(sub.get());
  // While disconnected no reader thread delivers; the flush would only wait out `patience`.
  if (nc != nullptr && natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED)
    natsConnection_FlushTimeout(nc, static_cast<std::int64_t>(patience.count()));
}

error nats_error(natsStatus s, std::string_view what, jsErrCode js_code) {
  const char* last = nats_GetLastError(nullptr);
  std::string text = (last && *last) ? last : natsStatus_GetText(s);
  errc code = errc::server_error;
  switch (s) {
    case NATS_TIMEOUT:
      code = errc::timeout;
      break;
    case NATS_NO_SERVER:
    case NATS_NO_RESPONDERS:
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_STALE_CONNECTION:
    case NATS_IO_ERROR:
    case NATS_CONNECTION_AUTH_FAILED:
    case NATS_NOT_PERMITTED:
    case NATS_SSL_ERROR:
      code = errc::unreachable;
      break;
    case NATS_MAX_PAYLOAD:
      code = errc::payload_too_large;
      break;
    case NATS_NOT_FOUND:
      code = errc::not_found;
      break;
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
      code = errc::invalid_argument;
      break;
    default:
      break;
  }
  if (js_code == JSStreamWrongLastSequenceErr) code = errc::conflict;
  // "JetStream system temporarily unavailable" / "cluster can not handle request": a cluster
  // electing a leader; transient, as an unreachable server is.
  if (js_code == JSClusterNotAvailErr || js_code == JSClusterNotLeaderErr) code = errc::unreachable;
  // Calls that return no JetStream error code (js_CreateKeyValue in nats.c 3.4.1) leave only
  // the server's text: the same 10008.
  if (js_code == 0 && s == NATS_ERR &&
      text.find("JetStream system temporarily unavailable") != std::string::npos)
    code = errc::unreachable;
  if (s == NATS_TIMEOUT || s == NATS_NOT_PERMITTED) {
    // The server dropped what we sent and said why on the side (an -ERR): name that, not the
    // timeout it caused.
    if (auto why = recent_permission_violation()) return permission_refused(what, *why);
  }
  if (js_code != 0)
    return make_error(code, "{}: {} (jetstream error {})", what, text, static_cast<int>(js_code));
  return make_error(code, "{}: {}", what, text);
}

error permission_refused(std::string_view what, std::string_view why) {
  return make_error(errc::server_error,
                    "{}: permissions violation: the server refused it ({}); this user lacks the "
                    "permission (see docs/security.md)",
                    what, why);
}

std::string header(natsMsg* m, const char* name) {
  const char* v = nullptr;
  if (natsMsgHeader_Get(m, name, &v) != NATS_OK || v == nullptr) return {};
  return v;
}

std::optional<std::string_view> header_block(natsMsg* m) noexcept {
  const char* subject = natsMsg_GetSubject(m);
  const char* data = natsMsg_GetData(m);
  if (subject == nullptr || data == nullptr) return std::nullopt;
  const char* reply = natsMsg_GetReply(m);
  const char* after = reply != nullptr ? reply : subject;
  const char* start = after + std::strlen(after) + 1;
  constexpr std::string_view status_line = "NATS/1.0";
  if (data < start + status_line.size() + 5 || data - start > 65536 || data[-1] != '\0' ||
      std::string_view(start, status_line.size()) != status_line)
    return std::nullopt;
  return std::string_view(start, static_cast<std::size_t>(data - start - 1));
}

connection_state::~connection_state() {
  js.reset();
  if (reads) reads->stop();  // nothing reads reads_nc from here on
  if (reads_nc) natsConnection_Close(reads_nc.get());
  if (nc) natsConnection_Close(nc.get());
  if (replies) replies->clear();  // after the close: the reader thread no longer queues on them
  reads_nc.reset();
  nc.reset();
  reads.reset();
  reads_opts.reset();
  opts.reset();
}

}  // namespace jetsource::detail
