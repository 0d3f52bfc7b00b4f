// detail: a connection whose socket the threads waiting for replies read (caller_reads.hpp).
#include "nats/caller_reads.hpp"

#include "thread_name.hpp"

#include <poll.h>

#include <algorithm>
#include <ctime>

namespace jetsource::detail {
namespace {

// The longest a reader polls before looking again at whether the socket is still the one to
// poll: nats.c closes a stale connection's socket from its timer thread, which does not wake a
// poll on it.
constexpr std::chrono::milliseconds poll_slice{50};

caller_reads& self(void* user) {
  return *static_cast<caller_reads*>(user);
}

}  // namespace

natsStatus caller_reads::install(natsOptions* opts) {
  return natsOptions_SetEventLoop(opts, this, on_attach, on_read, on_write, on_detach);
}

natsStatus caller_reads::on_attach(void** user, void* loop, natsConnection* nc, natsSock fd) {
  *user = loop;
  auto& d = self(loop);
  d.nc_.store(nc);
  d.fd_.store(static_cast<int>(fd));
  d.polling_.store(true);
  return NATS_OK;
}

natsStatus caller_reads::on_read(void* user, bool add) {
  self(user).polling_.store(add);
  return NATS_OK;
}

natsStatus caller_reads::on_write(void* user, bool add) {
  self(user).write_wanted_.store(add);
  return NATS_OK;
}

natsStatus caller_reads::on_detach(void* user) {
  auto& d = self(user);
  d.polling_.store(false);
  d.fd_.store(-1);
  return NATS_OK;
}

void caller_reads::start(natsConnection* nc) {
  nc_.store(nc);
  ticker_ = std::thread([this] {
    name_this_thread("js-read-ticker");
    tick();
  });
}

void caller_reads::stop() noexcept {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  stopping_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

void caller_reads::flush() {
  // What the socket does not take at once is written by the next reader (it polls for
  // writability too). Only while nats.c wants its write event, and one writer at a time: with
  // nothing buffered, natsConnection_ProcessWriteEvent sends 0 bytes and takes that for a closed
  // connection.
  std::lock_guard lock(write_mutex_);
  if (write_wanted_.load() && polling_.load()) natsConnection_ProcessWriteEvent(nc_.load());
}

void caller_reads::read_once(clock::time_point until) {
  const auto now = clock::now();
  const auto wait = std::clamp(std::chrono::duration_cast<std::chrono::nanoseconds>(until - now),
                               std::chrono::nanoseconds{0}, std::chrono::nanoseconds{poll_slice});
  const int fd = fd_.load();
  if (!polling_.load() || fd < 0) {  // connecting again: nats.c's reconnect thread has the socket
    std::this_thread::sleep_for(
        std::min(wait, std::chrono::nanoseconds{std::chrono::milliseconds{1}}));
    return;
  }
  flush();
  pollfd p{fd, static_cast<short>(POLLIN | (write_wanted_.load() ? POLLOUT : 0)), 0};
  const timespec ts{static_cast<std::time_t>(wait.count() / 1'000'000'000),
                    static_cast<long>(wait.count() % 1'000'000'000)};
  if (::ppoll(&p, 1, &ts, nullptr) <= 0) return;
  if ((p.revents & POLLNVAL) != 0) {  // closed under us: the next attach brings the new one
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
    return;
  }
  if ((p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) natsConnection_ProcessReadEvent(nc_.load());
  flush();  // a PONG, or the rest
}

natsStatus caller_reads::next(natsSubscription* sub, natsMsg** m, clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  for (;;) {
    std::uint64_t queued = 0;
    if (natsSubscription_QueuedMsgs(sub, &queued) != NATS_OK || queued > 0) {
      lock.unlock();
      return natsSubscription_NextMsg(m, sub, 1);  // the queued message, or why there is none
    }
    if (clock::now() >= deadline) return NATS_TIMEOUT;
    if (!reading_) {
      reading_ = true;
      lock.unlock();
      read_once(deadline);
      lock.lock();
      reading_ = false;
      ++reads_;
      if (waiters_ > 0) changed_.notify_all();
      continue;
    }
    const auto seen = reads_;
    ++waiters_;
    changed_.wait_until(lock, deadline, [&] { return !reading_ || reads_ != seen; });
    --waiters_;
  }
}

void caller_reads::tick() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    stopping_.wait_for(lock, idle_tick, [&] { return stop_; });
    if (stop_ || reading_) continue;
    reading_ = true;
    lock.unlock();
    read_once(clock::now());  // what is there, without waiting; and what is to be written
    lock.lock();
    reading_ = false;
    ++reads_;
    if (waiters_ > 0) changed_.notify_all();
  }
}

}  // namespace jetsource::detail
