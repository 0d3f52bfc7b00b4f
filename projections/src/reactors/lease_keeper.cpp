// detail: the lease keeper, on its own thread (ADR 0014, "Membership" and "Leases"): watches the
// group's bucket, keeps this member's key alive, acquires the partitions this member is the
// rendezvous target of once their lease is free or expired (by this observer's clock), renews
// its leases every lease/3 by compare-and-set carrying each partition's checkpoint, gives a
// partition up at once when a renewal is refused, releases partitions whose target is another
// live member (after the cursor settled them), serves park retry/skip requests, and on stop
// writes the last checkpoints with empty holders so that the others take over at once.
#include "log.hpp"
#include "reactors/group_view.hpp"
#include "reactors/member_state.hpp"

#include <map>
#include <optional>
#include <set>
#include <thread>

namespace jetsource::detail {

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

member_value member_of(const reactor_member_state& s) {
  member_value m;
  m.instance = s.instance;
  m.incarnation = s.incarnation;
  m.host = s.host;
  m.pid = s.pid;
  m.lease_ms = s.lease().count();
  if (s.owned) m.partitions = s.owned->partitions();
  m.position = s.position.load();
  m.pending = s.pending.load();
  return m;
}

// Every member belongs to the keeper thread.
class lease_keeper {
 public:
  explicit lease_keeper(reactor_member_state& s)
      : s_(s),
        view_(s.r.name(), s.instance, s.incarnation, s.partitions(), s.lease()),
        release_asked_(s.partitions(), false) {}
  void run();

 private:
  struct held {
    std::uint64_t revision = 0;
    std::uint64_t epoch = 0;
  };
  bool open_watch();
  void watch(milliseconds wait);
  void check_watch(clock::time_point now);
  void apply(kvEntry* e);
  void refresh(std::uint32_t p);
  void warn_acquire_failed(std::uint32_t p, const error& e);
  void renew_member_if_due();
  void renew();
  bool own_renewal_landed(std::uint32_t p, held& h);
  void balance(clock::time_point now);
  void acquire(std::uint32_t p);
  void hand_back();
  void serve_requests();
  void final_release();
  lease_value value(std::uint64_t epoch, std::uint64_t checkpoint, bool mine) const {
    return {mine ? s_.instance : "", mine ? s_.incarnation : "", epoch, checkpoint, utc_now()};
  }

  reactor_member_state& s_;
  group_view view_;
  kv_watcher_ptr watcher_;
  std::map<std::uint32_t, held> held_;
  std::vector<bool> release_asked_;
  // Renewals failing since (an outage); warned once it outlasts the lease (handlers are fenced).
  std::optional<clock::time_point> failing_since_;
  bool failing_warned_ = false;
  std::set<std::pair<std::string, std::uint64_t>> served_;  // park requests (key, revision)
  // Acquisitions failing for another reason than a lost race (an outage): warned once until one
  // goes through, and paused for a tenth of a lease after each failure (they were retried every
  // 10 ms and logged each time: 64,000 lines in one test run).
  bool acquire_failing_ = false;
  clock::time_point acquire_paused_until_{};
  std::uint64_t last_watched_ = 0;  // the highest revision the watch delivered
  // The oldest write of this member's own key the watch has not delivered yet, and when it was
  // stored: a watch that stays behind it for 3 leases is dead and is opened again (nats.c's
  // ordered consumer under the watch can fail to come back after a node loss; a frozen view
  // makes every other member look gone, and a partition handed over to this member would never
  // be taken).
  std::optional<std::pair<std::uint64_t, clock::time_point>> unseen_put_;
  clock::time_point next_member_renewal_{};  // when the member key is written next
};

// Opens the bucket's watch and applies the bucket as it is first (the watch ends its initial
// values with a null entry): deciding from a partial view would grab partitions whose members
// it has not seen yet. False when the watch could not be opened.
bool lease_keeper::open_watch() {
  watcher_.reset();
  auto w = s_.bucket->watch_all();
  if (!w) {
    log()->warn("reactor {}: {}", s_.r.name(), w.error());
    return false;
  }
  watcher_ = std::move(*w);
  const auto synced_by = clock::now() + std::chrono::seconds(5);
  for (bool synced = false; !synced && clock::now() < synced_by;) {
    kvEntry* e = nullptr;
    if (kvWatcher_Next(&e, watcher_.get(), 100) != NATS_OK) continue;
    if (e == nullptr) {
      synced = true;
      continue;
    }
    kv_entry_ptr holder(e);
    apply(e);
  }
  return true;
}

void lease_keeper::run() {
  while (!open_watch()) {
    if (s_.keeper_stop.load()) return;
    std::this_thread::sleep_for(milliseconds(200));
  }
  const auto period = s_.lease() / 3;
  auto next_renewal = clock::now();
  while (!s_.keeper_stop.load()) {
    watch(milliseconds(10));
    renew_member_if_due();
    auto now = clock::now();
    if (now >= next_renewal) {
      renew();
      next_renewal = now + period;
    }
    check_watch(now);
    if (!s_.queue_mode()) {
      hand_back();
      if (!s_.stopping.load()) balance(clock::now());
      s_.owned->flush();
      serve_requests();
    }
    s_.parked_count.store(view_.parks().size(), std::memory_order_relaxed);
  }
  final_release();
}

void lease_keeper::watch(milliseconds wait) {
  if (!watcher_) {  // being opened again (check_watch)
    std::this_thread::sleep_for(wait);
    return;
  }
  for (int i = 0; i < 1000; ++i) {
    kvEntry* e = nullptr;
    natsStatus st = kvWatcher_Next(&e, watcher_.get(), i == 0 ? wait.count() : 1);
    if (st != NATS_OK) return;
    if (e == nullptr) continue;  // the end of the initial values
    kv_entry_ptr holder(e);
    apply(e);
  }
}

void lease_keeper::check_watch(clock::time_point now) {
  if (!unseen_put_) return;
  if (last_watched_ >= unseen_put_->first) {
    unseen_put_.reset();
    return;
  }
  if (now - unseen_put_->second < 3 * s_.lease()) return;
  log()->warn(
      "reactor {}: the bucket's watch has not delivered this member's own write of {} ms ago "
      "(revision {}; the last it delivered: {}); watching again",
      s_.r.name(), std::chrono::duration_cast<milliseconds>(now - unseen_put_->second).count(),
      unseen_put_->first, last_watched_);
  // Opened again, the watch delivers every key as it is now. Until then (or if it fails: tried
  // again 3 leases later) decisions wait on the view as it was.
  unseen_put_->second = now;
  if (open_watch()) unseen_put_.reset();
}

// A lost race, or a view behind the bucket: the key as stored, so that the next decision is
// made on it rather than retried on a stale revision (each such retry is refused as well).
void lease_keeper::refresh(std::uint32_t p) {
  const auto key = lease_key(p);
  if (auto e = s_.bucket->get(key); e && *e)
    view_.apply(key, (*e)->value, (*e)->revision, clock::now());
}

void lease_keeper::apply(kvEntry* e) {
  last_watched_ = std::max(last_watched_, kvEntry_Revision(e));
  std::optional<std::string_view> value;
  if (kvEntry_Operation(e) == kvOp_Put)
    value = std::string_view(kvEntry_ValueString(e), static_cast<std::size_t>(kvEntry_ValueLen(e)));
  view_.apply(kvEntry_Key(e), value, kvEntry_Revision(e), clock::now());
}

// The member key tells the other members and status readers that this member is alive: written
// every lease/3, checked each round and also between the partition operations of a round (a
// rebalance or a round of renewals makes one round trip per partition: dozens, which on a slow or
// loaded machine took longer than a lease, so that a live member looked gone for a while).
void lease_keeper::renew_member_if_due() {
  const auto now = clock::now();
  if (now < next_member_renewal_) return;
  next_member_renewal_ = now + s_.lease() / 3;
  if (auto r = s_.bucket->put(member_key(s_.instance), encode(member_of(s_))); !r)
    log()->warn("reactor {}: renewing member {}: {}", s_.r.name(), s_.instance, r.error());
  else if (!unseen_put_)
    unseen_put_.emplace(*r, clock::now());
}

void lease_keeper::renew() {
  for (auto it = held_.begin(); it != held_.end();) {
    renew_member_if_due();
    const auto p = it->first;
    auto& h = it->second;
    const auto sent = clock::now();
    auto r = s_.bucket->update(lease_key(p), encode(value(h.epoch, s_.owned->checkpoint(p), true)),
                               h.revision);
    if (r) {
      h.revision = *r;
      s_.owned->renewed(p, sent);
      if (failing_warned_) log()->warn("reactor {}: lease renewals go through again", s_.r.name());
      failing_since_.reset();
      failing_warned_ = false;
      ++it;
    } else if (r.error().is(errc::conflict) && own_renewal_landed(p, h)) {
      // A renewal that timed out (a leader election of the bucket's stream) was stored after
      // all: the key is still this member's, at a newer revision. The next round renews on that
      // one; the self-fence is not re-armed meanwhile.
      ++it;
    } else if (r.error().is(errc::conflict)) {
      // Someone took it over (this member was cut off for longer than the lease): give it up
      // at once; what was handled since the last checkpoint will be handled again there.
      log()->warn("reactor {}: lease of partition {} lost (epoch {}): {}", s_.r.name(), p, h.epoch,
                  r.error());
      s_.owned->lose(p);
      release_asked_[p] = false;
      it = held_.erase(it);
    } else {
      // An outage: keep trying next round; the self-fence stops the handlers meanwhile. The
      // other keys live in the same stream and would time out too, one request timeout each:
      // trying them now would keep this thread from watching and acquiring for minutes.
      log()->debug("reactor {}: renewing partition {}: {}", s_.r.name(), p, r.error());
      if (!failing_since_) failing_since_ = sent;
      if (!failing_warned_ && sent - *failing_since_ >= s_.lease()) {
        // Said once per outage: its partitions' handlers are fenced meanwhile, silently else.
        log()->warn(
            "reactor {}: lease renewals have failed for {} ms; the handlers of its {} "
            "partitions wait until they go through: {}",
            s_.r.name(), std::chrono::duration_cast<milliseconds>(sent - *failing_since_).count(),
            held_.size(), r.error());
        failing_warned_ = true;
      }
      break;
    }
  }
}

bool lease_keeper::own_renewal_landed(std::uint32_t p, held& h) {
  auto e = s_.bucket->get(lease_key(p));
  if (!e || !*e) return false;
  auto v = decode_lease((*e)->value);
  if (!v || v->holder != s_.instance || v->incarnation != s_.incarnation || v->epoch != h.epoch)
    return false;
  h.revision = (*e)->revision;
  return true;
}

void lease_keeper::balance(clock::time_point now) {
  for (std::uint32_t p = 0; p < s_.partitions(); ++p) {
    const auto target = view_.target(p, now);
    if (held_.count(p) != 0) {
      if (target != s_.instance && !release_asked_[p]) {
        log()->info("reactor {}: handing partition {} over to {}", s_.r.name(), p, target);
        release_asked_[p] = true;
        s_.owned->release(p);
      }
    } else if (target == s_.instance && now >= acquire_paused_until_ &&
               view_.lease_available(p, now)) {
      acquire(p);
    }
  }
}

void lease_keeper::acquire(std::uint32_t p) {
  renew_member_if_due();  // each acquisition is a round trip
  const auto* seen = view_.lease(p);
  const std::uint64_t epoch = seen ? seen->value.epoch + 1 : 1;
  const std::uint64_t checkpoint = seen ? seen->value.checkpoint : s_.meta.first_sequence - 1;
  const auto v = encode(value(epoch, checkpoint, true));
  const auto sent = clock::now();
  auto r = seen ? s_.bucket->update(lease_key(p), v, seen->revision)
                : s_.bucket->create(lease_key(p), v);
  if (!r) {
    if (r.error().is(errc::conflict))
      refresh(p);  // another member won, or the view is behind the bucket
    else
      warn_acquire_failed(p, r.error());
    return;
  }
  if (acquire_failing_) {
    log()->warn("reactor {}: acquiring partitions goes through again", s_.r.name());
    acquire_failing_ = false;
  }
  if (seen && !seen->value.holder.empty())
    log()->info("reactor {}: took partition {} over from {} (epoch {}, checkpoint {})", s_.r.name(),
                p, seen->value.holder, epoch, checkpoint);
  held_[p] = {*r, epoch};
  release_asked_[p] = false;
  // Its parked aggregates are known to the workers before the cursor dispatches anything of it.
  for (const auto& [key, park] : view_.parks())
    if (park.value.a.partition == p) s_.load_parked(park.value, park.revision, epoch);
  s_.owned->acquire(p, epoch, checkpoint, sent);
}

void lease_keeper::warn_acquire_failed(std::uint32_t p, const error& e) {
  if (!acquire_failing_)
    log()->warn(
        "reactor {}: acquiring partition {}: {} (retried; not logged again until an "
        "acquisition goes through)",
        s_.r.name(), p, e);
  acquire_failing_ = true;
  acquire_paused_until_ = clock::now() + s_.lease() / 10;
}

void lease_keeper::hand_back() {
  for (const auto& r : s_.owned->take_released()) {
    renew_member_if_due();
    auto it = held_.find(r.partition);
    if (it == held_.end() || it->second.epoch != r.epoch) continue;
    auto w = s_.bucket->update(lease_key(r.partition), encode(value(r.epoch, r.checkpoint, false)),
                               it->second.revision);
    if (!w)
      log()->warn("reactor {}: releasing partition {}: {}", s_.r.name(), r.partition, w.error());
    s_.owned->lose(r.partition);
    release_asked_[r.partition] = false;
    held_.erase(it);
  }
}

void lease_keeper::serve_requests() {
  for (const auto& [key, park] : view_.parks()) {
    const auto& a = park.value.a;
    if (a.request.empty()) continue;
    auto h = held_.find(a.partition);
    if (h == held_.end() || !s_.owned->holds(a.partition, h->second.epoch)) continue;
    if (!served_.emplace(key, park.revision).second) continue;
    s_.serve_park_request(park.value, park.revision, h->second.epoch);
  }
}

void lease_keeper::final_release() {
  for (const auto& [p, h] : held_) {
    auto w = s_.bucket->update(lease_key(p), encode(value(h.epoch, s_.owned->checkpoint(p), false)),
                               h.revision);
    if (!w) log()->warn("reactor {}: releasing partition {}: {}", s_.r.name(), p, w.error());
    s_.owned->lose(p);
  }
  held_.clear();
  if (auto r = s_.bucket->remove(member_key(s_.instance)); !r)
    log()->warn("reactor {}: removing member {}: {}", s_.r.name(), s_.instance, r.error());
}

}  // namespace

void reactor_member_state::run_keeper() {
  lease_keeper(*this).run();
}

result<void> reactor_member_state::claim_member() {
  const auto key = member_key(instance);
  const auto start = clock::now();
  std::uint64_t last = 0;
  auto since = start;
  for (;;) {
    auto made = bucket->create(key, encode(member_of(*this)));
    if (made) {
      member_revision = *made;
      return success();
    }
    if (!made.error().is(errc::conflict)) return std::move(made).error();
    JETSOURCE_TRY(seen, bucket->get(key));
    const auto now = clock::now();
    if (seen) {
      if (seen->revision != last) {
        last = seen->revision;
        since = now;
      } else if (now - since >= lease()) {
        // Unchanged for a lease on this clock: an earlier process of this name is gone.
        if (auto taken = bucket->update(key, encode(member_of(*this)), last)) {
          member_revision = *taken;
          return success();
        }
      }
    }
    if (now - start > 2 * lease())
      return make_error(errc::conflict,
                        "reactor {}: another live process uses the instance name '{}' (its "
                        "member key keeps changing); choose another --instance",
                        r.name(), instance);
    std::this_thread::sleep_for(milliseconds(50));
  }
}

}  // namespace jetsource::detail
