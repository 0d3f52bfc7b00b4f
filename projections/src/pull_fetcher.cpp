// detail: the hand-driven pull loop of one durable consumer (docs/adr/0006).
#include "pull_fetcher.hpp"

#include "log.hpp"

#include <nats/nats.h>

#include <algorithm>
#include <charconv>
#include <thread>

namespace jetsource::detail {

namespace {

using clock = std::chrono::steady_clock;

// How long after its expiry a request the server never answered is given up.
constexpr auto grace = std::chrono::milliseconds(250);

// The idle heartbeat asked for with each request: while a request waits, the server sends a
// "100" status this often. Nothing at all (no message, no status) for `silence` heartbeats
// means the outstanding requests are dead at the server.
std::chrono::milliseconds heartbeat_for(std::chrono::milliseconds expires) {
  return std::clamp(expires / 5, std::chrono::milliseconds(10), std::chrono::milliseconds(50));
}
constexpr int silence = 3;

// A request is over at the server `expires` after the server got it; the margin covers the way
// there.
constexpr auto expiry_margin = std::chrono::milliseconds(20);

}  // namespace

result<pull_fetcher> pull_fetcher::open(natsConnection* nc, const std::string& stream,
                                        const std::string& consumer, std::string name) {
  pull_fetcher f(nc, std::move(name));
  f.next_subject_ = fmt::format("$JS.API.CONSUMER.MSG.NEXT.{}.{}", stream, consumer);
  natsInbox* inbox = nullptr;
  if (natsStatus st = natsInbox_Create(&inbox); st != NATS_OK)
    return nats_error(st, "create inbox");
  f.inbox_ = inbox;
  natsInbox_Destroy(inbox);
  f.wake_subject_ = f.inbox_ + ".wake";
  natsSubscription* sub = nullptr;
  if (natsStatus st = natsConnection_SubscribeSync(&sub, nc, (f.inbox_ + ".*").c_str());
      st != NATS_OK)
    return nats_error(st, "subscribe to pull replies");
  f.sub_.reset(sub);
  natsSubscription_SetPendingLimits(sub, -1, -1);
  return f;
}

void pull_fetcher::request(int batch, std::chrono::milliseconds expires) {
  if (requests_.size() >= 2) return;
  const auto now = clock::now();
  pull r{next_id_++, static_cast<std::uint64_t>(batch), now + expires + grace,
         now + expires + expiry_margin};
  heartbeat_ = heartbeat_for(expires);
  auto body = fmt::format(R"({{"batch":{},"expires":{},"idle_heartbeat":{}}})", batch,
                          std::chrono::nanoseconds(expires).count(),
                          std::chrono::nanoseconds(heartbeat_).count());
  auto reply = fmt::format("{}.{}", inbox_, r.id);
  if (natsConnection_PublishRequest(nc_, next_subject_.c_str(), reply.c_str(), body.data(),
                                    static_cast<int>(body.size())) == NATS_OK) {
    if (requests_.empty()) last_heard_ = now;  // the silence is counted from here
    outstanding_ += r.remaining;
    requests_.push_back(r);
  }
}

void pull_fetcher::drop(std::uint64_t id) {
  for (auto it = requests_.begin(); it != requests_.end(); ++it)
    if (it->id == id) {
      outstanding_ -= it->remaining;
      requests_.erase(it);
      return;
    }
}

void pull_fetcher::expire(clock::time_point now) {
  while (!requests_.empty() && requests_.front().deadline < now) drop(requests_.front().id);
  // Neither a message nor a heartbeat: nats-server 2.9 sometimes leaves requests unanswered
  // while messages wait (seen in the soak: the next message came only once the client deadline
  // above dropped them, 350-750 ms later). Ask again now; if they were alive after all, what
  // they still bring counts against the new ones (MaxAckPending bounds it on the server).
  if (!requests_.empty() && now - last_heard_ > silence * heartbeat_) {
    log()->debug("projection {}: no message nor heartbeat for {} ms: asking again", name_,
                 std::chrono::duration_cast<std::chrono::milliseconds>(now - last_heard_).count());
    requests_.clear();
    outstanding_ = 0;
    ++renewed_;
  }
}

pull_fetcher::outcome pull_fetcher::next(delivery& out, std::chrono::milliseconds longest) {
  // The clock is read only by a call that may wait. A caller taking what has already arrived
  // (longest 0) makes one call per message, and two clock reads a message were ~8 % of the
  // fetcher's samples in a rebuild's profile (docs/performance.md): such calls use the last
  // reading, and what they hear counts as heard at the next call that reads the clock.
  const bool may_wait = longest.count() > 0;
  if (may_wait) {
    now_ = clock::now();
    if (heard_) last_heard_ = now_;
    heard_ = false;
    expire(now_);
  }
  natsMsg* raw = nullptr;
  const auto wait = requests_.empty() ? std::min(longest, std::chrono::milliseconds(5)) : longest;
  natsStatus s = natsSubscription_NextMsg(&raw, sub_.get(), wait.count());
  if (s == NATS_CONNECTION_CLOSED || s == NATS_INVALID_SUBSCRIPTION) return outcome::closed;
  if (s != NATS_OK || raw == nullptr) {
    if (s != NATS_TIMEOUT) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return outcome::nothing;
  }
  msg_ptr m(raw);
  if (may_wait) {
    now_ = clock::now();
    last_heard_ = now_;
  } else {
    heard_ = true;
  }
  const auto now = now_;
  // Statuses (heartbeats, the end of a request) have no payload; commits always have one.
  const std::string status = natsMsg_GetDataLength(raw) == 0 ? header(raw, "Status") : "";
  if (!status.empty()) {
    if (status == "100") return outcome::nothing;  // heartbeat
    // A status for one request: its reply subject is <inbox>.<id>.
    std::string_view subject = natsMsg_GetSubject(raw);
    std::uint64_t id = 0;
    auto dot = subject.rfind('.');
    std::from_chars(subject.data() + dot + 1, subject.data() + subject.size(), id);
    if (status != "404" && status != "408" && status != "409")
      log()->warn("projection {}: pull status {} {}", name_, status, header(raw, "Description"));
    else if (status == "409")
      log()->debug("projection {}: pull status 409 {}", name_, header(raw, "Description"));
    drop(id);
    return outcome::nothing;
  }
  const char* reply = natsMsg_GetReply(raw);
  auto meta = reply ? ack_reader_(reply) : std::nullopt;
  if (!meta) return outcome::nothing;  // not a JetStream message
  // Data messages arrive on their stream subject: they count against the oldest request that
  // the server can still be serving. One past its expiry is over at the server, whether or not
  // its 408 came (nats-server 2.9 sometimes sends none): counting the next request's messages
  // against it left the client sure two requests were out while the server had none, a stall
  // until the client deadline (350-750 ms in the soak, docs/performance.md). Counting a late
  // message of an expired request against the next one only asks for a little more, sooner.
  while (requests_.size() > 1 && requests_.front().expiry < now) drop(requests_.front().id);
  if (!requests_.empty()) {
    --outstanding_;
    if (--requests_.front().remaining == 0) requests_.pop_front();
  }
  out.msg = std::move(m);
  out.meta = *meta;
  return outcome::message;
}

void pull_fetcher::wake() const noexcept {
  // A pull request that the server answers at once (a 404 status when nothing waits): any role
  // that may pull may send it (an empty message to our own inbox would need the right to
  // publish to _INBOX.>, which docs/security.md's PROJECTOR role does not have).
  static constexpr char body[] = R"({"batch":1,"no_wait":true})";
  (void)natsConnection_PublishRequest(nc_, next_subject_.c_str(), wake_subject_.c_str(), body,
                                      static_cast<int>(sizeof body - 1));
}

void pull_fetcher::reset() {
  for (natsMsg* old = nullptr;
       natsSubscription_NextMsg(&old, sub_.get(), 0) == NATS_OK && old != nullptr; old = nullptr)
    natsMsg_Destroy(old);
  requests_.clear();
  outstanding_ = 0;
}

}  // namespace jetsource::detail
