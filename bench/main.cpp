// jetsource-bench: jetsource's write and read paths beside plain nats.c baselines, same run.
//
//   jetsource-bench <append-sync|append-async|load|execute|project|e2e-latency|rebuild|metrics|
//                    personal|react|react-takeover|peer-postgres|all>
//                   [--nats-url URL] [--events N]
//                   [--payload-bytes B] [--runs R]
//   jetsource-bench soak [--minutes M] [--rate R]     (a long run: not part of `all`)
//   jetsource-bench roundtrip [--events N] [--runs R] (one direct get, ADR 0023: not in `all`)
//   jetsource-bench instr-<fill|append|load|project|pipeline> --events N --nats-url URL
//                                                     (bench/callgrind.sh's runs: not in `all`)
//
// Without --nats-url an embedded nats-server runs in a temporary directory, removed at the end.
// Result lines (stdout): `<scenario> key=value ...` and `raw_<scenario> key=value ...`; medians
// over --runs with _min/_max keys, a ratio against the raw baseline, and target=/pass= where
// the project states a target. See docs/performance.md.
#include "bench.hpp"

#include <jetsource/server.hpp>

#include <spdlog/cfg/env.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <sys/resource.h>
#include <unistd.h>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

namespace bench {

std::atomic<bool> stop_requested{false};

namespace {
// --replicas and --scheme: every stream a scenario creates (a cluster's figures, ADR 0015).
int stream_replicas = 1;
jetsource::concurrency_scheme stream_scheme = jetsource::concurrency_scheme::automatic;
}  // namespace

void line::print() const {
  std::fputs(text_.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

cpu_seconds cpu_used(const env& e) {
  cpu_seconds out;
  rusage self{};
  if (getrusage(RUSAGE_SELF, &self) == 0) {
    out.client = static_cast<double>(self.ru_utime.tv_sec + self.ru_stime.tv_sec) +
                 static_cast<double>(self.ru_utime.tv_usec + self.ru_stime.tv_usec) / 1e6;
    out.client_sys = static_cast<double>(self.ru_stime.tv_sec) +
                     static_cast<double>(self.ru_stime.tv_usec) / 1e6;
    out.client_switches = static_cast<double>(self.ru_nvcsw + self.ru_nivcsw);
  }
  if (e.server_pid > 0) {
    // /proc/<pid>/stat: utime and stime (fields 14 and 15) in clock ticks, after "(comm) ".
    std::ifstream in(fmt::format("/proc/{}/stat", e.server_pid));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::istringstream rest(text.substr(text.rfind(')') + 2));
    std::string field;
    double utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14) utime = std::stod(field);
      if (i == 15) stime = std::stod(field);
    }
    out.server = (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
    // Per thread (the process's own status counts its first thread only).
    std::error_code ec;
    for (const auto& task :
         std::filesystem::directory_iterator(fmt::format("/proc/{}/task", e.server_pid), ec)) {
      std::ifstream status(task.path() / "status");
      for (std::string l; std::getline(status, l);)
        if (l.starts_with("voluntary_ctxt_switches:") ||
            l.starts_with("nonvoluntary_ctxt_switches:"))
          out.server_switches += std::stod(l.substr(l.find(':') + 1));
    }
  }
  return out;
}

double cpu_us_per_event(const env& e, const cpu_seconds& before, std::uint64_t events) {
  const auto now = cpu_used(e);
  const double per = 1e6 / static_cast<double>(std::max<std::uint64_t>(events, 1));
  note(
      "cpu per event: {:.1f} us in this process ({:.1f} in its kernel), {:.1f} us in nats-server; "
      "context switches per 1000 events: {:.1f} here, {:.1f} in nats-server",
      (now.client - before.client) * per, (now.client_sys - before.client_sys) * per,
      (now.server - before.server) * per,
      (now.client_switches - before.client_switches) * per / 1e3,
      (now.server_switches - before.server_switches) * per / 1e3);
  return (now.total() - before.total()) * per;
}

stream_guard::~stream_guard() {
  for (const auto& name : {name_, name_ + "_SNAPSHOTS"}) {
    jsErrCode err = static_cast<jsErrCode>(0);
    natsStatus s = js_DeleteStream(js_, name.c_str(), nullptr, &err);
    if (s != NATS_OK && s != NATS_NOT_FOUND)
      note("could not delete stream {}: {}", name, natsStatus_GetText(s));
  }
}

jetsource::store_options store_options_for(const std::string& stream) {
  std::string prefix;
  for (char c : stream) prefix += static_cast<char>(c == '_' ? '-' : std::tolower(c));
  jetsource::store_options o;
  o.stream = stream;
  o.subject_prefix = prefix;
  o.replicas = stream_replicas;
  o.concurrency = stream_scheme;
  return o;
}

std::string subject_for(const jetsource::store_options& o, std::string_view type,
                        std::string_view id) {
  return fmt::format("{}.{}.{}.{}", o.subject_prefix, type, jetsource::fnv1a32(id) % o.partitions,
                     id);
}

std::string make_body(std::size_t bytes) {
  std::string head = R"([{"type":"Deposited","v":2,"data":{"note":")";
  std::string tail = R"("}}])";
  if (bytes <= head.size() + tail.size()) return std::string(std::max<std::size_t>(bytes, 1), 'x');
  return head + std::string(bytes - head.size() - tail.size(), 'x') + tail;
}

std::string rfc3339_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000000Z", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string raw_msg_id(std::uint64_t n) {
  return fmt::format("raw{:019}", n);
}

natsMsg* make_raw_commit(const std::string& subject, const std::string& body,
                         const std::string& msg_id, const std::string& aggregate_id,
                         std::uint64_t version, std::uint64_t expected, const char* event_types,
                         const raw_commit_headers& h) {
  natsMsg* m = nullptr;
  check(natsMsg_Create(&m, subject.c_str(), nullptr, body.data(), static_cast<int>(body.size())),
        "natsMsg_Create");
  char version_text[24], expected_text[24];
  std::snprintf(version_text, sizeof version_text, "%llu",
                static_cast<unsigned long long>(version));
  std::snprintf(expected_text, sizeof expected_text, "%llu",
                static_cast<unsigned long long>(expected));
  natsStatus s = natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id.c_str());
  if (s == NATS_OK) s = natsMsgHeader_Set(m, "Es-Aggregate-Type", h.type);
  if (s == NATS_OK) s = natsMsgHeader_Set(m, "Es-Aggregate-Id", aggregate_id.c_str());
  if (s == NATS_OK) s = natsMsgHeader_Set(m, "Es-Version", version_text);
  if (s == NATS_OK) s = natsMsgHeader_Set(m, "Es-Events", event_types);
  if (s == NATS_OK) s = natsMsgHeader_Set(m, "Content-Type", "application/json");
  if (s == NATS_OK) s = natsMsgHeader_Set(m, "Es-Timestamp", h.timestamp.c_str());
  if (s == NATS_OK) s = natsMsgHeader_Set(m, "Nats-Expected-Last-Subject-Sequence", expected_text);
  if (s != NATS_OK) natsMsg_Destroy(m);
  check(s, "natsMsgHeader_Set");
  return m;
}

}  // namespace bench

namespace {

extern "C" void on_signal(int) {
  bench::stop_requested.store(true);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"jetsource-bench: jetsource beside plain nats.c, measured in the same run"};
  const std::map<std::string, void (*)(const bench::env&)> scenarios = {
      {"append-sync", bench::run_append_sync},
      {"append-async", bench::run_append_async},
      {"load", bench::run_load},
      {"execute", bench::run_execute},
      {"project", bench::run_project},
      {"e2e-latency", bench::run_e2e_latency},
      {"rebuild", bench::run_rebuild},
      {"soak", bench::run_soak},
      {"metrics", bench::run_metrics},
      {"instr-fill", bench::run_instr_fill},
      {"instr-append", bench::run_instr_append},
      {"instr-load", bench::run_instr_load},
      {"instr-cold-load", bench::run_instr_cold_load},
      {"instr-cold-load-raw", bench::run_instr_cold_load_raw},
      {"instr-project", bench::run_instr_project},
      {"instr-pipeline", bench::run_instr_pipeline},
      {"instr-pipeline-nodecode", bench::run_instr_pipeline_nodecode},
      {"personal", bench::run_personal},
      {"react", bench::run_react},
      {"react-takeover", bench::run_react_takeover},
      {"react-member", bench::run_react_member},
      {"peer-postgres", bench::run_peer_postgres},
      {"roundtrip", bench::run_roundtrip}};
  std::string scenario, nats_url;
  bench::options opt;
  std::int64_t events = 0;
  app.add_option("scenario", scenario,
                 "append-sync | append-async | load | execute | project | e2e-latency | rebuild | "
                 "metrics | personal | react | react-takeover | all | soak (not part of all) | "
                 "instr-fill | instr-append | instr-load | instr-cold-load[-raw] | instr-project | "
                 "instr-pipeline[-nodecode] "
                 "(bench/callgrind.sh's "
                 "runs, not part of all) | peer-postgres (PostgreSQL beside jetsource) | "
                 "roundtrip (one direct get, the ways to wait for its reply; not part of all)")
      ->required()
      ->check(CLI::IsMember({"append-sync",
                             "append-async",
                             "load",
                             "execute",
                             "project",
                             "e2e-latency",
                             "rebuild",
                             "metrics",
                             "personal",
                             "react",
                             "react-takeover",
                             "react-member",
                             "all",
                             "soak",
                             "instr-fill",
                             "instr-append",
                             "instr-load",
                             "instr-project",
                             "instr-pipeline",
                             "instr-pipeline-nodecode",
                             "instr-cold-load",
                             "instr-cold-load-raw",
                             "peer-postgres",
                             "roundtrip"}));
  app.add_option("--nats-url", nats_url,
                 "NATS server URL, or several comma-separated (default: an embedded nats-server)");
  app.add_option("--events", events,
                 "events per run (append-sync 10000, append-async 100000, execute 100000 "
                 "commands; load: the big stream's size, 1000000; project 500000; "
                 "e2e-latency 100000, i.e. 10 s at 10000/s; rebuild 1000000; metrics 20000000 "
                 "operations; personal 2000; roundtrip 20000 gets)")
      ->check(CLI::PositiveNumber);
  app.add_option("--payload-bytes", opt.payload_bytes, "commit body size in bytes (default 200)")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--runs", opt.runs, "runs per figure; medians are printed (default 5)")
      ->check(CLI::Range(1, 1000));
  app.add_option("--minutes", opt.minutes, "soak: minutes to run (default 10)")
      ->check(CLI::Range(1, 24 * 60));
  app.add_option("--rate", opt.rate, "soak, e2e-latency: events/s (default 10000)")
      ->check(CLI::Range(1.0, 1e6));
  app.add_option("--pull-expires-ms", opt.pull_expires_ms,
                 "soak: the projector's pull_expires in ms (default: the projector's, 500)")
      ->check(CLI::Range(10, 60000));
  app.add_option("--duplicate-window-s", opt.duplicate_window_s,
                 "soak: the stream's duplicate window in s (default: the store's, 120)")
      ->check(CLI::Range(1, 3600));
  app.add_flag("--peer-1m", opt.peer_1m,
               "peer-postgres: also the cold loads on a 1M-event table and stream (slow fill)");
  std::string scheme = "automatic";
  app.add_option("--snapshot-every", opt.snapshot_every,
                 "execute: the repository's snapshot_every (default: the library's default)");
  app.add_option("--head-state-max-bytes", opt.head_state_max_bytes,
                 "execute: the repository's head_state_max_bytes (default: the library's; 0: "
                 "snapshots on the snapshot stream, ADR 0017)");
  app.add_option("--replicas", bench::stream_replicas,
                 "replicas of the streams the scenarios create (default 1; 3 on a cluster)")
      ->check(CLI::Range(1, 5));
  app.add_option("--scheme", scheme,
                 "concurrency scheme of jetsource's stores (ADR 0015; default automatic)")
      ->check(CLI::IsMember({"automatic", "subject_sequence", "commit_slot"}));
  CLI11_PARSE(app, argc, argv);
  if (events > 0) opt.events = events;
  if (scheme == "subject_sequence")
    bench::stream_scheme = jetsource::concurrency_scheme::subject_sequence;
  if (scheme == "commit_slot") bench::stream_scheme = jetsource::concurrency_scheme::commit_slot;
  spdlog::set_level(spdlog::level::warn);
  spdlog::cfg::load_env_levels();  // SPDLOG_LEVEL=info shows the library's log lines
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  std::optional<std::filesystem::path> temp_dir;
  std::optional<jetsource::embedded_server> server;
  int status = 0;
  {
    std::optional<jetsource::connection> conn;
    natsConnection* raw_nc = nullptr;
    jsCtx* raw_js = nullptr;
    natsOptions* no = nullptr;
    try {
      if (nats_url.empty()) {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "jetsource-bench-XXXXXX").string();
        if (!mkdtemp(pattern.data())) throw bench::failure("cannot create a temporary directory");
        temp_dir = pattern;
        server.emplace(bench::must(jetsource::embedded_server::start({.data_dir = *temp_dir}),
                                   "start nats-server"));
        nats_url = server->url();
        bench::note("embedded nats-server pid {} at {}, store {}", server->pid(), nats_url,
                    temp_dir->string());
      }
      jetsource::connection_options co;
      for (std::size_t at = 0; at < nats_url.size();) {  // several: a cluster
        auto comma = std::min(nats_url.find(',', at), nats_url.size());
        co.urls.push_back(nats_url.substr(at, comma - at));
        at = comma + 1;
      }
      conn.emplace(bench::must(jetsource::connection::connect(co), "connect"));

      bench::check(natsOptions_Create(&no), "natsOptions_Create");
      std::vector<const char*> servers;
      for (const auto& u : co.urls) servers.push_back(u.c_str());
      bench::check(natsOptions_SetServers(no, servers.data(), static_cast<int>(servers.size())),
                   "natsOptions_SetServers");
      bench::check(natsOptions_SetSendAsap(no, true), "natsOptions_SetSendAsap");
      bench::check(natsConnection_Connect(&raw_nc, no), "raw connect");
      jsOptions jo;
      jsOptions_Init(&jo);
      jo.Wait = 10000;
      bench::check(natsConnection_JetStream(&raw_js, raw_nc, &jo), "raw JetStream context");

      bench::env e{opt,
                   &*conn,
                   raw_nc,
                   raw_js,
                   fmt::format("{}", ::getpid()),
                   server ? static_cast<int>(server->pid()) : -1,
                   nats_url};
      if (scenario == "all") {
        for (const auto& name :
             {"append-sync", "append-async", "load", "execute", "project", "e2e-latency", "rebuild",
              "metrics", "personal", "react", "react-takeover", "peer-postgres"})
          scenarios.at(name)(e);
      } else {
        scenarios.at(scenario)(e);
      }
    } catch (const std::exception& ex) {
      fmt::print(stderr, "jetsource-bench: {}\n", ex.what());
      status = 1;
    }
    if (raw_js) jsCtx_Destroy(raw_js);
    if (raw_nc) natsConnection_Destroy(raw_nc);
    if (no) natsOptions_Destroy(no);
  }  // the jetsource connection closes here, before the server stops
  if (server) {
    if (auto r = server->stop(); !r) fmt::print(stderr, "stop nats-server: {}\n", r.error());
    server.reset();
  }
  if (temp_dir) {
    std::error_code ec;
    std::filesystem::remove_all(*temp_dir, ec);
    if (ec) fmt::print(stderr, "cannot remove {}: {}\n", temp_dir->string(), ec.message());
  }
  nats_Close();
  return status;
}
