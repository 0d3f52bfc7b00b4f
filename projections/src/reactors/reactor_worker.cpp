// detail: one reactor worker's aggregate lines (see reactor_worker.hpp).
#include "reactors/reactor_worker.hpp"

#include <jetsource/detail/commit_events.hpp>

#include "log.hpp"

#include <algorithm>
#include <exception>

namespace jetsource::detail {

namespace {

// A commit re-read from the store for a park retry, as an envelope the item owns.
struct replayed_commit {
  owned_commit c;
  std::string timestamp, correlation, causation;
};

reactor_item replay_item(const stored_commit& sc, std::uint32_t p, std::uint64_t epoch) {
  auto* r = new replayed_commit{
      {fmt::format("{}.{}.{}", sc.aggregate_type, p, sc.aggregate_id), sc.aggregate_type,
       sc.aggregate_id, sc.event_types, sc.commit_id, std::to_string(sc.version), sc.body},
      sc.timestamp,
      sc.correlation_id,
      sc.causation_id};
  reactor_item item{r->c.view(sc.sequence), p, epoch, false};
  item.e.timestamp = r->timestamp;
  item.e.correlation_id = r->correlation;
  item.e.causation_id = r->causation;
  item.e.owner = {r, [](void* x) { delete static_cast<replayed_commit*>(x); }};
  return item;
}

}  // namespace

aggregate_lines::line& aggregate_lines::line_for(const std::string& key, std::string_view type,
                                                 std::string_view id, std::uint32_t p,
                                                 std::uint64_t epoch) {
  auto& l = lines_[key];
  if (l.epoch != epoch) {
    // A new tenure: nothing of the old one carries over.
    for (auto& w : l.waiting) settle(w, false);
    l = line{};
    l.partition = p;
    l.epoch = epoch;
    l.type = type;
    l.id = id;
  }
  return l;
}

void aggregate_lines::take(reactor_item item) {
  if (!s_.owned->held(item.partition, item.epoch)) {
    settle(item, false);
    return;
  }
  auto key = aggregate_key(item.e.aggregate_type, item.e.aggregate_id);
  auto& l = line_for(key, item.e.aggregate_type, item.e.aggregate_id, item.partition, item.epoch);
  if (l.abandoned) {
    settle(item, false);  // an earlier commit of it was given up: so is this one (order)
    return;
  }
  if (l.parked) {
    settle(item, true);  // behind a parked event: read again from the store when retried
    return;
  }
  l.waiting.push_back(std::move(item));
  if (!l.retrying) pump(key, l);
  if (l.waiting.empty() && !l.parked && !l.resolving && !l.retrying && !l.abandoned &&
      lines_.size() > 4096)
    lines_.erase(key);
}

void aggregate_lines::schedule(const std::string& key, line& l, std::string_view id,
                               std::chrono::milliseconds delay) {
  l.retrying = true;
  l.gen = next_gen_++;
  const auto gen = l.gen;
  s_.workers->post_after(id, delay, [this, key, gen] { resume(key, gen); });
}

bool aggregate_lines::may_run(const std::string& key, line& l, std::string_view id) {
  if (s_.owned->holds(l.partition, l.epoch)) return true;
  if (s_.owned->held(l.partition, l.epoch)) {
    // Self-fenced: the last renewal is too old to act on; wait for the next one.
    schedule(key, l, id, std::chrono::milliseconds(20));
    return false;
  }
  for (auto& w : l.waiting) settle(w, false);
  l.waiting.clear();
  l.abandoned = true;
  return false;
}

void aggregate_lines::pump(const std::string& key, line& l) {
  while (!l.waiting.empty()) {
    auto& item = l.waiting.front();
    if (!may_run(key, l, item.e.aggregate_id)) return;
    auto out = attempt(key, l, item);
    if (out == outcome::retry_later) {
      schedule(key, l, item.e.aggregate_id, backoff(l.attempt));
      return;
    }
    l.attempt = 0;
    l.first_failed_at.clear();
    if (out == outcome::parked) {
      for (auto& w : l.waiting) settle(w, true);  // the failing one and those behind it
      l.waiting.clear();
      return;
    }
    settle(item, true);
    l.waiting.pop_front();
  }
  if (l.resolving) {
    // A retry or skip went through: the record goes (unless it changed meanwhile: a new
    // request, served next).
    l.resolving = false;
    if (auto gone = s_.bucket->remove_if(park_key(l.partition, l.type, l.id), l.park_revision);
        !gone && !gone.error().is(errc::conflict))
      log()->error("reactor {}: cannot remove the park record of {} {}: {}", s_.r.name(), l.type,
                   l.id, gone.error());
    else
      log()->info("reactor {}: {} {} is no longer parked", s_.r.name(), l.type, l.id);
    l.park_revision = 0;
  }
}

aggregate_lines::outcome aggregate_lines::attempt(const std::string& key, line& l,
                                                  reactor_item& item) {
  auto failed = run_events(l, item);
  if (!failed) return outcome::settled;
  if (l.first_failed_at.empty()) l.first_failed_at = utc_now();
  ++l.attempt;
  if (l.attempt < std::max(1, s_.opts.retry.attempts)) {
    s_.retries.fetch_add(1, std::memory_order_relaxed);
    log()->debug("reactor {}: {} {} v{} failed (attempt {}): {}", s_.r.name(),
                 item.e.aggregate_type, item.e.aggregate_id, failed->version, l.attempt,
                 failed->why);
    return outcome::retry_later;
  }
  if (auto w = write_park(key, l, item, *failed); !w) {
    log()->error("reactor {}: cannot park {} {}: {} (trying again)", s_.r.name(),
                 item.e.aggregate_type, item.e.aggregate_id, w.error());
    return outcome::retry_later;
  }
  log()->warn("reactor {}: {} {} parked at version {} after {} attempts: {}", s_.r.name(),
              item.e.aggregate_type, item.e.aggregate_id, failed->version, l.attempt, failed->why);
  return outcome::parked;
}

reaction_context aggregate_lines::context_of(const reactor_item& item, std::size_t index,
                                             std::uint64_t version, int attempt) {
  const auto& e = item.e;
  reaction_context::origin o;
  o.reactor = s_.r.name();
  o.aggregate_type = e.aggregate_type;
  o.aggregate_id = e.aggregate_id;
  o.version = version;
  o.sequence = e.sequence;
  o.event_index = index;
  o.commit_id = e.msg_id;
  o.timestamp = e.timestamp;
  o.correlation_id = e.correlation_id;
  o.causation_id = e.causation_id;
  o.partition = item.partition;
  o.epoch = item.epoch;
  o.attempt = attempt;
  const std::uint32_t p = item.partition;
  const std::uint64_t epoch = item.epoch;
  return reaction_context(o, [this, p, epoch] { return s_.owned->holds(p, epoch); });
}

std::optional<aggregate_lines::failure> aggregate_lines::run_events(line& l,
                                                                    const reactor_item& item) {
  const auto& e = item.e;
  if (!e.malformed.empty())
    return failure{make_error(errc::decode_failed, "{}", e.malformed), e.version, ""};
  if (e.version <= l.last_version) return std::nullopt;  // handled in this tenure already
  std::string type;
  std::uint64_t version = e.first_version;
  std::optional<failure> failed;
  try {
    auto walked = for_each_commit_event(
        e.body, e.version - e.first_version + 1, type,
        [&](std::size_t i, std::string_view t, int schema, json_reader& ar) -> result<void> {
          version = e.first_version + i;
          const auto* h = s_.r.handler(t);
          if (h != nullptr && version > l.last_version) {
            auto cx = context_of(item, i, version, l.attempt + 1);
            auto r = (*h)(cx, schema, ar);
            if (!r) {
              failed = failure{std::move(r).error(), version, std::string(t)};
              return make_error(errc::internal, "handler failed");  // stops the walk
            }
            s_.handled.fetch_add(1, std::memory_order_relaxed);
          }
          l.last_version = std::max(l.last_version, version);
          ++version;  // a body that breaks from here on fails at the next event
          return success();
        });
    if (failed) return failed;
    if (!walked) return failure{std::move(walked).error(), e.version, ""};
    return std::nullopt;
  } catch (const std::exception& x) {
    return failure{
        make_error(errc::decode_failed, "{}: {}", type.empty() ? "commit body" : type, x.what()),
        version, type};
  } catch (...) {
    return failure{make_error(errc::internal, "handler threw a non-standard exception"), version,
                   type};
  }
}

result<void> aggregate_lines::write_park(const std::string& key, line& l, const reactor_item& item,
                                         const failure& f) {
  (void)key;
  park_value rec;
  auto& a = rec.a;
  a.partition = item.partition;
  a.aggregate_type = item.e.aggregate_type;
  a.aggregate_id = item.e.aggregate_id;
  a.sequence = item.e.sequence;
  a.version = f.version;
  a.event_type = f.event_type;
  a.error = fmt::format("{}", f.why);
  a.attempts = l.attempt;
  a.first_failed_at = l.first_failed_at;
  a.last_failed_at = utc_now();
  rec.epoch = item.epoch;
  const auto k = park_key(item.partition, a.aggregate_type, a.aggregate_id);
  const auto value = encode(rec);
  auto rev = l.park_revision != 0 ? s_.bucket->update(k, value, l.park_revision)
                                  : s_.bucket->create(k, value);
  if (!rev && rev.error().is(errc::conflict)) {
    // A record of an earlier tenure (or a new request on it): replace what is there now.
    JETSOURCE_TRY(now, s_.bucket->get(k));
    rev = now ? s_.bucket->update(k, value, now->revision) : s_.bucket->create(k, value);
  }
  if (!rev) return std::move(rev).error();
  l.parked = true;
  l.resolving = false;
  l.park_revision = *rev;
  return success();
}

void aggregate_lines::settle(const reactor_item& item, bool settled) {
  if (item.tracked) s_.report({item.partition, item.epoch, item.e.sequence, settled});
}

std::chrono::milliseconds aggregate_lines::backoff(int attempt) {
  const auto& p = s_.opts.retry;
  auto b = p.first_backoff;
  for (int i = 1; i < attempt && b < p.max_backoff; ++i) b *= 2;
  b = std::min(b, p.max_backoff);
  // Jitter: somewhere in the upper half.
  const auto half = std::max<std::int64_t>(b.count() / 2, 1);
  return std::chrono::milliseconds(half + static_cast<std::int64_t>(jitter_() % half));
}

void aggregate_lines::load_parked(const park_value& rec, std::uint64_t revision,
                                  std::uint64_t epoch) {
  const auto& a = rec.a;
  auto key = aggregate_key(a.aggregate_type, a.aggregate_id);
  auto& l = line_for(key, a.aggregate_type, a.aggregate_id, a.partition, epoch);
  l.parked = true;
  l.park_revision = revision;
}

void aggregate_lines::serve_request(const park_value& rec, std::uint64_t revision,
                                    std::uint64_t epoch) {
  const auto& a = rec.a;
  if (!s_.owned->holds(a.partition, epoch)) return;
  auto key = aggregate_key(a.aggregate_type, a.aggregate_id);
  auto& l = line_for(key, a.aggregate_type, a.aggregate_id, a.partition, epoch);
  if (l.resolving || !l.waiting.empty()) return;  // already at it
  auto commits = s_.store->read(a.aggregate_type, a.aggregate_id, a.sequence - 1);
  if (!commits) {
    log()->error("reactor {}: {} of {} {}: cannot read its commits: {}", s_.r.name(), a.request,
                 a.aggregate_type, a.aggregate_id, commits.error());
    return;
  }
  log()->info("reactor {}: {} of {} {} from version {} ({} commits)", s_.r.name(), a.request,
              a.aggregate_type, a.aggregate_id, a.version, commits->commits.size());
  // skip: the failing event counts as handled; retry: it is handled again, first.
  l.last_version = a.request == "skip" ? a.version : a.version - 1;
  l.parked = false;
  l.resolving = true;
  l.park_revision = revision;
  l.attempt = 0;
  l.first_failed_at.clear();
  for (const auto& c : commits->commits)
    if (c.version > l.last_version) l.waiting.push_back(replay_item(c, a.partition, epoch));
  if (!l.retrying) pump(key, l);
}

void aggregate_lines::abandon(std::optional<std::uint32_t> p) {
  if (!p) abandon_queued();
  for (auto it = lines_.begin(); it != lines_.end();) {
    auto& l = it->second;
    if ((p && l.partition != *p) || l.waiting.empty()) {
      ++it;
      continue;
    }
    // Given up (in retry backoff, or fenced): its later commits are given up too, so that the
    // next owner handles them all, in order, from the checkpoint.
    for (auto& w : l.waiting) settle(w, false);
    l.waiting.clear();
    l.retrying = false;
    l.abandoned = true;
    ++it;
  }
}

void aggregate_lines::resume(const std::string& key, std::uint64_t gen) {
  auto it = lines_.find(key);
  if (it == lines_.end() || !it->second.retrying || it->second.gen != gen) return;
  it->second.retrying = false;
  pump(key, it->second);
}

}  // namespace jetsource::detail

namespace jetsource::detail {

void reactor_member_state::run_batch(std::size_t index, std::vector<reactor_item>& batch) {
  for (auto& item : batch) {
    if (queue_mode())
      lines[index]->handle_queued(item);
    else
      lines[index]->take(std::move(item));
  }
}

void reactor_member_state::serve_park_request(const park_value& rec, std::uint64_t revision,
                                              std::uint64_t epoch) {
  const auto index = workers->index_of(rec.a.aggregate_id);
  workers->post_to(index, [this, index, rec, revision, epoch] {
    lines[index]->serve_request(rec, revision, epoch);
  });
}

void reactor_member_state::load_parked(const park_value& rec, std::uint64_t revision,
                                       std::uint64_t epoch) {
  const auto index = workers->index_of(rec.a.aggregate_id);
  workers->post_to(index, [this, index, rec, revision, epoch] {
    lines[index]->load_parked(rec, revision, epoch);
  });
}

void reactor_member_state::abandon_waiting(std::optional<std::uint32_t> p) {
  for (std::size_t i = 0; i < workers->size(); ++i)
    workers->post_to(i, [this, i, p] { lines[i]->abandon(p); });
}

}  // namespace jetsource::detail
