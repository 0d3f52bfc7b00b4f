// detail: requests answered on pooled synchronous inbox subscriptions (reply_inboxes.hpp).
#include "nats/reply_inboxes.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

namespace jetsource::detail {

result<std::unique_ptr<reply_inboxes::inbox>> reply_inboxes::take(natsConnection* nc,
                                                                  std::string_view what) {
  {
    std::lock_guard lock(mutex_);
    if (!free_.empty()) {
      auto in = std::move(free_.back());
      free_.pop_back();
      return in;
    }
  }
  natsInbox* raw_inbox = nullptr;
  if (natsStatus s = natsInbox_Create(&raw_inbox); s != NATS_OK)
    return nats_error(s, fmt::format("{}: create an inbox", what));
  inbox_ptr name(raw_inbox);
  auto in = std::make_unique<inbox>();
  in->prefix = std::string(name.get()) + ".";
  natsSubscription* raw_sub = nullptr;
  if (natsStatus s = natsConnection_SubscribeSync(&raw_sub, nc, (in->prefix + "*").c_str());
      s != NATS_OK)
    return nats_error(s, fmt::format("{}: subscribe to an inbox", what));
  in->sub.reset(raw_sub);
  return in;
}

void reply_inboxes::give_back(std::unique_ptr<inbox> in) {
  std::lock_guard lock(mutex_);
  free_.push_back(std::move(in));
}

result<msg_ptr> reply_inboxes::request(natsConnection* nc, const std::string& subject,
                                       std::string_view data, std::chrono::milliseconds timeout,
                                       std::string_view what) {
  auto taken = take(nc, what);
  if (!taken) return std::move(taken).error();
  auto in = std::move(taken).value();
  const std::string reply = in->prefix + std::to_string(in->next++);
  if (natsStatus s = natsConnection_PublishRequest(nc, subject.c_str(), reply.c_str(), data.data(),
                                                   static_cast<int>(data.size()));
      s != NATS_OK) {
    give_back(std::move(in));
    return nats_error(s, what);
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    natsMsg* raw = nullptr;
    natsStatus s =
        natsSubscription_NextMsg(&raw, in->sub.get(), std::max<std::int64_t>(left.count(), 1));
    msg_ptr m(raw);
    // NATS_TIMEOUT: its reply may still come, and is dropped by the inbox's next user.
    // NATS_NO_RESPONDERS: nats.c's reading of the server's "503" status reply.
    if (s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS) {
      give_back(std::move(in));
      return nats_error(s, what);
    }
    if (s != NATS_OK) {  // closed, or the subscription is no longer valid: not pooled again
      retire(nc, std::move(in->sub));
      return nats_error(s, what);
    }
    if (std::strcmp(natsMsg_GetSubject(m.get()), reply.c_str()) == 0) {
      give_back(std::move(in));
      return m;
    }
  }
}

void reply_inboxes::clear() noexcept {
  std::lock_guard lock(mutex_);
  free_.clear();
}

}  // namespace jetsource::detail
