// The event store's async publisher: append_async, flush, nats.c's ack handler, and the wait for
// outstanding acks when a store closes.
#include <jetsource/event_store.hpp>

#include "log.hpp"
#include "store/async_publisher.hpp"
#include "store/commit_message.hpp"
#include "store/store_state.hpp"

#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace jetsource {

namespace detail {

namespace {

// Set while a thread runs the async ack handler: such a thread must never wait for acks (they
// are delivered by that very thread).
thread_local bool in_ack_handler = false;

}  // namespace

store_state::~store_state() {
  reaper.reset();  // its subscriptions use the JetStream context
  if (async && js_async) {
    // Acks still on their way must not reach a destroyed store: wait for them (each has a
    // deadline, ack_timeout), then close the async context.
    std::unique_lock lock(async->mutex);
    auto deadline = options.ack_timeout + std::chrono::seconds{2};
    if (!in_ack_handler)
      async->changed.wait_for(lock, deadline, [this] { return async->in_flight == 0; });
    std::vector<async_core::pending> orphans;
    for (auto& [m, p] : async->by_msg) orphans.push_back(std::move(p));
    async->by_msg.clear();
    bool leftovers = async->in_flight > 0;
    lock.unlock();
    js_async.reset();
    if (leftovers) {
      // An ack handler may still be running on nats.c's thread: keep what it touches alive.
      new std::shared_ptr<async_core>(async);  // NOLINT: deliberate leak, see above
      log()->warn("event store {}: closed with {} async appends unacknowledged", options.stream,
                  orphans.size());
    }
    for (auto& p : orphans)
      if (p.done)
        p.done(make_error(errc::unreachable, "append to {}: the store was closed before its ack",
                          p.subject));
  }
  js_async.reset();
  js.reset();
}

namespace store {

namespace {

bool connection_closed(const store_state& st) {
  return natsConnection_IsClosed(st.conn->nc.get());
}

}  // namespace

result<void> publish_async(store_state& st, msg_ptr msg, std::string id,
                           detail::async_core::pending p) {
  if (connection_closed(st))
    return make_error(errc::unreachable, "append to {}: the connection is closed", p.subject);
  auto& core = *st.async;
  {
    std::unique_lock lock(core.mutex);
    // A callback that appends again must not wait for acks only its own thread can deliver.
    if (!detail::in_ack_handler && core.in_flight >= core.max_in_flight) {
      auto patience = st.options.ack_timeout + std::chrono::seconds{5};
      ++core.waiting;
      bool room =
          core.space.wait_for(lock, patience, [&] { return core.in_flight < core.max_in_flight; });
      --core.waiting;
      if (!room)
        return make_error(errc::timeout,
                          "append to {}: {} async appends still awaiting their acks after {} ms",
                          p.subject, core.in_flight,
                          std::chrono::duration_cast<std::chrono::milliseconds>(patience).count());
    }
    ++core.in_flight;
    p.commit_id = std::move(id);
    core.by_msg.emplace(msg.get(), std::move(p));
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = st.options.ack_timeout.count();  // nats.c reports a missing ack as a timeout
  natsMsg* raw = msg.release();
  natsStatus s = js_PublishMsgAsync(st.js_async.get(), &raw, &po);
  if (s == NATS_OK) return success();
  msg.reset(raw);  // still ours: nats.c did not take it
  std::string subject;
  {
    std::lock_guard lock(core.mutex);
    // No ack handler runs for a refused publish: take back the entry we registered.
    if (auto it = core.by_msg.find(raw); it != core.by_msg.end()) {
      subject = std::move(it->second.subject);
      core.by_msg.erase(it);
    }
    --core.in_flight;
    core.released();
  }
  return nats_error(s, fmt::format("append to {}", subject));
}

// nats.c's async ack handler (one thread per context). Owns `msg`; finds the callback by the
// message's Nats-Msg-Id and reports exactly once. A conflict is reported as is: unlike the sync
// path it does not check whether the subject's last message carries our id (that would be a
// blocking request on nats.c's delivery thread); callers retrying after errc::timeout should use
// the sync append, which resolves that case.
void on_async_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  msg_ptr owned(msg);
  auto* core = static_cast<detail::async_core*>(closure);
  std::optional<detail::async_core::pending> p;
  {
    std::lock_guard lock(core->mutex);
    if (auto it = core->by_msg.find(msg); it != core->by_msg.end()) {
      p = std::move(it->second);
      core->by_msg.erase(it);
    }
  }
  if (!p) return;  // not one of ours (or handed to its caller when the store closed)
  {
    detail::in_ack_handler = true;
    result<append_result> r = make_error(errc::internal, "no ack");
    if (pa && pa->Duplicate && p->slot) {
      // A commit slot taken (ADR 0015): by a commit decided on the same version, or by an
      // earlier send of this very commit. Telling which needs a read, which this thread must
      // not make: reported as a conflict (the repository then reads and decides again; a
      // caller re-sending a commit should use the sync append, which tells the two apart).
      r = make_error(errc::conflict,
                     "append to {}: its version slot was already taken, at sequence {}", p->subject,
                     pa->Sequence);
    } else if (pa) {
      r = append_result{pa->Sequence, p->version,
                        pa->Duplicate ? append_status::already_appended : append_status::appended,
                        std::move(p->commit_id), p->state && !pa->Duplicate};
    } else {
      natsStatus s = pae ? pae->Err : NATS_ERR;
      jsErrCode code = pae ? pae->ErrCode : static_cast<jsErrCode>(0);
      std::string what = fmt::format("append to {}", p->subject);
      error e = nats_error(s, what, code);  // for its code; the text is the ack's
      const char* text = pae && pae->ErrText ? pae->ErrText : natsStatus_GetText(s);
      e.message = fmt::format("{}: {}", what, text);
      r = std::move(e);
    }
    if (p->done) {
      try {
        p->done(std::move(r));
      } catch (const std::exception& ex) {
        detail::log()->error("append callback for {} threw: {}", p->subject, ex.what());
      } catch (...) {
        detail::log()->error("append callback for {} threw", p->subject);
      }
    } else if (!r) {
      detail::log()->warn("{}", r.error());
    }
    p.reset();  // the callback's captures go before the store may go
    detail::in_ack_handler = false;
  }
  std::lock_guard lock(core->mutex);
  --core->in_flight;
  core->released();
}

}  // namespace store

}  // namespace detail

result<void> event_store::append_async(commit c, append_callback done) {
  auto& st = *state_;
  auto built = detail::store::build_commit(st, c);
  if (!built) return std::move(built).error();
  return detail::store::publish_async(
      st, std::move(built->msg), std::move(built->commit_id),
      {std::move(done), c.version, std::move(built->subject), {}, built->slot, built->state});
}

result<void> event_store::flush(std::chrono::milliseconds timeout) {
  auto& core = *state_->async;
  if (detail::in_ack_handler)
    return make_error(errc::invalid_argument,
                      "flush called from an append callback (it would wait for itself)");
  std::unique_lock lock(core.mutex);
  if (!core.changed.wait_for(lock, timeout, [&] { return core.in_flight == 0; }))
    return make_error(errc::timeout,
                      "flush: {} async appends still awaiting their acks after {} ms",
                      core.in_flight, timeout.count());
  return success();
}

}  // namespace jetsource
