// Test support for the least-privilege tests (issue 15 §2): nats-server started with the roles
// configuration of docs/security.md (the text itself, passwords filled in), connections as each
// role, and the permission violations the server logged.
#pragma once

#include <jetsource/event_store.hpp>
#include <jetsource/projector.hpp>
#include <jetsource/repository.hpp>

#include <order_system/order.hpp>
#include <order_system/stream.hpp>

#include "configured_server.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>

namespace jetsource::test {

/// The fenced block after the "roles.conf" marker of docs/security.md, each `$<ROLE>_PASSWORD`
/// filled in as "pw-<ROLE>".
inline std::string roles_config() {
  std::ifstream in(std::string(JETSOURCE_SOURCE_DIR) + "/docs/security.md");
  std::stringstream s;
  s << in.rdbuf();
  const std::string doc = s.str();
  auto marker = doc.find("<!-- roles.conf");
  auto fence = doc.find("```\n", marker);
  auto end = doc.find("\n```", fence + 4);
  EXPECT_NE(marker, std::string::npos) << "no roles.conf block in docs/security.md";
  if (marker == std::string::npos || fence == std::string::npos || end == std::string::npos)
    return {};
  std::string text = doc.substr(fence + 4, end - fence - 4);
  text = std::regex_replace(text, std::regex(R"(\$([A-Z_]+)_PASSWORD)"), "\"pw-$1\"");
  if (const char* loosen = std::getenv("JETSOURCE_TEST_LOOSEN_ROLE"); loosen && *loosen) {
    // To show the refusals are the configuration's doing: the named role may publish anything.
    auto at = text.find(std::string(loosen) + " = {\n    publish: [");
    if (at != std::string::npos) text.insert(text.find('[', at) + 1, "\">\", ");
  }
  return text;
}

/// `config` with the publish permission `permission` (as quoted in it) taken from `role`'s
/// block: the documented role minus one right. A test failure when the role lacks it.
inline std::string without(std::string config, const std::string& role,
                           const std::string& permission) {
  const auto begin = config.find("  " + role + " = {");
  const auto end = config.find("\n  }", begin);
  const std::string quoted = "\"" + permission + "\"";
  auto at = config.find(quoted, begin);
  EXPECT_TRUE(begin != std::string::npos && at != std::string::npos && at < end)
      << role << " has no " << permission;
  if (begin == std::string::npos || at == std::string::npos || at > end) return config;
  auto stop = at + quoted.size();
  if (config.compare(stop, 1, ",") == 0) {  // and the separator after it
    ++stop;
    while (stop < config.size() && (config[stop] == ' ' || config[stop] == '\n')) ++stop;
  } else {  // the last one: the separator before it
    while (at > 0 && (config[at - 1] == ' ' || config[at - 1] == '\n')) --at;
    if (at > 0 && config[at - 1] == ',') --at;
  }
  config.erase(at, stop - at);
  return config;
}

/// The writer opens its store without ordered consumers (it may not delete consumers).
inline store_options writer_store() {
  auto o = order_system::orders_stream();
  o.load_with_consumers = false;
  return o;
}

class PermissionsTest : public ::testing::Test {
 protected:
  void SetUp() override { start(roles_config()); }

  /// (Re)starts the server with `config` and creates the streams as the deployer.
  void start(const std::string& config) {
    server_.reset();
    server_.emplace(config);
    ASSERT_TRUE(server_->server);
    auto deployer = connect_as("deployer");
    ASSERT_TRUE(deployer);
    auto created = event_store::open(*deployer, order_system::orders_stream());
    ASSERT_TRUE(created) << created.error();
  }

  std::optional<connection> connect_as(
      const std::string& role,
      std::chrono::milliseconds request_timeout = std::chrono::seconds(5)) {
    std::string password = "pw-";  // as roles_config() fills them in: pw-WRITER, ...
    for (char ch : role) password += static_cast<char>(std::toupper(ch));
    auto c = connection::connect({.urls = {server_->url()},
                                  .name = role,
                                  .user = role,
                                  .password = password,
                                  .request_timeout = request_timeout});
    EXPECT_TRUE(c) << role << ": " << c.error();
    if (!c) return std::nullopt;
    return std::move(c).value();
  }
  /// Permission violations the server logged so far.
  int violations() const {
    const std::string log = server_->log();
    int n = 0;
    for (auto at = log.find("Violation"); at != std::string::npos;
         at = log.find("Violation", at + 1))
      ++n;
    return n;
  }
  /// The writer's work: orders with 6 commits each (loads of 3+ commits before the head), then
  /// loads of them. Returns the last commit's sequence.
  std::uint64_t write_orders(event_store& store, int first, int count,
                             const std::string& customer = "c-1") {
    // No cache: every command loads (the 5th reads 4 commits before the head).
    repository<order_system::order> repo{store, {.cache_capacity = 0}};
    std::uint64_t last = 0;
    for (int i = first; i < first + count; ++i) {
      const std::string id = "o-" + std::to_string(i);
      auto r = repo.execute(id, order_system::create_order{.customer_id = customer});
      EXPECT_TRUE(r) << r.error();
      for (int k = 0; k < 4; ++k)
        EXPECT_TRUE(repo.execute(id, order_system::add_item{"sku-" + std::to_string(k), 1, 100}));
      auto placed = repo.execute(id, order_system::place_order{});
      EXPECT_TRUE(placed) << placed.error();
      if (placed) last = placed->sequence;
      auto l = repo.load(id);  // 6 commits: direct gets only
      EXPECT_TRUE(l) << l.error();
      if (l) {
        EXPECT_EQ(l->state.status(), order_system::order_status::placed);
      }
    }
    return last;
  }
  projector_options projector_at(const std::string& file) {
    return {.stream = "ORDERS", .database = server_->dir.path() / file};
  }

  std::optional<configured_server> server_;
};

}  // namespace jetsource::test
