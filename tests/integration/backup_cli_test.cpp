// `order-system backup PATH` / `order-system restore PATH`: the real binary against real
// servers: a backup restored into a second server gives the same query answers once the read
// models are rebuilt there; --json shapes; a damaged file, a missing file, an existing path and a
// non-empty target each get their exit code and a clear message, and write nothing.
#include "nats/handles.hpp"
#include "order_cli_fixture.hpp"
#include "second_server.hpp"

namespace jetsource::test {
namespace {

class BackupCliTest : public order_cli_test {
 protected:
  std::string path(const std::string& name) const { return (dir_.path() / name).string(); }
  outcome run_on(const second_server& s, const std::vector<std::string>& args) {
    return wait(spawn(args, s.server->url()));
  }
};

TEST_F(BackupCliTest, ABackupRestoredElsewhereAnswersTheSameQueries) {
  create_sample();  // o-1: created with 2 items
  ASSERT_EQ(run({"order", "place", "o-1"}).code, 0);
  ASSERT_EQ(run({"order", "pay", "o-1", "--amount-cents", "1500"}).code, 0);
  ASSERT_EQ(
      run({"order", "create", "--customer", "c-2", "--order-id", "o-2", "--item", "widget:1:250"})
          .code,
      0);
  const auto last = commits();

  auto b = run({"backup", path("full.jsbk"), "--json"});
  ASSERT_EQ(b.code, 0) << b.err;
  auto bj = json_of(b.out);
  EXPECT_EQ(keys_of(bj),
            (std::vector<std::string>{"bytes", "commits", "from_sequence", "last_sequence", "path",
                                      "seconds", "sha256", "stream"}));
  EXPECT_EQ(bj["stream"], "ORDERS");
  EXPECT_EQ(bj["commits"], last);
  EXPECT_EQ(bj["last_sequence"], last);
  EXPECT_EQ(b.err.find('\r'), std::string::npos) << "no progress bar when stderr is a file";

  second_server target;
  ASSERT_TRUE(target.conn);
  auto r = run_on(target, {"restore", path("full.jsbk")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.out.starts_with(
      fmt::format("restore: {} commits into ORDERS (sequences 1..{}) in ", last, last)))
      << r.out;

  // The read models, rebuilt from each stream, answer the same.
  ASSERT_EQ(run({"projections", "rebuild", "order_summary"}).code, 0);
  ASSERT_EQ(run({"projections", "rebuild", "customer_stats"}).code, 0);
  auto original_order = run({"query", "order", "o-1", "--json"});
  auto original_customer = run({"query", "customer", "c-2", "--json"});
  use_data_dir(dir_.path() / "restored-cli");
  ASSERT_EQ(run_on(target, {"projections", "rebuild", "order_summary"}).code, 0);
  ASSERT_EQ(run_on(target, {"projections", "rebuild", "customer_stats"}).code, 0);
  auto restored_order = run_on(target, {"query", "order", "o-1", "--json"});
  auto restored_customer = run_on(target, {"query", "customer", "c-2", "--json"});
  ASSERT_EQ(original_order.code, 0) << original_order.err;
  EXPECT_EQ(json_of(restored_order.out), json_of(original_order.out));
  EXPECT_EQ(json_of(original_order.out)["status"], "paid");
  EXPECT_EQ(json_of(restored_customer.out), json_of(original_customer.out));

  // Incremental: one more command, backed up from last + 1, applied on the restored stream.
  ASSERT_EQ(run({"order", "place", "o-2"}).code, 0);
  auto i = run({"backup", path("inc.jsbk"), "--from-sequence", std::to_string(last + 1), "--json"});
  ASSERT_EQ(i.code, 0) << i.err;
  EXPECT_EQ(json_of(i.out)["commits"], 1);
  auto ri = run_on(target, {"restore", path("inc.jsbk"), "--json"});
  ASSERT_EQ(ri.code, 0) << ri.err;
  auto rj = json_of(ri.out);
  EXPECT_EQ(keys_of(rj), (std::vector<std::string>{"commits", "first_sequence", "last_sequence",
                                                   "renumbered", "seconds", "stream"}));
  EXPECT_EQ(rj["first_sequence"], last + 1);
  EXPECT_EQ(rj["renumbered"], false);
  // Applying it again on top of itself publishes nothing (a finished restore, repeated).
  auto again = run_on(target, {"restore", path("inc.jsbk"), "--json"});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(json_of(again.out)["commits"], 0);
}

TEST_F(BackupCliTest, BadFilesAndTargetsGetTheirExitCodesAndWriteNothing) {
  create_sample();
  ASSERT_EQ(run({"backup", path("full.jsbk")}).code, 0);

  // The path exists: 2, the file kept.
  auto exists = run({"backup", path("full.jsbk")});
  EXPECT_EQ(exists.code, 2) << exists.err;
  EXPECT_NE(exists.err.find("exists"), std::string::npos) << exists.err;

  // A damaged file: 2, nothing written on the target.
  std::string bytes = slurp(path("full.jsbk"));
  bytes[bytes.size() / 2] ^= 0x01;
  std::ofstream(path("damaged.jsbk"), std::ios::binary) << bytes;
  second_server target;
  ASSERT_TRUE(target.conn);
  auto damaged = run_on(target, {"restore", path("damaged.jsbk")});
  EXPECT_EQ(damaged.code, 2) << damaged.err;
  EXPECT_NE(damaged.err.find("damaged (refused, nothing written)"), std::string::npos)
      << damaged.err;
  EXPECT_TRUE(damaged.out.empty());
  jsStreamInfo* si = nullptr;
  EXPECT_EQ(
      js_GetStreamInfo(&si, detail::state_of(*target.conn)->js.get(), "ORDERS", nullptr, nullptr),
      NATS_NOT_FOUND)
      << "the target stream was created";
  jsStreamInfo_Destroy(si);

  // No such file: 4.
  auto missing = run_on(target, {"restore", path("missing.jsbk")});
  EXPECT_EQ(missing.code, 4) << missing.err;

  // A target with other messages: 2, unchanged.
  auto create_there = run_on(target, {"order", "create", "--customer", "c-9", "--order-id", "x-1"});
  ASSERT_EQ(create_there.code, 0) << create_there.err;
  auto full = run_on(target, {"restore", path("full.jsbk")});
  EXPECT_EQ(full.code, 2) << full.err;
  EXPECT_NE(full.err.find("already has 1 messages"), std::string::npos) << full.err;

  // A new name on the server holding the original: both would take orders.>: 2, nothing made.
  auto copy = run({"restore", path("full.jsbk"), "--stream", "COPY"});
  EXPECT_EQ(copy.code, 2) << copy.err;
  EXPECT_NE(copy.err.find("already takes the subjects orders.>"), std::string::npos) << copy.err;

  // --help names the exit codes.
  auto help = run({"restore", "--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("Exit codes:"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("damaged"), std::string::npos) << help.out;
  EXPECT_EQ(run({"backup"}).code, 2);  // PATH is required
}

}  // namespace
}  // namespace jetsource::test
