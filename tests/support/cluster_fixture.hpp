// Test support: a 3-node nats-server cluster with JetStream on loopback. Each node has its own
// client, cluster (route) and monitor ports and its own store directory; every node routes to
// the others. start() waits until the JetStream meta group has a leader. Nodes are stopped by
// their PID when the cluster object goes away (also when a test fails: it is a member of the
// fixture), and killed by the kernel if the test process dies (embedded_server's
// die_with_parent). A node can be SIGKILLed, SIGSTOPped and resumed, or restarted, by index.
//
// Thread-safety: one owner (the test thread that started it).
#pragma once

#include <jetsource/connection.hpp>
#include <jetsource/server.hpp>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace jetsource::test {

/// A loopback TCP port that was free a moment ago (bind to port 0, read it, close).
inline std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  std::uint16_t port = 0;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0) ::close(fd);
  return port;
}

class nats_cluster {
 public:
  struct node {
    std::string name;  // n1, n2, n3 (the server_name)
    std::uint16_t client = 0, route = 0, monitor = 0;
    std::filesystem::path dir;
    std::optional<embedded_server> server;
    bool paused = false;
  };

  /// Picks the ports and directories (under `dir`); start() runs the nodes.
  explicit nats_cluster(std::filesystem::path dir, int size = 3) {
    for (int i = 0; i < size; ++i) {
      node n;
      n.name = "n" + std::to_string(i + 1);
      n.client = free_port();
      n.route = free_port();
      n.monitor = free_port();
      n.dir = dir / n.name;
      nodes_.push_back(std::move(n));
    }
  }
  nats_cluster(const nats_cluster&) = delete;
  nats_cluster& operator=(const nats_cluster&) = delete;
  ~nats_cluster() {
    for (std::size_t i = 0; i < nodes_.size(); ++i) stop(static_cast<int>(i));
  }

  /// Starts every node and waits until the meta group has a leader. A node whose port was
  /// taken meanwhile (free_port() only says a port WAS free: another test's server or an
  /// outgoing connection can take it before the node binds) is started again on fresh ports.
  result<void> start(std::chrono::milliseconds timeout = std::chrono::seconds{30}) {
    for (std::size_t i = 0; i < nodes_.size(); ++i)
      if (auto r = start_node(static_cast<int>(i)); !r) return r;
    return wait_for_meta_leader(timeout);
  }

  int size() const { return static_cast<int>(nodes_.size()); }
  const node& at(int i) const { return nodes_.at(static_cast<std::size_t>(i)); }
  std::string url(int i) const { return "nats://127.0.0.1:" + std::to_string(at(i).client); }
  std::vector<std::string> urls() const {
    std::vector<std::string> v;
    for (int i = 0; i < size(); ++i) v.push_back(url(i));
    return v;
  }
  /// nats://127.0.0.1:P1,nats://127.0.0.1:P2,... (the --nats-url form)
  std::string url_list() const {
    std::string s;
    for (const auto& u : urls()) s += (s.empty() ? "" : ",") + u;
    return s;
  }
  /// The node named `server_name` (n1, ...), or -1.
  int index_of(std::string_view server_name) const {
    for (int i = 0; i < size(); ++i)
      if (at(i).name == server_name) return i;
    return -1;
  }

  /// Connection options to all nodes with fast reconnects.
  connection_options client_options() const {
    connection_options o;
    o.urls = urls();
    o.max_reconnects = -1;
    o.reconnect_wait = std::chrono::milliseconds{100};
    return o;
  }

  /// Starts node i (again, with its store). When one of its ports is taken (its log says
  /// "address already in use"), that port is replaced by a fresh one and the node started
  /// again, at most set_port_retries() times; the others keep routing to it (it routes to them).
  result<void> start_node(int i) {
    auto& n = nodes_.at(static_cast<std::size_t>(i));
    for (int attempt = 0;; ++attempt) {
      auto r = launch(n);
      if (r) return r;
      if (attempt >= port_retries_ || !replace_taken_ports(n, r.error().message)) return r;
      ++port_retries_used_;
    }
  }
  /// How often start_node() replaced a taken port (for the fixture's own test).
  int port_retries_used() const { return port_retries_used_; }
  /// At most this many fresh ports per start_node() (default 5; 0: fail on a taken port).
  void set_port_retries(int n) { port_retries_ = n; }

  /// SIGKILL (and reap) node i.
  void kill(int i) {
    auto& n = nodes_.at(static_cast<std::size_t>(i));
    if (!n.server) return;
    n.server->kill_hard();
    n.server.reset();
    n.paused = false;
  }
  /// SIGSTOP / SIGCONT node i (it keeps its sockets open but answers nothing meanwhile).
  void pause(int i) {
    auto& n = nodes_.at(static_cast<std::size_t>(i));
    if (n.server && !n.paused && ::kill(n.server->pid(), SIGSTOP) == 0) n.paused = true;
  }
  void resume(int i) {
    auto& n = nodes_.at(static_cast<std::size_t>(i));
    if (n.server && n.paused && ::kill(n.server->pid(), SIGCONT) == 0) n.paused = false;
  }
  /// Graceful stop of node i (a paused node is resumed first so that it can exit).
  void stop(int i) {
    auto& n = nodes_.at(static_cast<std::size_t>(i));
    if (!n.server) return;
    resume(i);
    (void)n.server->stop(std::chrono::milliseconds{3000});
    n.server.reset();
  }
  bool running(int i) const { return at(i).server.has_value(); }

  /// GET /<path> on node i's monitor port, as JSON (nullopt when it does not answer).
  std::optional<nlohmann::json> monitor(int i, const std::string& path) const {
    httplib::Client c("127.0.0.1", at(i).monitor);
    c.set_connection_timeout(std::chrono::milliseconds{500});
    c.set_read_timeout(std::chrono::seconds{2});
    auto r = c.Get(path);
    if (!r || r->status != 200) return std::nullopt;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_discarded()) return std::nullopt;
    return j;
  }

  /// The meta leader's name as node i sees it ("" when none or no answer).
  std::string meta_leader(int i) const {
    auto j = monitor(i, "/jsz");
    if (!j || !j->contains("meta_cluster")) return {};
    return (*j)["meta_cluster"].value("leader", "");
  }

  /// Waits until every running node names the same meta leader.
  result<void> wait_for_meta_leader(std::chrono::milliseconds timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      std::string agreed;
      bool all = true;
      for (int i = 0; i < size() && all; ++i) {
        if (!running(i) || at(i).paused) continue;
        auto l = meta_leader(i);
        if (l.empty() || (!agreed.empty() && l != agreed)) all = false;
        agreed = l;
      }
      if (all && !agreed.empty()) return success();
      std::this_thread::sleep_for(std::chrono::milliseconds{100});
    }
    return make_error(errc::timeout, "the cluster's meta group has no leader after {} ms",
                      timeout.count());
  }

  /// One stream's state on node i, from its own monitor (/jsz?accounts=1&streams=1): messages
  /// and last sequence of its replica, or nullopt when the node does not report the stream.
  struct replica_state {
    std::uint64_t messages = 0, last_seq = 0;
    std::string leader;
  };
  /// The node leading `consumer` of `stream`, as node i reports it ("" when unknown).
  std::string consumer_leader(int i, const std::string& stream, const std::string& consumer) const {
    auto j = monitor(i, "/jsz?accounts=1&streams=1&consumers=1");
    if (!j) return {};
    for (const auto& acc : j->value("account_details", nlohmann::json::array()))
      for (const auto& s : acc.value("stream_detail", nlohmann::json::array()))
        if (s.value("name", "") == stream)
          for (const auto& c : s.value("consumer_detail", nlohmann::json::array()))
            if (c.value("name", "") == consumer && c.contains("cluster"))
              return c["cluster"].value("leader", "");
    return {};
  }

  /// Every consumer of `stream` whose name starts with `prefix`, with its leader, as node i
  /// reports them (empty when it does not answer).
  std::vector<std::pair<std::string, std::string>> consumer_leaders(
      int i, const std::string& stream, const std::string& prefix = "") const {
    std::vector<std::pair<std::string, std::string>> out;
    auto j = monitor(i, "/jsz?accounts=1&streams=1&consumers=1");
    if (!j) return out;
    for (const auto& acc : j->value("account_details", nlohmann::json::array()))
      for (const auto& s : acc.value("stream_detail", nlohmann::json::array()))
        if (s.value("name", "") == stream)
          for (const auto& c : s.value("consumer_detail", nlohmann::json::array()))
            if (c.value("name", "").starts_with(prefix) && c.contains("cluster"))
              out.emplace_back(c.value("name", ""), c["cluster"].value("leader", ""));
    return out;
  }
  /// The node leading `stream` as the first running node that knows reports it ("" if none).
  std::string stream_leader(const std::string& stream) const {
    for (int i = 0; i < size(); ++i)
      if (running(i) && !at(i).paused)
        if (auto st = stream_state(i, stream); st && !st->leader.empty()) return st->leader;
    return {};
  }

  std::optional<replica_state> stream_state(int i, const std::string& stream) const {
    auto j = monitor(i, "/jsz?accounts=1&streams=1");
    if (!j) return std::nullopt;
    for (const auto& acc : j->value("account_details", nlohmann::json::array()))
      for (const auto& s : acc.value("stream_detail", nlohmann::json::array()))
        if (s.value("name", "") == stream) {
          replica_state r;
          r.messages = s["state"].value("messages", std::uint64_t{0});
          r.last_seq = s["state"].value("last_seq", std::uint64_t{0});
          if (s.contains("cluster")) r.leader = s["cluster"].value("leader", "");
          return r;
        }
    return std::nullopt;
  }

  /// The node's log (every start appends to it).
  std::filesystem::path log_of(int i) const { return at(i).dir / "nats-server.log"; }

 private:
  static std::string read_from(const std::filesystem::path& file, std::uintmax_t offset) {
    std::ifstream in(file, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(offset));
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  // One start of node n. The ports file (which embedded_server waits for) is written once the
  // client port listens; the route port is bound a moment later, and a node that cannot bind it
  // exits then: so the start counts only once the log says the routes listen.
  result<void> launch(node& n) {
    std::error_code ec;
    std::filesystem::create_directories(n.dir, ec);
    const auto log = n.dir / "nats-server.log";
    const auto offset = std::filesystem::exists(log, ec) ? std::filesystem::file_size(log, ec) : 0;
    embedded_server_options o;
    o.data_dir = n.dir;
    o.port = n.client;
    o.start_timeout = std::chrono::seconds{20};
    std::string routes;
    for (const auto& other : nodes_)
      if (other.name != n.name)
        routes += (routes.empty() ? "" : ",") + std::string("nats://127.0.0.1:") +
                  std::to_string(other.route);
    o.extra_args = {"--server_name",
                    n.name,
                    "--cluster_name",
                    "jetsource-test",
                    "--cluster",
                    "nats://127.0.0.1:" + std::to_string(n.route),
                    "--routes",
                    routes,
                    "-m",
                    std::to_string(n.monitor)};
    auto s = embedded_server::start(o);
    if (!s) return std::move(s).error();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{20};
    for (;;) {
      auto text = read_from(log, offset);
      if (text.find("Listening for route connections") != std::string::npos) break;
      if (!s->running() || std::chrono::steady_clock::now() > deadline) {
        s->kill_hard();
        return make_error(errc::server_binary,
                          "nats-server {} exited during start-up; its log:\n{}", n.name,
                          text.size() > 1500 ? text.substr(text.size() - 1500) : text);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    n.server.emplace(std::move(s).value());
    n.paused = false;
    return success();
  }

  // After a failed start whose log (quoted in `message`) says a port was taken: gives each of
  // n's ports named on such a line a fresh one (all three when the line names none). False when
  // no port was taken (another failure: not retried).
  static bool replace_taken_ports(node& n, const std::string& message) {
    bool any = false, named = false;
    std::size_t at = 0;
    while ((at = message.find("address already in use", at)) != std::string::npos) {
      any = true;
      auto begin = message.rfind('\n', at);
      auto line = message.substr(begin == std::string::npos ? 0 : begin, at - begin);
      for (auto* port : {&n.client, &n.route, &n.monitor})
        if (names_port(line, *port)) {
          *port = free_port();
          named = true;
        }
      at += 1;
    }
    if (any && !named) n.client = free_port(), n.route = free_port(), n.monitor = free_port();
    return any;
  }

  // Whether `line` has `port` as a whole number (":31412", "port: 31412 - ...").
  static bool names_port(const std::string& line, std::uint16_t port) {
    const auto p = std::to_string(port);
    for (auto at = line.find(p); at != std::string::npos; at = line.find(p, at + 1)) {
      const bool starts = at == 0 || !std::isdigit(static_cast<unsigned char>(line[at - 1]));
      const auto end = at + p.size();
      const bool ends = end == line.size() || !std::isdigit(static_cast<unsigned char>(line[end]));
      if (starts && ends) return true;
    }
    return false;
  }

  std::vector<node> nodes_;
  int port_retries_used_ = 0;
  int port_retries_ = 5;
};

}  // namespace jetsource::test
