// A reactor group's state and its dead-letter requests, read and written through its bucket by
// any process (jetsource/reactor.hpp; `order-system reactors ...`): read_reactor_status, and
// request_reactor_retry / request_reactor_skip, which set `request` on the park record by
// compare-and-set and wait for the partition's owner to remove the record.
#include <jetsource/event_store.hpp>
#include <jetsource/reactor.hpp>

#include "consumer_admin.hpp"
#include "reactors/group_bucket.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

namespace jetsource {

namespace {

using namespace detail;
using std::chrono::milliseconds;

// Member liveness for a reader that watches nothing. Members rewrite their key every lease/3;
// the group itself calls a member gone once its key is unchanged for a lease on the observer's
// clock. The reader judges the same way: a key the server stored at most lease/2 ago (by the
// reader's wall clock) is live, one older than two leases is gone (room for clock skew between
// reader and server), and one in between is watched on the reader's monotonic clock: live when
// it changes, gone once it has been unchanged for a lease (its age plus the watch; at least
// lease/4 of watching, against skew). A SIGKILLed member shows for about one lease, not two.
enum class liveness { live, gone, unsure };

std::int64_t lease_ns_of(const member_value& m) {
  return std::max<std::int64_t>(m.lease_ms, 1000) * 1'000'000;
}

std::int64_t age_ns(const group_bucket::entry& e) {
  const auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  return now_ns - e.created_ns;
}

liveness by_age(const group_bucket::entry& e, const member_value& m) {
  const auto age = age_ns(e);
  if (age <= lease_ns_of(m) / 2) return liveness::live;
  if (age >= 2 * lease_ns_of(m)) return liveness::gone;
  return liveness::unsure;
}

struct unsure_member {
  std::string key;
  std::uint64_t revision = 0;
  member_value m;
  std::int64_t watch_ns = 0;  // how long to watch it: max(lease - age, lease/4)
};

// Watches the unsure members' keys (see above); returns those that changed, as they are now.
result<std::vector<member_value>> confirm_live(const group_bucket& bucket,
                                               std::vector<unsure_member> unsure) {
  std::vector<member_value> live;
  const auto started = std::chrono::steady_clock::now();
  while (!unsure.empty()) {
    for (auto it = unsure.begin(); it != unsure.end();) {
      JETSOURCE_TRY(e, bucket.get(it->key));
      const auto waited = std::chrono::steady_clock::now() - started;
      if (e && e->revision != it->revision) {
        JETSOURCE_TRY(m, decode_member(e->value));
        live.push_back(std::move(m));
        it = unsure.erase(it);
      } else if (!e || waited >= std::chrono::nanoseconds(it->watch_ns)) {
        it = unsure.erase(it);  // deleted (a graceful stop), or not renewed: gone
      } else {
        ++it;
      }
    }
    if (!unsure.empty()) std::this_thread::sleep_for(milliseconds(50));
  }
  return live;
}

struct opened {
  group_bucket bucket;
  group_meta meta;
};

result<opened> open_group(const connection& conn, std::string_view stream, std::string_view name) {
  JETSOURCE_TRY(validate_reactor_name("reactor name", name));
  JETSOURCE_TRY(b, group_bucket::open(state_of(conn), stream, name, false, 1));
  JETSOURCE_TRY(m, b.get("meta"));
  if (!m) return make_error(errc::not_found, "reactor {} never ran on stream {}", name, stream);
  JETSOURCE_TRY(meta, decode_meta(m->value));
  return opened{std::move(b), std::move(meta)};
}

}  // namespace

result<reactor_status> read_reactor_status(const connection& conn, std::string_view stream,
                                           std::string_view reactor_name) {
  JETSOURCE_TRY(g, open_group(conn, stream, reactor_name));
  reactor_status st;
  st.name = reactor_name;
  st.stream = stream;
  st.mode = g.meta.mode;
  JETSOURCE_TRY(keys, g.bucket.keys());
  std::optional<std::uint64_t> lowest;
  std::uint32_t leases = 0;
  std::vector<unsure_member> unsure;
  const auto add_member = [&st](const member_value& m) {
    st.members.push_back({m.instance, m.host, m.pid, m.partitions, m.position, m.pending});
    st.pending = std::max(st.pending, m.pending);
  };
  for (const auto& key : keys) {
    JETSOURCE_TRY(e, g.bucket.get(key));
    if (!e) continue;
    if (key.starts_with("member.")) {
      JETSOURCE_TRY(m, decode_member(e->value));
      switch (by_age(*e, m)) {
        case liveness::live:
          add_member(m);
          break;
        case liveness::unsure: {
          const auto lease = lease_ns_of(m);
          const auto watch = std::max(lease - age_ns(*e), lease / 4);
          unsure.push_back({key, e->revision, std::move(m), watch});
          break;
        }
        case liveness::gone:
          break;
      }
    } else if (key.starts_with("lease.")) {
      JETSOURCE_TRY(l, decode_lease(e->value));
      lowest = std::min(lowest.value_or(l.checkpoint), l.checkpoint);
      ++leases;
    } else if (key.starts_with("park.")) {
      JETSOURCE_TRY(p, decode_park(e->value));
      st.parked.push_back(std::move(p.a));
      ++st.dead_letters;
    } else if (key.starts_with("dead.")) {
      ++st.dead_letters;
    }
  }
  JETSOURCE_TRY(confirmed, confirm_live(g.bucket, std::move(unsure)));
  for (const auto& m : confirmed) add_member(m);
  if (g.meta.mode == "queue") {
    // One shared durable: what it has acknowledged is handled (or recorded dead).
    consumer_info_ptr holder;
    auto ci = consumer_info(*state_of(conn), std::string(stream),
                            fmt::format("jetsource-r-{}-queue", reactor_name), holder);
    if (ci) {
      st.position = (*ci)->AckFloor.Stream;
      st.pending = (*ci)->NumPending + static_cast<std::uint64_t>((*ci)->NumAckPending);
    }
  } else {
    // A partition never leased yet is still at the group's start.
    if (leases < g.meta.partitions)
      lowest = std::min(lowest.value_or(~0ull), g.meta.first_sequence - 1);
    st.position = lowest.value_or(g.meta.first_sequence - 1);
  }
  std::sort(st.members.begin(), st.members.end(),
            [](const auto& a, const auto& b) { return a.instance < b.instance; });
  return st;
}

namespace {

result<void> request(const connection& conn, std::string_view stream, std::string_view name,
                     std::string_view type, std::string_view id, milliseconds wait,
                     std::string_view what) {
  JETSOURCE_TRY(validate_token("aggregate id", id));
  if (!type.empty()) {
    JETSOURCE_TRY(validate_token("aggregate type", type));
  }
  JETSOURCE_TRY(g, open_group(conn, stream, name));
  const auto p = fnv1a32(id) % g.meta.partitions;
  // park.<p>.<Type>.<id>
  std::string key;
  JETSOURCE_TRY(keys, g.bucket.keys());
  const auto prefix = fmt::format("park.{}.", p);
  const auto suffix = fmt::format(".{}", id);
  for (const auto& k : keys)
    if (k.starts_with(prefix) && k.ends_with(suffix) && k.size() > prefix.size() + suffix.size() &&
        (type.empty() || k == park_key(p, type, id)))
      key = k;
  if (key.empty())
    return make_error(errc::not_found, "reactor {}: {} {} is not parked", name,
                      type.empty() ? "aggregate" : type, id);
  std::uint64_t asked = 0;
  for (int attempt = 0; asked == 0; ++attempt) {
    JETSOURCE_TRY(e, g.bucket.get(key));
    if (!e) return make_error(errc::not_found, "reactor {}: {} is not parked (any more)", name, id);
    JETSOURCE_TRY(rec, decode_park(e->value));
    rec.a.request = what;
    auto r = g.bucket.update(key, encode(rec), e->revision);
    if (r) {
      asked = *r;
    } else if (!r.error().is(errc::conflict) || attempt >= 5) {
      return std::move(r).error();
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    JETSOURCE_TRY(e, g.bucket.get(key));
    if (!e) return success();  // the owner handled it and removed the record
    if (e->revision != asked) {
      JETSOURCE_TRY(rec, decode_park(e->value));
      if (rec.a.request.empty())
        return make_error(errc::conflict, "reactor {}: {} {} failed again and is parked: {}", name,
                          rec.a.aggregate_type, id, rec.a.error);
    }
    if (std::chrono::steady_clock::now() >= deadline)
      return make_error(errc::timeout,
                        "reactor {}: the {} of {} was asked for; no member has done it yet (is "
                        "one running? the request stays)",
                        name, what, id);
    std::this_thread::sleep_for(milliseconds(50));
  }
}

}  // namespace

result<void> request_reactor_retry(const connection& conn, std::string_view stream,
                                   std::string_view reactor_name, std::string_view aggregate_type,
                                   std::string_view aggregate_id, milliseconds wait) {
  return request(conn, stream, reactor_name, aggregate_type, aggregate_id, wait, "retry");
}

result<void> request_reactor_skip(const connection& conn, std::string_view stream,
                                  std::string_view reactor_name, std::string_view aggregate_type,
                                  std::string_view aggregate_id, milliseconds wait) {
  return request(conn, stream, reactor_name, aggregate_type, aggregate_id, wait, "skip");
}

}  // namespace jetsource
