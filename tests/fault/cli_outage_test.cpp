// Fault tests (issue 10, fault 8): the order-system command line when the server is gone or is
// not a NATS server: long work shows progress and gives up, failures say why, and what the
// command line says names only what exists. The real binary against a real nats-server.
#include "order_cli_fixture.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace {

using jetsource::test::outcome;
using clock_type = std::chrono::steady_clock;

// A plain TCP listener on loopback that is not a NATS server: it accepts and sends `greeting`
// (maybe nothing), then keeps the connections open until it goes away.
class tcp_listener {
 public:
  explicit tcp_listener(std::string greeting) : greeting_(std::move(greeting)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
        ::listen(fd_, 16) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return;
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~tcp_listener() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (int c : clients_) ::close(c);
    if (fd_ >= 0) ::close(fd_);
  }
  tcp_listener(const tcp_listener&) = delete;
  tcp_listener& operator=(const tcp_listener&) = delete;
  std::uint16_t port() const { return port_; }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      if (!greeting_.empty()) (void)!::write(c, greeting_.data(), greeting_.size());
      clients_.push_back(c);
    }
  }
  std::string greeting_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<int> clients_;
  std::thread thread_;
};

class CliOutageTest : public jetsource::test::order_cli_test {
 protected:
  // Waits at most `limit` for a process we spawned; one still running is killed (a failure).
  outcome wait_at_most(pid_t pid, std::chrono::seconds limit) {
    auto deadline = clock_type::now() + limit;
    while (clock_type::now() < deadline) {
      siginfo_t info{};
      if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
          info.si_pid == pid)
        return wait(pid);
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
    }
    ADD_FAILURE() << "pid " << pid << " still running after " << limit.count() << " s; killed";
    ::kill(pid, SIGKILL);
    return wait(pid);
  }
  // Polls the stderr file of a running process until it contains `text` (at most `limit`).
  bool stderr_shows(pid_t pid, const std::string& text, std::chrono::seconds limit) {
    auto deadline = clock_type::now() + limit;
    while (clock_type::now() < deadline) {
      if (jetsource::test::slurp(files_[pid].second).find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
    }
    return false;
  }
};

// The summary line: "load: N orders, C commands in ..., R rejected, F failed, U outcome unknown".
struct load_summary {
  long orders = -1, commands = -1, rejected = -1, failed = -1, unknown = -1;
};
load_summary parse_summary(const std::string& out) {
  static const std::regex line(
      R"(load: (\d+) orders, (\d+) commands in .*, (\d+) rejected, (\d+) failed, (\d+) outcome unknown)");
  std::smatch m;
  load_summary s;
  if (!std::regex_search(out, m, line)) return s;
  s = {std::stol(m[1]), std::stol(m[2]), std::stol(m[3]), std::stol(m[4]), std::stol(m[5])};
  return s;
}

TEST_F(CliOutageTest, LoadUnderAnOutageShowsProgressGivesUpAndCountsUnknownApart) {
  pid_t load = spawn({"load", "--orders", "2000", "--concurrency", "4"}, server_->url());
  auto deadline = clock_type::now() + std::chrono::seconds{60};
  while (commits() < 100 && clock_type::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  ASSERT_GE(commits(), 100u) << "the load never got going";
  auto port = server_->port();
  server_->kill_hard();  // the server is gone for good (until the load has ended)
  auto killed = clock_type::now();
  auto r = wait(load);
  auto took = std::chrono::duration_cast<std::chrono::seconds>(clock_type::now() - killed);
  EXPECT_EQ(r.code, 1) << r.err;
  // Bounded: 30 s without an answer (the default), plus the commands already in flight.
  EXPECT_LT(took.count(), 75) << r.err;
  EXPECT_NE(r.err.find("gave up"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("/2000 orders"), std::string::npos) << "no progress shown: " << r.err;
  EXPECT_NE(r.err.find("timeout"), std::string::npos) << "no reason given: " << r.err;
  auto s = parse_summary(r.out);
  ASSERT_GE(s.orders, 0) << "no summary line: " << r.out;
  EXPECT_LT(s.orders, 2000);
  EXPECT_GT(s.unknown, 0) << r.out;

  // Back with its store: every command reported as done is stored, every "failed" one is not;
  // only those of unknown outcome may or may not be.
  store_.reset();
  server_.reset();
  start_server(port);
  auto stored = static_cast<long>(commits());
  long done = s.commands - s.rejected - s.failed - s.unknown;
  EXPECT_GE(stored, done) << r.out;
  EXPECT_LE(stored, done + s.unknown) << r.out;
}

TEST_F(CliOutageTest, AnUnknownSubcommandIsNamed) {
  for (auto args :
       std::vector<std::vector<std::string>>{{"frobnicate"}, {"order", "frobnicate", "o-1"}}) {
    auto r = run_offline(args);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find("frobnicate"), std::string::npos) << r.err;
  }
}

TEST_F(CliOutageTest, CreateNeverNamesAGeneratedIdThatWasNotStored) {
  const std::regex generated("ord-[0-9a-f]{16}");
  auto offline = run_offline({"order", "create", "--customer", "c-1"});
  EXPECT_EQ(offline.code, 1) << offline.err;
  EXPECT_FALSE(std::regex_search(offline.err, generated)) << offline.err;
  EXPECT_NE(offline.err.find("not stored"), std::string::npos) << offline.err;
  auto malformed = run_offline({"order", "create", "--customer", "c-1", "--item", "w:0:5"});
  EXPECT_EQ(malformed.code, 2) << malformed.err;
  EXPECT_FALSE(std::regex_search(malformed.err, generated)) << malformed.err;
  EXPECT_EQ(commits(), 0u);
}

TEST_F(CliOutageTest, AnItemWithTooManyFieldsSaysTheExpectedForm) {
  auto r = run_offline({"order", "create", "--customer", "c-1", "--item", "w:1:1:1"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("SKU:QTY:UNIT_PRICE_CENTS"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("not a whole number"), std::string::npos) << r.err;
}

TEST_F(CliOutageTest, AnOutOfRangeNumberSaysOutOfRange) {
  for (auto args : std::vector<std::vector<std::string>>{
           {"order", "add-item", "o-1", "--sku", "w", "--qty", "99999999999999999999",
            "--unit-price-cents", "1"},
           {"order", "create", "--customer", "c-1", "--item", "w:99999999999999999999:1"}}) {
    auto r = run_offline(args);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find("out of range"), std::string::npos) << r.err;
  }
}

TEST_F(CliOutageTest, AnEmptyNatsUrlIsAUsageError) {
  auto r = wait(spawn({"--nats-url", "", "order", "create", "--customer", "c-1"}, ""));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--nats-url"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(cli_dir() / "nats")) << "an embedded server was started";
}

TEST_F(CliOutageTest, ServeSaysReconnectedAfterDisconnected) {
  pid_t serve = spawn({"serve"}, server_->url());
  ASSERT_TRUE(stderr_shows(serve, "serving", std::chrono::seconds{30}));
  store_.reset();
  crash_and_restart_server();
  EXPECT_TRUE(stderr_shows(serve, "disconnected", std::chrono::seconds{20}));
  EXPECT_TRUE(stderr_shows(serve, "reconnected", std::chrono::seconds{20}))
      << jetsource::test::slurp(files_[serve].second);
  stop(serve);
}

TEST_F(CliOutageTest, ANonNatsListenerIsNamedWithinTheConnectTimeout) {
  for (const std::string greeting : {"", "HTTP/1.1 400 Bad Request\r\n\r\n"}) {
    tcp_listener listener{greeting};
    ASSERT_NE(listener.port(), 0);
    auto url = "nats://127.0.0.1:" + std::to_string(listener.port());
    auto t0 = clock_type::now();
    auto r = wait(spawn({"order", "place", "o-1"}, url));
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0);
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_NE(r.err.find("no NATS server at " + url), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("INFO"), std::string::npos) << r.err;
    EXPECT_LT(took.count(), 6000) << "greeting '" << greeting << "': " << r.err;
  }
}

// The pid of the embedded nats-server a process started (from its ports file), if any.
pid_t embedded_server_pid(const std::filesystem::path& dir, pid_t parent) {
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator(dir, ec)) {
    static const std::regex ports(R"(nats-server_(\d+)\.ports)");
    std::smatch m;
    auto name = f.path().filename().string();
    if (!std::regex_match(name, m, ports)) continue;
    pid_t pid = std::stoi(m[1]);
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    auto close = line.rfind(')');  // "pid (comm) state ppid ..."
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent) return pid;
  }
  return -1;
}

TEST_F(CliOutageTest, ServeExitsWhenItsEmbeddedServerDies) {
  pid_t serve = spawn({"serve"}, "");  // no --nats-url: serve starts its own server
  ASSERT_TRUE(stderr_shows(serve, "serving", std::chrono::seconds{30}))
      << jetsource::test::slurp(files_[serve].second);
  pid_t child = embedded_server_pid(cli_dir() / "nats", serve);
  if (child <= 0) {
    ::kill(serve, SIGKILL);
    (void)wait(serve);
    FAIL() << "no nats-server child of serve pid " << serve << " in " << cli_dir() / "nats";
  }
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  auto r = wait_at_most(serve, std::chrono::seconds{40});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("embedded nats-server pid " + std::to_string(child)), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("nats-server.log"), std::string::npos) << r.err;
}

}  // namespace
