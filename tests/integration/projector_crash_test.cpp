// kill -9 a projector process at random moments while events are appended; after the last
// restart the read model must equal the one an uninterrupted projector builds.
#include "projector_fixture.hpp"

#include <spawn.h>
#include <sys/wait.h>
#include <atomic>
#include <csignal>
#include <random>
#include <thread>

namespace jetsource::test {
namespace {

using namespace std::chrono_literals;

pid_t spawn_projector(const std::string& url, const std::filesystem::path& db) {
  return spawn_test_projector({"--nats-url", url, "--db", db.string(), "--ack-wait-ms", "1000"});
}

int wait_exit(pid_t pid) {
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  return status;
}

std::vector<sqlite::row> applied_versions(const std::filesystem::path& file) {
  auto db = sqlite::database::open(file.string());
  EXPECT_TRUE(db);
  auto rows =
      db->query("SELECT aggregate_type, aggregate_id, version FROM applied_versions ORDER BY 1, 2");
  EXPECT_TRUE(rows);
  return rows ? *rows : std::vector<sqlite::row>{};
}

TEST_F(projector_test, KilledTwentyTimesWhileAppendingConvergesToAnUninterruptedRun) {
  constexpr int accounts = 40;
  for (int a = 0; a < accounts; ++a) run("acc-" + std::to_string(a), bank::open_account{"o", a});
  std::atomic<bool> writing{true};
  std::atomic<std::uint64_t> last{0};
  std::thread writer([&] {
    for (int i = 0; writing; ++i) {
      auto seq = run("acc-" + std::to_string(i % accounts),
                     i % 7 == 6 ? bank::deposit{i, ""} : bank::deposit{1, "x"});
      last = seq;
      if (i % 8 == 0) std::this_thread::sleep_for(1ms);  // a steady, not flat-out, rate
    }
  });

  auto db = dir_.path() / "crash.db";
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> lifetime(30, 700);
  constexpr int kills = 22;
  for (int k = 0; k < kills; ++k) {
    pid_t pid = spawn_projector(server_->url(), db);
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(lifetime(rng)));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = wait_exit(pid);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "projector " << k << " ended on its own: status " << status;
  }
  writing = false;
  writer.join();

  // The last restart runs to the end of the stream, then stops cleanly.
  pid_t pid = spawn_projector(server_->url(), db);
  auto applied = wait_applied(db, "balances", last, 60s);
  ::kill(pid, SIGTERM);
  int status = wait_exit(pid);
  ASSERT_TRUE(applied) << applied.error();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "exit status " << status << " (3: an event was applied out of order)";

  // The reference: one uninterrupted run over the same stream.
  auto o = options("reference.db");
  o.consumer = "reference";
  auto reference = start(o);
  ASSERT_TRUE(reference.wait_for(last, 60s));
  auto expected = balances(dir_.path() / "reference.db");
  ASSERT_EQ(expected.size(), static_cast<std::size_t>(accounts));
  EXPECT_EQ(balances(db), expected);
  auto got_versions = applied_versions(db),
       want_versions = applied_versions(dir_.path() / "reference.db");
  ASSERT_EQ(got_versions.size(), want_versions.size());
  for (std::size_t i = 0; i < got_versions.size(); ++i)
    EXPECT_EQ(got_versions[i].values(), want_versions[i].values()) << i;
  std::int64_t deposits = 0;
  for (const auto& row : expected) deposits += std::get<4>(row);
  EXPECT_GT(deposits, 100) << "too few events appended during the kills to mean anything";
}

}  // namespace
}  // namespace jetsource::test
