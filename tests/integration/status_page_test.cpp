// Tests of the status page (GET / of `order-system serve --http`, docs/operations.md "Status
// page"): the real binary against a real nats-server, the page loaded in headless Chromium
// (Debian's chromium, see scripts/install-deps.sh), its rendered DOM read back and compared with
// GET /projections and the commands sent. A screenshot is kept as a test artefact
// (STATUS_PAGE_ARTEFACTS/status-page.png).
#include <gtest/gtest.h>

#include "http_serve_fixture.hpp"
#include "webhook_sink.hpp"

#include <fmt/format.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <regex>

namespace jetsource::test {
namespace {

using json = nlohmann::json;

// Debian's chromium: $CHROMIUM, else /usr/bin/chromium.
std::filesystem::path chromium_path() {
  const char* env = std::getenv("CHROMIUM");
  return env != nullptr && *env != '\0' ? std::filesystem::path(env)
                                        : std::filesystem::path("/usr/bin/chromium");
}

// The rendered values: <td data-KIND="NAME" data-field="FIELD" ...>TEXT</td> (or span/div).
struct dom_values {
  std::map<std::pair<std::string, std::string>, std::string> by_name_and_field;
  /// The text shown, or "(not shown)".
  std::string at(const std::string& name, const std::string& field) const {
    auto it = by_name_and_field.find({name, field});
    return it == by_name_and_field.end() ? "(not shown)" : it->second;
  }
  std::size_t size() const { return by_name_and_field.size(); }
};

dom_values values_of(const std::string& dom, const std::string& kind) {
  dom_values out;
  const std::regex cell{"<(?:td|span|div) data-" + kind +
                        R"re(="([^"]*)" data-field="([^"]*)"[^>]*>([^<]*)<)re"};
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), cell); it != std::sregex_iterator();
       ++it)
    out.by_name_and_field[{(*it)[1], (*it)[2]}] = (*it)[3];
  return out;
}

// The value of `attribute` on the element whose opening tag starts with `tag_start`.
std::string attribute_of(const std::string& dom, const std::string& tag_start,
                         const std::string& attribute) {
  auto at = dom.find(tag_start);
  if (at == std::string::npos) return "(no " + tag_start + ")";
  auto end = dom.find('>', at);
  std::smatch m;
  std::string tag = dom.substr(at, end - at);
  if (std::regex_search(tag, m, std::regex{" " + attribute + R"re(="([^"]*)")re"})) return m[1];
  if (std::regex_search(tag, m, std::regex{" " + attribute + R"(( |$))"})) return "";
  return "(absent)";
}

class StatusPageTest : public http_serve_test {
 protected:
  void SetUp() override {
    http_serve_test::SetUp();
    ASSERT_TRUE(std::filesystem::exists(chromium_path()))
        << chromium_path() << " not found: the status page is tested in Debian's headless "
        << "chromium (scripts/install-deps.sh installs it; $CHROMIUM names another)";
  }
  httplib::Result get(const std::string& path) {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(std::chrono::seconds{30});
    return c.Get(path.c_str());
  }
  int post(const std::string& path, const std::string& body = {}) {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(std::chrono::seconds{30});
    auto r = body.empty() ? c.Post(path.c_str()) : c.Post(path.c_str(), body, "application/json");
    EXPECT_TRUE(r) << path << ": " << httplib::to_string(r.error());
    return r ? r->status : 0;
  }

  // GET /projections once every read model has applied the whole stream (nothing pending) and
  // they hold `dead_letters` dead letters in all.
  json caught_up_projections(std::uint64_t dead_letters) {
    const auto last = commits();
    json list;
    for (int i = 0; i < 600; ++i) {
      auto r = get("/projections");
      if (r && r->status == 200) {
        list = json_of(r->body);
        bool done = list.is_array() && !list.empty();
        std::uint64_t dead = 0;
        for (const auto& m : list) {
          done = done && m["pending"] == 0 && m["last_applied_seq"] == last;
          dead += m.value("dead_letters", std::uint64_t{0});
        }
        done = done && dead == dead_letters;
        if (done) return list;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
    }
    ADD_FAILURE() << "the read models never caught up with sequence " << last << ": " << list;
    return list;
  }

  // Runs chromium headless on `url` with `args`; returns its standard output (stderr on failure).
  std::string chromium(const std::string& url, std::vector<std::string> args) {
    const auto profile = dir_.path() / "chromium-profile";
    std::vector<std::string> all{chromium_path().string(),
                                 "--headless",
                                 "--no-sandbox",
                                 "--disable-gpu",
                                 "--disable-dev-shm-usage",
                                 "--no-first-run",
                                 "--user-data-dir=" + profile.string()};
    all.insert(all.end(), args.begin(), args.end());
    all.push_back(url);
    pid_t pid = spawn_program(std::move(all));
    if (pid < 0) return {};
    auto o = wait(pid);  // killed (a failure) after 2 minutes
    EXPECT_EQ(o.code, 0) << "chromium failed: " << o.err;
    return o.out;
  }

  // The page's DOM after `budget_ms` of virtual time (its one-second polls run meanwhile).
  std::string dump_dom(const std::string& url, int budget_ms = 5000) {
    return chromium(url, {"--virtual-time-budget=" + std::to_string(budget_ms), "--dump-dom"});
  }

  std::string page_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/"; }
};

TEST_F(StatusPageTest, GetSlashServesTheSelfContainedPage) {
  start_serve();
  auto r = get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/html; charset=utf-8");
  // Byte for byte the file in the source tree, compiled in.
  EXPECT_EQ(r->body, slurp(STATUS_PAGE_SOURCE));
  // Self-contained: nothing loaded from elsewhere.
  for (const char* outside : {"<link", "src=", "http://", "https://", "@import"})
    EXPECT_EQ(r->body.find(outside), std::string::npos) << outside;
}

// The rendered page shows what GET /projections says for every read model, the commands sent
// by outcome and the appends; a screenshot is kept.
TEST_F(StatusPageTest, ShowsWhatProjectionsAndMetricsSay) {
  start_serve();
  for (int i = 1; i <= 3; ++i) {
    const auto id = "o-" + std::to_string(i);
    ASSERT_EQ(
        post("/orders", R"({"customer_id":"c-)" + std::to_string(i % 2) + R"(","order_id":")" + id +
                            R"(","items":[{"sku":"widget","qty":)" + std::to_string(i) +
                            R"(,"unit_price_cents":250}]})"),
        201);
    ASSERT_EQ(post("/orders/" + id + "/place"), 200);
  }
  ASSERT_EQ(post("/orders/o-1/pay", R"({"amount_cents":250})"), 200);
  ASSERT_EQ(post("/orders/o-2/pay", R"({"amount_cents":1})"), 409);  // rejected
  ASSERT_EQ(post("/orders/o-1/ship"), 200);
  // Two orders of 5e18 paid by one customer for one SKU: the second overflows the sums of
  // customer_stats and product_sales (a dead letter in each), not order_summary's.
  for (const char* id : {"o-4", "o-5"}) {
    ASSERT_EQ(post("/orders", fmt::format(R"({{"customer_id":"c-big","order_id":"{}","items":[
                     {{"sku":"big","qty":1,"unit_price_cents":5000000000000000000}}]}})",
                                          id)),
              201);
    ASSERT_EQ(post(fmt::format("/orders/{}/place", id)), 200);
    ASSERT_EQ(post(fmt::format("/orders/{}/pay", id), R"({"amount_cents":5000000000000000000})"),
              200);
  }
  const auto before = caught_up_projections(2);
  ASSERT_EQ(before.size(), 3u);
  for (const auto& m : before)  // so that a page showing one for the other fails
    ASSERT_NE(m["events_applied"], m["last_applied_seq"]) << m;

  const auto dom = dump_dom(page_url());
  const auto after = json_of(get("/projections")->body);
  ASSERT_EQ(after, before) << "the read models moved while the page was read";

  EXPECT_EQ(attribute_of(dom, "<body", "data-state"), "connected") << dom;
  EXPECT_GE(std::stoi("0" + attribute_of(dom, "<body", "data-polls")), 2) << dom;
  EXPECT_EQ(attribute_of(dom, "<p id=\"disconnected\"", "hidden"), "") << dom;
  EXPECT_EQ(attribute_of(dom, "<section id=\"reactors-section\"", "hidden"), "") << dom;

  auto shown = values_of(dom, "model");
  for (const auto& m : after) {
    const auto name = m["name"].get<std::string>();
    SCOPED_TRACE(name);
    EXPECT_EQ(shown.at(name, "name"), name);
    EXPECT_EQ(shown.at(name, "position"),
              std::to_string(m["last_applied_seq"].get<std::uint64_t>()));
    EXPECT_EQ(shown.at(name, "pending"), std::to_string(m["pending"].get<std::uint64_t>()));
    EXPECT_EQ(shown.at(name, "dead_letters"),
              std::to_string(m["dead_letters"].get<std::uint64_t>()));
    EXPECT_EQ(shown.at(name, "lag_seconds"), "0.000");
    EXPECT_EQ(shown.at(name, "rate"), "0.0");  // nothing applied between the last two polls
    EXPECT_EQ(shown.at(name, "state").rfind(m["state"].get<std::string>(), 0), 0u);
  }
  EXPECT_EQ(shown.size(), after.size() * 7) << dom;  // no other read model shown

  // Commands by outcome, and appends: 5 creates, 5 places, 3 payments and a shipment appended
  // (14 commits), one payment rejected; nothing sent while the page polled: rates 0.
  auto outcomes = values_of(dom, "outcome");
  EXPECT_EQ(outcomes.at("appended", "total"), "14") << dom;
  EXPECT_EQ(outcomes.at("rejected", "total"), "1") << dom;
  EXPECT_EQ(outcomes.at("appended", "rate"), "0.0") << dom;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(dom, m, std::regex{R"(data-total="appends">([^<]*)<)"})) << dom;
  EXPECT_EQ(m[1], "14");
  ASSERT_TRUE(std::regex_search(dom, m, std::regex{R"(data-total="commands">([^<]*)<)"})) << dom;
  EXPECT_EQ(m[1], "15");
  ASSERT_TRUE(std::regex_search(dom, m, std::regex{R"(data-rate="appends">([^<]*)<)"})) << dom;
  EXPECT_EQ(m[1], "0.0");

  // The artefact: what an operator sees.
  const std::filesystem::path png =
      std::filesystem::path(STATUS_PAGE_ARTEFACTS) / "status-page.png";
  std::filesystem::create_directories(png.parent_path());
  std::filesystem::remove(png);
  chromium(page_url(), {"--virtual-time-budget=3000", "--window-size=1200,800", "--hide-scrollbars",
                        "--screenshot=" + png.string()});
  ASSERT_TRUE(std::filesystem::exists(png)) << png;
  EXPECT_GT(std::filesystem::file_size(png), 5000u);
  EXPECT_EQ(slurp(png).substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
}

// With serve --react, the page shows each reactor beside the read models: what GET /reactors
// says of its state, mode, position, pending, members, parked orders and dead letters.
TEST_F(StatusPageTest, ShowsTheReactorsAsReactorsSays) {
  webhook_sink sink;
  sink.fail_order("o-2", webhook_sink::failure::status_500);  // parks in notifications
  start_serve({"--react", "--instance", "page-1", "--webhook", sink.url(), "--lease-ms", "1500"});
  for (int i = 1; i <= 2; ++i) {
    const auto id = "o-" + std::to_string(i);
    ASSERT_EQ(
        post("/orders", R"({"customer_id":"c-1","order_id":")" + id +
                            R"(","items":[{"sku":"widget","qty":1,"unit_price_cents":250}]})"),
        201);
    ASSERT_EQ(post("/orders/" + id + "/place"), 200);
    ASSERT_EQ(post("/orders/" + id + "/pay", R"({"amount_cents":250})"), 200);
  }
  // Settled: both reactors caught up, o-2 parked in notifications, the member holds all 64
  // partitions, and three reads 300 ms apart agree: positions are checkpoints the member writes
  // every lease/3 (500 ms), so two reads could fall between two writes.
  json before;
  int same = 0;
  for (int i = 0; i < 300; ++i) {
    auto r = get("/reactors");
    if (r && r->status == 200) {
      auto j = json_of(r->body);
      bool settled = j.size() == 2 && j[1]["dead_letters"] == 1;
      for (const auto& x : j)
        settled = settled && x["state"] == "started" && x["pending"] == 0 &&
                  x["members"].size() == 1 && x["members"][0]["partitions"] == 64;
      same = settled && j == before ? same + 1 : 0;
      if (same == 2) break;
      before = settled ? j : json{};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{300});
  }
  ASSERT_EQ(before.size(), 2u) << before;
  ASSERT_EQ(before[1]["parked"].size(), 1u) << before;
  ASSERT_NE(before[0]["position"], before[0]["pending"]) << before;

  const auto dom = dump_dom(page_url());
  const auto after = json_of(get("/reactors")->body);
  ASSERT_EQ(after, before) << "the reactors moved while the page was read";

  EXPECT_EQ(attribute_of(dom, "<body", "data-state"), "connected") << dom;
  EXPECT_EQ(attribute_of(dom, "<section id=\"reactors-section\"", "hidden"), "(absent)") << dom;
  auto shown = values_of(dom, "reactor");
  for (const auto& r : after) {
    const auto name = r["reactor"].get<std::string>();
    SCOPED_TRACE(name);
    EXPECT_EQ(shown.at(name, "name"), name);
    EXPECT_EQ(shown.at(name, "state"), r["state"].get<std::string>());
    EXPECT_EQ(shown.at(name, "mode"), r["mode"].get<std::string>());
    EXPECT_EQ(shown.at(name, "position"), std::to_string(r["position"].get<std::uint64_t>()));
    EXPECT_EQ(shown.at(name, "pending"), std::to_string(r["pending"].get<std::uint64_t>()));
    EXPECT_EQ(shown.at(name, "members"), std::to_string(r["members"].size()));
    EXPECT_EQ(shown.at(name, "parked"), std::to_string(r["parked"].size()));
    EXPECT_EQ(shown.at(name, "dead_letters"),
              std::to_string(r["dead_letters"].get<std::uint64_t>()));
    EXPECT_EQ(shown.at(name, "rate"), "0.0");  // nothing moved between the last two polls
  }
  EXPECT_EQ(shown.size(), after.size() * 9) << dom;  // name + 8 fields, no other reactor
  // The read models are still there, beside them.
  EXPECT_EQ(values_of(dom, "model").size(), 3u * 7) << dom;

  const std::filesystem::path png =
      std::filesystem::path(STATUS_PAGE_ARTEFACTS) / "status-page-reactors.png";
  std::filesystem::create_directories(png.parent_path());
  std::filesystem::remove(png);
  chromium(page_url(), {"--virtual-time-budget=3000", "--window-size=1200,900", "--hide-scrollbars",
                        "--screenshot=" + png.string()});
  EXPECT_TRUE(std::filesystem::exists(png)) << png;
}

// Serves the page's bytes at GET / once, on a port of its own, then stops listening: the page's
// polls then meet a closed port, as when serve is gone.
class one_page_server {
 public:
  explicit one_page_server(std::string page) : page_(std::move(page)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    served_ = std::async(std::launch::async, [this] { return serve(); });
  }
  ~one_page_server() {
    ::shutdown(fd_, SHUT_RDWR);  // ends a pending accept
    served_.wait();
    ::close(fd_);
  }
  int port() const { return port_; }

 private:
  // Connections that send no GET / (a browser's spare connection) are closed.
  bool serve() {
    for (;;) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return false;
      timeval t{5, 0};
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &t, sizeof t);
      std::string head;
      char buf[4096];
      while (head.find("\r\n\r\n") == std::string::npos) {
        auto n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        head.append(buf, static_cast<std::size_t>(n));
      }
      if (head.rfind("GET / ", 0) != 0) {
        ::close(c);
        continue;
      }
      auto answer =
          "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: " +
          std::to_string(page_.size()) + "\r\nConnection: close\r\n\r\n" + page_;
      ::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
      ::shutdown(c, SHUT_WR);
      while (::recv(c, buf, sizeof buf, 0) > 0) {
      }
      ::close(c);
      ::shutdown(fd_, SHUT_RDWR);  // nothing listens any more
      return true;
    }
  }

  std::string page_;
  int fd_ = -1;
  int port_ = 0;
  std::future<bool> served_;
};

// When its polls fail (serve stopped), the page says so in a banner and keeps the last values.
TEST_F(StatusPageTest, ShowsDisconnectedWhenServeIsGone) {
  start_serve();
  auto page = get("/");
  ASSERT_TRUE(page);
  ASSERT_EQ(page->status, 200);
  ASSERT_EQ(stop_serve().code, 0);

  one_page_server stand_in{page->body};
  const auto dom = dump_dom("http://127.0.0.1:" + std::to_string(stand_in.port()) + "/", 3000);
  EXPECT_EQ(attribute_of(dom, "<body", "data-state"), "disconnected") << dom;
  EXPECT_GE(std::stoi("0" + attribute_of(dom, "<body", "data-polls")), 1) << dom;
  EXPECT_EQ(attribute_of(dom, "<p id=\"disconnected\"", "hidden"), "(absent)") << dom;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(dom, m, std::regex{R"(id="disconnected-reason">([^<]*)<)"}));
  EXPECT_NE(m[1].str().find("/projections"), std::string::npos) << m[1];
}

}  // namespace
}  // namespace jetsource::test
