// detail: requests answered on pooled synchronous inbox subscriptions (reply_inboxes.hpp).
#include "nats/reply_inboxes.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <utility>

namespace jetsource::detail {

result<std::unique_ptr<reply_inboxes::inbox>> reply_inboxes::take(std::string_view what) {
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
  if (natsStatus s = natsConnection_SubscribeSync(&raw_sub, nc_, (in->prefix + "*").c_str());
      s != NATS_OK)
    return nats_error(s, fmt::format("{}: subscribe to an inbox", what));
  in->sub.reset(raw_sub);
  if (driver_ != nullptr) driver_->flush();  // the SUB
  return in;
}

void reply_inboxes::give_back(std::unique_ptr<inbox> in) {
  std::lock_guard lock(mutex_);
  free_.push_back(std::move(in));
}

reply_inboxes::batch::batch(reply_inboxes& pool, std::unique_ptr<inbox> in, std::size_t size)
    : pool_(&pool), in_(std::move(in)), first_(in_->next), size_(size) {
  in_->next += size;
}

reply_inboxes::batch::~batch() {
  if (!in_) return;
  if (broken_)  // closed, or no longer valid: not pooled again
    retire(pool_->nc_, std::move(in_->sub));
  else  // replies still due (a timeout) are dropped by the inbox's next user
    pool_->give_back(std::move(in_));
}

std::string reply_inboxes::batch::reply_subject(std::size_t i) const {
  return in_->prefix + std::to_string(first_ + i);
}

natsStatus reply_inboxes::batch::send(std::size_t i, const std::string& subject,
                                      std::string_view data) {
  natsStatus s =
      natsConnection_PublishRequest(pool_->nc_, subject.c_str(), reply_subject(i).c_str(),
                                    data.data(), static_cast<int>(data.size()));
  if (s == NATS_OK && pool_->driver_ != nullptr) pool_->driver_->flush();
  return s;
}

natsStatus reply_inboxes::batch::next(msg_ptr& m, std::size_t& index,
                                      std::chrono::milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    natsMsg* raw = nullptr;
    natsStatus s = NATS_OK;
    if (pool_->driver_ != nullptr) {
      s = pool_->driver_->next(in_->sub.get(), &raw, deadline);
    } else {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      s = natsSubscription_NextMsg(&raw, in_->sub.get(), std::max<std::int64_t>(left.count(), 1));
    }
    m.reset(raw);
    // NATS_NO_RESPONDERS: nats.c's reading of the server's "503" status reply.
    if (s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS) return s;
    if (s != NATS_OK) {
      broken_ = true;
      return s;
    }
    const std::string_view subject = natsMsg_GetSubject(m.get());
    std::uint64_t token = 0;
    if (subject.starts_with(in_->prefix)) {
      const auto digits = subject.substr(in_->prefix.size());
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), token);
      if (ec == std::errc{} && end == digits.data() + digits.size() && token >= first_ &&
          token - first_ < size_) {
        index = static_cast<std::size_t>(token - first_);
        return NATS_OK;
      }
    }
  }
}

result<reply_inboxes::batch> reply_inboxes::start(std::size_t size, std::string_view what) {
  auto in = take(what);
  if (!in) return std::move(in).error();
  return batch(*this, std::move(in).value(), size);
}

result<msg_ptr> reply_inboxes::request(const std::string& subject, std::string_view data,
                                       std::chrono::milliseconds timeout, std::string_view what) {
  auto b = start(1, what);
  if (!b) return std::move(b).error();
  if (natsStatus s = b->send(0, subject, data); s != NATS_OK) return nats_error(s, what);
  msg_ptr m;
  std::size_t index = 0;
  if (natsStatus s = b->next(m, index, timeout); s != NATS_OK) return nats_error(s, what);
  return m;
}

void reply_inboxes::clear() noexcept {
  std::lock_guard lock(mutex_);
  free_.clear();
}

}  // namespace jetsource::detail
