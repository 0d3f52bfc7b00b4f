// react and react-takeover: reactors (issue 12, ADR 0014).
//
// react: a stream pre-filled with deposits (1 event per commit) over 50,000 accounts; a reactor
// group with a no-op handler (the event decoded, nothing done) handles all of it, with 1 and with
// 3 members (in this process, each on its own connection); beside it, from the same run, the
// plain nats.c pull fetch + ack of the same stream. Also with a handler costing 200 us (sleep),
// where members add handler capacity (ADR 0014, "Consequences": each member reads the whole
// stream, so a no-op group is bounded by one member's read rate).
//
// react-takeover: member processes (this binary, scenario react-member) follow a stream that a
// publisher feeds at ~2,000 commits/s; 10 times a member is SIGKILLed and the time from the kill
// to the first event of its partitions handled by another member is measured (lease 2 s).
#include "read_side.hpp"

#include <jetsource/reactor.hpp>

#include <bank/account.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

extern char** environ;

namespace bench {

namespace {

using std::chrono::milliseconds;

jetsource::reactor bench_reactor(const std::string& name, std::atomic<std::uint64_t>& handled,
                                 int cost_us) {
  return jetsource::reactor(name).on<bank::deposited>(
      [&handled, cost_us](jetsource::reaction_context&, const bank::deposited&) {
        if (cost_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(cost_us));
        handled.fetch_add(1, std::memory_order_relaxed);
      });
}

void delete_bucket(const env& e, const std::string& stream, const std::string& reactor) {
  js_DeleteKeyValue(e.raw_js, fmt::format("jsr-{}-{}", stream, reactor).c_str());
}

// Events/s for `members` members to handle the `last` commits of `stream`.
double react_rate(const env& e, const std::string& stream, std::uint64_t last, int members,
                  int cost_us, const std::string& name) {
  std::atomic<std::uint64_t> handled{0};
  auto r = bench_reactor(name, handled, cost_us);
  std::vector<jetsource::connection> conns;
  for (int i = 0; i < members; ++i) {
    jetsource::connection_options co;
    co.urls = {e.url};
    conns.push_back(must(jetsource::connection::connect(co), "connect"));
  }
  auto t0 = clock_type::now();
  std::vector<jetsource::reactor_member> ms;
  for (int i = 0; i < members; ++i) {
    jetsource::reactor_options o;
    o.stream = stream;
    o.instance = fmt::format("m{}", i);
    o.lease = milliseconds(2000);
    o.metrics = nullptr;
    ms.push_back(must(jetsource::reactor_member::start(conns[static_cast<std::size_t>(i)], r, o),
                      "start member"));
  }
  while (handled.load() < last) {
    std::this_thread::sleep_for(milliseconds(2));
    if (seconds_since(t0) > 600) throw failure("react: not done after 10 minutes");
    check_stop();
  }
  const double rate = static_cast<double>(last) / seconds_since(t0);
  for (auto& m : ms) must(m.stop(), "stop member");
  delete_bucket(e, stream, name);
  return rate;
}

}  // namespace

void run_react(const env& e) {
  const std::int64_t events = e.opt.events.value_or(500'000);
  constexpr int accounts = 50'000;
  const std::string stream = fmt::format("BENCH_RX_{}", e.tag);
  stream_guard g(e, stream);
  const std::uint64_t last = fill(e, "react", stream, events, accounts);
  std::vector<double> raw, one, three, one_cost, three_cost;
  const std::uint64_t costly = std::min<std::uint64_t>(last, 20'000);
  for (int run = 0; run < e.opt.runs; ++run) {
    alternate(
        run,
        [&] {
          raw.push_back(raw_fetch_ack(e, stream, last));
          note("react run {}: raw fetch+ack {:.0f}/s", run + 1, raw.back());
        },
        [&] {
          one.push_back(react_rate(e, stream, last, 1, 0, fmt::format("r1-{}", run)));
          three.push_back(react_rate(e, stream, last, 3, 0, fmt::format("r3-{}", run)));
          note("react run {}: no-op reactor, 1 member {:.0f}/s, 3 members {:.0f}/s", run + 1,
               one.back(), three.back());
        });
  }
  // A handler with a cost: the first `costly` events, once (members add handler capacity).
  {
    const std::string small = fmt::format("BENCH_RXC_{}", e.tag);
    stream_guard gs(e, small);
    const auto small_last = fill(e, "react", small, static_cast<std::int64_t>(costly), 5'000);
    one_cost.push_back(react_rate(e, small, small_last, 1, 200, "c1"));
    three_cost.push_back(react_rate(e, small, small_last, 3, 200, "c3"));
    note("react: handler of 200 us, 1 member {:.0f}/s, 3 members {:.0f}/s", one_cost.back(),
         three_cost.back());
  }
  auto r = summarize(raw), s1 = summarize(one), s3 = summarize(three);
  line("react")
      .kv("members", 1)
      .kv("handler_us", 0)
      .kv("events", events)
      .kv("aggregates", accounts)
      .stats("events_per_s", s1)
      .kv("ratio", s1.median / r.median)
      .kv("target", 0.7)
      .kv("pass", s1.median / r.median >= 0.7 ? 1 : 0)
      .print();
  line("react")
      .kv("members", 3)
      .kv("handler_us", 0)
      .kv("events", events)
      .kv("aggregates", accounts)
      .stats("events_per_s", s3)
      .kv("ratio", s3.median / r.median)
      .kv("vs_one_member", s3.median / s1.median)
      .kv("target_vs_one_member", 1.0)
      .kv("pass", s3.median >= s1.median ? 1 : 0)
      .print();
  auto c1 = summarize(one_cost), c3 = summarize(three_cost);
  line("react")
      .kv("members", 1)
      .kv("handler_us", 200)
      .kv("events", costly)
      .stats("events_per_s", c1)
      .print();
  line("react")
      .kv("members", 3)
      .kv("handler_us", 200)
      .kv("events", costly)
      .stats("events_per_s", c3)
      .kv("vs_one_member", c3.median / c1.median)
      .print();
  line("raw_react")
      .kv("method", "fetch_ack")
      .kv("batch", 1000)
      .kv("events", events)
      .stats("events_per_s", r)
      .print();
}

// -- react-takeover ------------------------------------------------------------------------------

namespace {

std::int64_t realtime_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

pid_t spawn_member(const env& e, const std::string& stream, const std::string& instance,
                   const std::string& out) {
  std::vector<std::string> args{"/proc/self/exe", "react-member", "--nats-url", e.url};
  std::vector<std::string> envs{"JETSOURCE_BENCH_STREAM=" + stream,
                                "JETSOURCE_BENCH_INSTANCE=" + instance,
                                "JETSOURCE_BENCH_OUT=" + out};
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& v : envs) envp.push_back(v.data());
  for (char** p = environ; *p != nullptr; ++p) envp.push_back(*p);
  envp.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), envp.data()) != 0)
    throw failure("cannot start a react-member process");
  return pid;
}

struct handled_line {
  std::string instance;
  std::uint32_t partition = 0;
  std::int64_t at_ns = 0;
};

std::vector<handled_line> read_lines(const std::string& file) {
  std::vector<handled_line> out;
  std::ifstream in(file);
  handled_line l;
  while (in >> l.instance >> l.partition >> l.at_ns) out.push_back(l);
  return out;
}

}  // namespace

void run_react_member(const env& e) {
  const char* stream = std::getenv("JETSOURCE_BENCH_STREAM");
  const char* instance = std::getenv("JETSOURCE_BENCH_INSTANCE");
  const char* out = std::getenv("JETSOURCE_BENCH_OUT");
  if (!stream || !instance || !out) throw failure("react-member: run by react-takeover only");
  const int fd = ::open(out, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) throw failure("react-member: cannot open the output file");
  const std::string me = instance;
  auto r = jetsource::reactor("takeover")
               .on<bank::deposited>([&](jetsource::reaction_context& cx, const bank::deposited&) {
                 auto text = fmt::format("{} {} {}\n", me, cx.partition(), realtime_ns());
                 (void)!::write(fd, text.data(), text.size());
               });
  jetsource::reactor_options o;
  o.stream = stream;
  o.instance = me;
  o.lease = milliseconds(2000);
  o.metrics = nullptr;
  auto m = must(jetsource::reactor_member::start(*e.conn, r, o), "start member");
  while (!stop_requested.load()) std::this_thread::sleep_for(milliseconds(20));
  must(m.stop(), "stop");
}

void run_react_takeover(const env& e) {
  constexpr int kills = 10;
  const std::string stream = fmt::format("BENCH_RT_{}", e.tag);
  stream_guard g(e, stream);
  auto store = must(jetsource::event_store::open(*e.conn, store_options_for(stream)), "open");
  char tmpl[] = "/tmp/jetsource-bench-takeover-XXXXXX";
  const int tfd = ::mkstemp(tmpl);
  if (tfd < 0) throw failure("cannot create a temporary file");
  ::close(tfd);
  const std::string out = tmpl;
  std::atomic<bool> publishing{true};
  std::thread publisher([&] {
    const auto body = deposit_body(100, 100);
    std::vector<std::uint64_t> version(1000, 0);
    for (std::uint64_t i = 0; publishing.load(); ++i) {
      auto k = static_cast<std::size_t>(i % version.size());
      jetsource::commit c;
      c.aggregate_type = "Account";
      c.aggregate_id = account_id(static_cast<int>(k));
      c.version = ++version[k];
      c.event_types = "Deposited";
      c.body = body;
      (void)store.append_async(std::move(c), [](jetsource::result<jetsource::append_result>) {});
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    (void)store.flush();
  });
  std::map<std::string, pid_t> members;
  for (const char* name : {"a", "b", "c"}) members[name] = spawn_member(e, stream, name, out);
  std::vector<double> first_ms, all_ms;
  try {
    for (int k = 0; k < kills; ++k) {
      std::this_thread::sleep_for(milliseconds(5000));  // joined, settled
      check_stop();
      auto st = must(jetsource::read_reactor_status(*e.conn, stream, "takeover"), "status");
      const std::string victim = std::string(1, static_cast<char>('a' + k % 3));
      std::set<std::uint32_t> share;
      for (const auto& m : st.members)
        if (m.instance == victim) share.insert(m.partitions.begin(), m.partitions.end());
      if (share.empty()) {
        note("react-takeover: {} holds nothing yet; skipping this round", victim);
        continue;
      }
      const auto killed_at = realtime_ns();
      ::kill(members[victim], SIGKILL);
      ::waitpid(members[victim], nullptr, 0);
      std::map<std::uint32_t, std::int64_t> taken;
      const auto deadline = clock_type::now() + std::chrono::seconds(20);
      while (taken.size() < share.size() && clock_type::now() < deadline) {
        std::this_thread::sleep_for(milliseconds(20));
        for (const auto& l : read_lines(out))
          if (l.instance != victim && l.at_ns > killed_at && share.count(l.partition) &&
              !taken.count(l.partition))
            taken[l.partition] = l.at_ns;
      }
      if (taken.empty()) throw failure("react-takeover: the killed member's share never moved");
      std::int64_t first = INT64_MAX, all = 0;
      for (const auto& [p, at] : taken) {
        first = std::min(first, at - killed_at);
        all = std::max(all, at - killed_at);
      }
      first_ms.push_back(static_cast<double>(first) / 1e6);
      all_ms.push_back(static_cast<double>(all) / 1e6);
      note(
          "react-takeover kill {}: {} ({} partitions): first event after {:.0f} ms, all {} of "
          "them after {:.0f} ms",
          k + 1, victim, share.size(), first_ms.back(), taken.size(), all_ms.back());
      members[victim] = spawn_member(e, stream, victim, out);
    }
  } catch (...) {
    for (auto& [name, pid] : members) ::kill(pid, SIGKILL), ::waitpid(pid, nullptr, 0);
    publishing = false;
    publisher.join();
    std::remove(out.c_str());
    throw;
  }
  for (auto& [name, pid] : members) ::kill(pid, SIGTERM), ::waitpid(pid, nullptr, 0);
  publishing = false;
  publisher.join();
  std::remove(out.c_str());
  delete_bucket(e, stream, "takeover");
  auto f = summarize(first_ms), a = summarize(all_ms);
  line("react-takeover")
      .kv("lease_ms", 2000)
      .kv("kills", f.n)
      .stats("first_event_ms", f)
      .stats("all_partitions_ms", a)
      .kv("target_max_ms", 2000 + 1000)
      .kv("pass", a.max <= 3000 ? 1 : 0)
      .print();
}

}  // namespace bench
