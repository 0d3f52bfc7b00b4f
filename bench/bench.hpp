// jetsource-bench: shared pieces of the benchmark scenarios (options, statistics, result lines,
// plain nats.c helpers for the raw baselines).
//
// Every figure is printed beside a raw baseline measured in the same run, as a ratio. Result
// lines go to stdout (`<scenario> key=value ...`, `raw_<scenario> key=value ...`); progress
// goes to stderr.
#pragma once

#include <jetsource/connection.hpp>
#include <jetsource/event_store.hpp>

#include <fmt/format.h>
#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bench {

struct options {
  std::optional<std::int64_t> events;  ///< scenario-specific default when unset
  int payload_bytes = 200;
  int runs = 5;
  int minutes = 10;            ///< soak: how long
  double rate = 10000;         ///< soak, e2e-latency: events/s
  int pull_expires_ms = 0;     ///< soak: the projector's pull_expires (0: its default)
  int duplicate_window_s = 0;  ///< soak: the stream's duplicate window (0: the store's default)
  bool peer_1m = false;        ///< peer-postgres: also cold loads on a 1M-event table/stream
  /// execute: repository_options::snapshot_every (unset: the default; ADR 0017's write cost)
  std::optional<std::uint64_t> snapshot_every;
  /// execute: repository_options::head_state_max_bytes (unset: the default; ADR 0022)
  std::optional<std::size_t> head_state_max_bytes;
};

/// What every scenario gets: the jetsource connection, a plain nats.c connection for the raw
/// baselines (SendAsap on, like jetsource's default), and the options.
struct env {
  options opt;
  jetsource::connection* conn = nullptr;
  natsConnection* raw_nc = nullptr;
  jsCtx* raw_js = nullptr;  ///< plain context (sync publishes, direct gets, stream admin)
  std::string tag;          ///< unique per process, part of stream names
  int server_pid = -1;      ///< the embedded nats-server's pid (-1: a server at --nats-url)
  std::string url;          ///< the server's URL (for scenarios that open more connections)
};

/// Thrown on a failure the benchmark cannot continue from (caught in main).
struct failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Set by SIGINT/SIGTERM: scenarios stop at the next check and clean up.
extern std::atomic<bool> stop_requested;
inline void check_stop() {
  if (stop_requested.load()) throw failure("interrupted");
}

inline void check(natsStatus s, std::string_view what) {
  if (s != NATS_OK) {
    const char* last = nats_GetLastError(nullptr);
    throw failure(
        fmt::format("{}: {} ({})", what, natsStatus_GetText(s), last ? last : "no detail"));
  }
}

template <class T>
T must(jetsource::result<T> r, std::string_view what) {
  if (!r) throw failure(fmt::format("{}: {}", what, r.error()));
  if constexpr (!std::is_void_v<T>) return std::move(r).value();
}

using clock_type = std::chrono::steady_clock;
/// Runs both measurements of a run, alternating which goes first (the machine's noise and the
/// server's warm-up then hit both sides alike).
template <class Raw, class Js>
void alternate(int run, Raw&& raw, Js&& js) {
  if (run % 2 == 0) {
    raw();
    js();
  } else {
    js();
    raw();
  }
}

inline double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}
inline double micros_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
}

/// CPU seconds spent so far by this process and by the embedded nats-server (0 with --nats-url).
/// Per event, their sum moves less with the machine's other load than a rate does, and on a
/// machine whose cores are all busy the rate follows it.
struct cpu_seconds {
  double client = 0, server = 0;
  double client_sys = 0;                            // of `client`: in the kernel
  double client_switches = 0, server_switches = 0;  // context switches (voluntary + not)
  double total() const { return client + server; }
};
cpu_seconds cpu_used(const env& e);
/// Microseconds of CPU (client and server) per event since `before`.
/// Notes the split between the client (this process) and the embedded server on stderr.
double cpu_us_per_event(const env& e, const cpu_seconds& before, std::uint64_t events);

/// Median, min and max of a sample.
struct summary {
  double median = 0, min = 0, max = 0;
  std::size_t n = 0;
};
inline summary summarize(std::vector<double> v) {
  summary s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.n = v.size();
  s.min = v.front();
  s.max = v.back();
  s.median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  return s;
}

/// One result line: `<name> key=value ...`, printed (and flushed) by print().
class line {
 public:
  explicit line(std::string name) : text_(std::move(name)) {}
  template <class V>
  line& kv(std::string_view key, const V& value) {
    if constexpr (std::is_floating_point_v<V>)
      text_ += fmt::format(" {}={}", key, format_number(value));
    else
      text_ += fmt::format(" {}={}", key, value);
    return *this;
  }
  /// key, key_min, key_max of a summary.
  line& stats(std::string_view key, const summary& s) {
    kv(key, s.median);
    kv(fmt::format("{}_min", key), s.min);
    kv(fmt::format("{}_max", key), s.max);
    return *this;
  }
  void print() const;

  static std::string format_number(double v) {
    if (v >= 100) return fmt::format("{:.0f}", v);
    if (v >= 10) return fmt::format("{:.1f}", v);
    return fmt::format("{:.3g}", v);
  }

 private:
  std::string text_;
};

/// Progress for people, on stderr.
template <class... Args>
void note(fmt::format_string<Args...> f, Args&&... args) {
  fmt::print(stderr, "# {}\n", fmt::format(f, std::forward<Args>(args)...));
}

/// A stream created by jetsource::event_store::open (so raw and framework runs use the same
/// configuration), deleted with its snapshot companion when the guard goes.
class stream_guard {
 public:
  stream_guard(const env& e, std::string name) : js_(e.raw_js), name_(std::move(name)) {}
  stream_guard(const stream_guard&) = delete;
  stream_guard& operator=(const stream_guard&) = delete;
  ~stream_guard();
  const std::string& name() const { return name_; }

 private:
  jsCtx* js_;
  std::string name_;
};

/// Store options of a benchmark stream: stream <NAME>, subjects <name lowercase>.>.
jetsource::store_options store_options_for(const std::string& stream);

/// The subject jetsource uses for an aggregate (same format for the raw baselines).
std::string subject_for(const jetsource::store_options& o, std::string_view type,
                        std::string_view id);

/// A fixed-size body (JSON-shaped, so the `nats` tools can show it).
std::string make_body(std::size_t bytes);

/// The headers of a jetsource commit, set by hand on a plain natsMsg (what a raw nats.c
/// producer of the same wire format sends).
struct raw_commit_headers {
  const char* type = "Account";
  std::string timestamp;  ///< one RFC 3339 value, same length as jetsource's
};
natsMsg* make_raw_commit(const std::string& subject, const std::string& body,
                         const std::string& msg_id, const std::string& aggregate_id,
                         std::uint64_t version, std::uint64_t expected, const char* event_types,
                         const raw_commit_headers& h);

/// Now as RFC 3339 with microseconds (the length of jetsource's Es-Timestamp).
std::string rfc3339_now();

/// A 22-character message id, like jetsource's commit ids.
std::string raw_msg_id(std::uint64_t n);

/// The raw async publish baseline: `events` commits round-robin over `aggregates`, expected
/// last subject sequences chained from the acks, MaxPending 4096, an AckHandler that destroys
/// the messages. Returns events/s; errors are counted in `errors`.
double raw_async_publish(const env& e, const std::string& stream, std::int64_t events,
                         int aggregates, long& errors);

// Scenarios: each prints its lines (pass=0 on a line marks a missed target; the exit status
// only reports whether the benchmark could run).
void run_append_sync(const env& e);
void run_append_async(const env& e);
void run_load(const env& e);
void run_execute(const env& e);
void run_project(const env& e);
void run_e2e_latency(const env& e);
void run_rebuild(const env& e);
void run_soak(const env& e);
void run_metrics(const env& e);  ///< no server used: recording cost only
/// instr-fill, instr-append, instr-load, instr-project, instr-pipeline[-nodecode]: for
/// bench/callgrind.sh (instructions.cpp).
void run_instr_fill(const env& e);
void run_instr_append(const env& e);
void run_instr_load(const env& e);
void run_instr_cold_load(const env& e);
void run_instr_cold_load_raw(const env& e);
void run_instr_project(const env& e);
void run_instr_pipeline(const env& e);
void run_instr_pipeline_nodecode(const env& e);
void run_personal(const env& e);  ///< personal fields (crypto-shredding) against plain ones
void run_react(const env& e);
void run_react_takeover(const env& e);
void run_react_member(const env& e);  ///< a member process of react-takeover (not for people)
/// PostgreSQL 15 beside jetsource, same run (issue 17 §2; bench/peer/).
void run_peer_postgres(const env& e);
/// One direct get of a head, the ways a client can wait for its reply (ADR 0023; roundtrip.cpp).
void run_roundtrip(const env& e);

}  // namespace bench
