// The order-system command line made safe to retry and complete (issue 16, section 2): the real
// binary against a real nats-server: --command-id retries, --json output of order commands,
// quiet logs unless -v, exit codes in every --help.
#include <nlohmann/json.hpp>

#include "order_cli_fixture.hpp"

#include <string>
#include <vector>

namespace {

using jetsource::test::json_of;
using jetsource::test::keys_of;
using jetsource::test::outcome;

class OrderCliRetryTest : public jetsource::test::order_cli_test {};

TEST_F(OrderCliRetryTest, CreateRetriedWithOneCommandIdLandsOnceAndPrintsTheSameId) {
  std::vector<std::string> create{"order",  "create",       "--customer",   "c-1",
                                  "--item", "widget:2:250", "--command-id", "cmd-create-1"};
  auto first = run(create);
  ASSERT_EQ(first.code, 0) << first.err;
  auto after_first = commits();
  auto second = run(create);  // the retry: the same command id, no --order-id
  EXPECT_EQ(second.code, 0) << second.err;
  EXPECT_EQ(second.out, first.out);   // the same generated order id
  EXPECT_EQ(commits(), after_first);  // nothing more landed
  auto id = first.out.substr(0, first.out.find('\n'));
  EXPECT_EQ(load(id).version, 2u);  // created + 1 item, once

  // With --order-id, and with --json: the same version and sequence both times.
  std::vector<std::string> named{"order",        "create",       "--customer", "c-1",
                                 "--order-id",   "o-1",          "--item",     "gadget:1:1000",
                                 "--command-id", "cmd-create-2", "--json"};
  auto a = run(named);
  ASSERT_EQ(a.code, 0) << a.err;
  auto b = run(named);
  EXPECT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(b.out, a.out);
  EXPECT_EQ(commits(), after_first + 1);
}

TEST_F(OrderCliRetryTest, PayRetriedWithOneCommandIdLandsOnceAndPrintsTheSameResult) {
  create_sample();  // o-1, total 1500
  ASSERT_EQ(run({"order", "place", "o-1"}).code, 0);
  std::vector<std::string> pay{"order", "pay",          "o-1",       "--amount-cents",
                               "1500",  "--command-id", "cmd-pay-1", "--json"};
  auto first = run(pay);
  ASSERT_EQ(first.code, 0) << first.err;
  auto after_first = commits();
  auto second = run(pay);  // the order is paid now: without the id this is refused (exit 3)
  EXPECT_EQ(second.code, 0) << second.err;
  EXPECT_EQ(second.out, first.out);
  EXPECT_EQ(second.err, "");
  EXPECT_EQ(commits(), after_first);
  EXPECT_EQ(json_of(second.out)["version"], 5);  // created, 2 items, placed, paid

  // An add-item retry (which the order would accept again) lands once too.
  ASSERT_EQ(run({"order", "create", "--customer", "c-1", "--order-id", "o-2"}).code, 0);
  std::vector<std::string> add{"order",  "add-item",     "o-2",      "--sku",
                               "widget", "--qty",        "1",        "--unit-price-cents",
                               "250",    "--command-id", "cmd-add-1"};
  ASSERT_EQ(run(add).code, 0);
  auto before = commits();
  EXPECT_EQ(run(add).code, 0);
  EXPECT_EQ(commits(), before);
  EXPECT_EQ(load("o-2").version, 2u);

  // Without a command id a second pay is still refused, and a different id is a new command.
  EXPECT_EQ(run({"order", "pay", "o-1", "--amount-cents", "1500"}).code, 3);
  EXPECT_EQ(
      run({"order", "pay", "o-1", "--amount-cents", "1500", "--command-id", "cmd-pay-2"}).code, 3);
  // A command id must be a token (it is stored as the commit's Nats-Msg-Id).
  EXPECT_EQ(run_offline({"order", "place", "o-1", "--command-id", "a b"}).code, 2);
}

TEST_F(OrderCliRetryTest, JsonPrintsWhereTheCommandLandedAndTextStaysAsItWas) {
  auto created = run({"order", "create", "--customer", "c-1", "--order-id", "o-1", "--item",
                      "widget:2:250", "--json"});
  ASSERT_EQ(created.code, 0) << created.err;
  auto j = json_of(created.out);
  EXPECT_EQ(keys_of(j), (std::vector<std::string>{"order_id", "sequence", "version"}));
  EXPECT_EQ(created.out.find("{\"order_id\":\"o-1\",\"version\":2,\"sequence\":"), 0u)
      << created.out;  // in that order
  EXPECT_EQ(j["version"], 2);
  EXPECT_EQ(j["sequence"], commits());

  auto placed = run({"order", "place", "o-1", "--json"});
  ASSERT_EQ(placed.code, 0) << placed.err;
  auto p = json_of(placed.out);
  EXPECT_EQ(p["order_id"], "o-1");
  EXPECT_EQ(p["version"], 3);
  EXPECT_GT(p["sequence"].get<std::uint64_t>(), j["sequence"].get<std::uint64_t>());

  // Without --json: as before (create prints the id, the others nothing).
  auto text =
      run({"order", "create", "--customer", "c-1", "--order-id", "o-2", "--item", "widget:1:250"});
  EXPECT_EQ(text.out, "o-2\n");
  auto quiet = run({"order", "place", "o-2"});
  EXPECT_EQ(quiet.code, 0);
  EXPECT_EQ(quiet.out, "");
  // A generated id with --json.
  auto generated = run({"order", "create", "--customer", "c-1", "--json"});
  ASSERT_EQ(generated.code, 0) << generated.err;
  EXPECT_EQ(json_of(generated.out)["order_id"].get<std::string>().rfind("ord-", 0), 0u);
}

TEST_F(OrderCliRetryTest, ReadYourWritesWithTheSequence) {
  pid_t serve = spawn({"serve"}, server_->url());
  create_sample();
  auto placed = run({"order", "place", "o-1", "--json"});
  ASSERT_EQ(placed.code, 0) << placed.err;
  auto written = json_of(placed.out);
  auto seq = written["sequence"].get<std::uint64_t>();
  // Once order_summary has applied up to the command's sequence, the query sees the write.
  query_until({"projections", "status", "--json"}, [&](const nlohmann::json& list) {
    for (const auto& p : list)
      if (p["name"] == "order_summary") return p["last_applied_seq"].get<std::uint64_t>() >= seq;
    return false;
  });
  auto order = run({"query", "order", "o-1", "--json"});
  ASSERT_EQ(order.code, 0) << order.err;
  auto o = json_of(order.out);
  EXPECT_EQ(o["status"], "placed");
  EXPECT_EQ(o["version"], written["version"]);
  stop(serve);
}

TEST_F(OrderCliRetryTest, LibraryInfoLinesOnlyWithVerbose) {
  auto quiet = run({"order", "create", "--customer", "c-1", "--order-id", "o-1"});
  ASSERT_EQ(quiet.code, 0) << quiet.err;
  EXPECT_EQ(quiet.err, "");
  auto verbose = run(
      {"-v", "order", "create", "--customer", "c-1", "--order-id", "o-2", "--item", "widget:1:1"});
  ASSERT_EQ(verbose.code, 0) << verbose.err;
  EXPECT_NE(verbose.err.find("[info]"), std::string::npos) << verbose.err;
  EXPECT_EQ(verbose.out, "o-2\n");
  // --verbose after the subcommand works too (a global option).
  auto late = run({"order", "place", "o-2", "--verbose"});
  EXPECT_EQ(late.code, 0) << late.err;
  EXPECT_NE(late.err.find("[info]"), std::string::npos) << late.err;
  // Warnings stay visible by default: a rejection still says why on stderr.
  auto rejected = run({"order", "place", "o-2"});
  EXPECT_EQ(rejected.code, 3);
  EXPECT_NE(rejected.err.find("order-system: order o-2:"), std::string::npos) << rejected.err;
}

TEST_F(OrderCliRetryTest, HelpNamesTheExitCodes) {
  auto has = [](const outcome& r, const std::string& text) {
    return r.out.find(text) != std::string::npos;
  };
  for (const char* cmd : {"create", "add-item", "remove-item", "place", "pay", "ship", "cancel"}) {
    auto r = run_offline({"order", cmd, "--help"});
    EXPECT_EQ(r.code, 0) << cmd;
    for (const char* line : {"Exit codes:", "0  ok", "1  infrastructure", "2  bad usage",
                             "3  rejected", "4  not found"})
      EXPECT_TRUE(has(r, line)) << cmd << " --help lacks '" << line << "':\n" << r.out;
    EXPECT_TRUE(has(r, "--command-id")) << cmd;
    EXPECT_TRUE(has(r, "duplicate window (120 s)")) << cmd << ":\n" << r.out;
    EXPECT_TRUE(has(r, "--json")) << cmd;
  }
  auto query = run_offline({"query", "order", "--help"});
  EXPECT_TRUE(has(query, "Exit codes:")) << query.out;
  EXPECT_TRUE(has(query, "4  not found")) << query.out;
  EXPECT_FALSE(has(query, "3  rejected")) << query.out;
  for (std::vector<std::string> args : {std::vector<std::string>{"serve", "--help"},
                                        {"projections", "status", "--help"},
                                        {"projections", "rebuild", "--help"},
                                        {"load", "--help"},
                                        {"demo", "--help"},
                                        {"--help"}}) {
    auto r = run_offline(args);
    EXPECT_EQ(r.code, 0) << args[0];
    EXPECT_TRUE(has(r, "Exit codes:")) << args[0] << ":\n" << r.out;
    EXPECT_TRUE(has(r, "2  bad usage")) << args[0];
  }
  EXPECT_TRUE(has(run_offline({"--help"}), "-v,--verbose"));
}

}  // namespace
