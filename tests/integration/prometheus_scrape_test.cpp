// A real Prometheus server (Debian package prometheus, see scripts/install-deps.sh) on loopback
// scrapes `order-system serve --http` (against a real nats-server) and answers queries for
// jetsource's metrics through its HTTP API: what an operator's Prometheus would see.
#include <gtest/gtest.h>

#include "http_serve_fixture.hpp"

#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <regex>

namespace jetsource::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

/// The prometheus binary: $PROMETHEUS, else /usr/bin/prometheus.
std::filesystem::path prometheus_path() {
  const char* env = std::getenv("PROMETHEUS");
  return env != nullptr && *env != '\0' ? std::filesystem::path(env)
                                        : std::filesystem::path("/usr/bin/prometheus");
}

/// A free TCP port on 127.0.0.1 (bound, read, closed; the caller binds it right after).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

/// A Prometheus server process, stopped by PID (SIGTERM, then SIGKILL after 10 s) when this
/// object goes away, also when the test fails.
class prometheus_process {
 public:
  prometheus_process(const std::filesystem::path& dir, int target_port) : dir_(dir) {
    std::ofstream(dir / "prometheus.yml") << "global:\n"
                                             "  scrape_interval: 1s\n"
                                             "  scrape_timeout: 1s\n"
                                             "scrape_configs:\n"
                                             "  - job_name: order-system\n"
                                             "    metrics_path: /metrics\n"
                                             "    static_configs:\n"
                                             "      - targets: ['127.0.0.1:"
                                          << target_port << "']\n";
    port_ = free_port();
    std::vector<std::string> args{prometheus_path().string(),
                                  "--config.file=" + (dir / "prometheus.yml").string(),
                                  "--storage.tsdb.path=" + (dir / "tsdb").string(),
                                  "--web.listen-address=127.0.0.1:" + std::to_string(port_)};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const auto log = log_path().string();
    posix_spawn_file_actions_t files;
    posix_spawn_file_actions_init(&files);
    posix_spawn_file_actions_addopen(&files, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&files, 1, 2);
    int rc = posix_spawn(&pid_, argv[0], &files, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&files);
    if (rc != 0) pid_ = -1;
  }
  ~prometheus_process() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 1000; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(10ms);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
  }
  prometheus_process(const prometheus_process&) = delete;
  prometheus_process& operator=(const prometheus_process&) = delete;

  bool started() const { return pid_ > 0; }
  bool running() const {
    int status = 0;
    return pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == 0;
  }
  int port() const { return port_; }
  std::string log() const { return slurp(log_path()); }

 private:
  std::filesystem::path log_path() const { return dir_ / "prometheus.log"; }

  std::filesystem::path dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

class PrometheusScrapeTest : public http_serve_test {
 protected:
  // A command over HTTP; returns its status.
  int command(const std::string& path, const std::string& body) {
    httplib::Client c("127.0.0.1", port_);
    auto r = c.Post(path.c_str(), body, "application/json");
    EXPECT_TRUE(r) << path << ": " << httplib::to_string(r.error());
    return r ? r->status : 0;
  }

  // The value of `query`'s single sample on Prometheus' HTTP API (GET /api/v1/query), or ""
  // while it has none. `last` gets the answer's body.
  static std::string instant_value(int port, const std::string& query, std::string& last) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(5s);
    auto r = c.Get("/api/v1/query", httplib::Params{{"query", query}}, httplib::Headers{});
    if (!r) {
      last = "no answer: " + httplib::to_string(r.error());
      return {};
    }
    last = r->body;
    auto j = json::parse(r->body, nullptr, false);
    if (r->status != 200 || !j.is_object() || j.value("status", "") != "success") return {};
    const auto& result = j["data"]["result"];
    if (!result.is_array() || result.size() != 1) return {};
    return result[0]["value"][1].get<std::string>();  // [unix time, "value"]
  }

  // Polls `query` until its value is `expected` (scrapes come every second; at most 30 s).
  static void expect_value(const prometheus_process& p, const std::string& query,
                           const std::string& expected) {
    std::string value, last;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline && p.running()) {
      value = instant_value(p.port(), query, last);
      if (value == expected) return;
      std::this_thread::sleep_for(200ms);
    }
    ADD_FAILURE() << query << ": expected " << expected << ", last value \"" << value
                  << "\", last answer: " << last << "\nprometheus log:\n"
                  << p.log();
  }
};

TEST_F(PrometheusScrapeTest, PrometheusScrapesServeAndAnswersForJetsourceMetrics) {
  ASSERT_TRUE(std::filesystem::exists(prometheus_path()))
      << prometheus_path() << " not found: scripts/install-deps.sh installs it (package "
      << "prometheus), or set PROMETHEUS";
  start_serve();
  // 4 commands appended, 1 rejected (an order that is not placed cannot be paid).
  const std::string items = R"("items":[{"sku":"widget","qty":2,"unit_price_cents":250}])";
  ASSERT_EQ(command("/orders", R"({"customer_id":"c-1","order_id":"o-1",)" + items + "}"), 201);
  ASSERT_EQ(command("/orders", R"({"customer_id":"c-2","order_id":"o-2",)" + items + "}"), 201);
  ASSERT_EQ(command("/orders/o-1/place", ""), 200);
  ASSERT_EQ(command("/orders/o-1/pay", R"({"amount_cents":500})"), 200);
  ASSERT_EQ(command("/orders/o-2/pay", R"({"amount_cents":500})"), 409);

  temp_dir dir;
  prometheus_process prometheus(dir.path(), port_);
  ASSERT_TRUE(prometheus.started()) << "cannot start " << prometheus_path();
  expect_value(prometheus, R"(up{job="order-system"})", "1");
  expect_value(prometheus, R"(jetsource_commands_total{job="order-system",outcome="appended"})",
               "4");
  expect_value(prometheus, R"(jetsource_commands_total{aggregate="Order",outcome="rejected"})",
               "1");
  expect_value(prometheus,
               R"(sum(jetsource_http_requests_total{route="/orders",method="POST",status="201"}))",
               "2");

  // A later command shows in a later scrape.
  ASSERT_EQ(command("/orders/o-1/ship", ""), 200);
  expect_value(prometheus, R"(jetsource_commands_total{job="order-system",outcome="appended"})",
               "5");
}

}  // namespace
}  // namespace jetsource::test
