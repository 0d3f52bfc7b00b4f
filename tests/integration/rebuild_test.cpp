// Rebuild by replay against a real server and real files: identical content, no downtime for
// readers while appends continue and the live projector adopts the rebuilt file, kill -9 in the
// middle, automatic rebuild on a version bump, and refusals.
#include <jetsource/rebuild.hpp>

#include "projector_fixture.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <future>
#include <thread>

namespace jetsource::test {
namespace {

using namespace std::chrono_literals;

class rebuild_test : public projector_test {
 protected:
  std::uint64_t seed(int accounts, int deposits) {
    std::uint64_t last = 0;
    for (int a = 0; a < accounts; ++a)
      last = run("acc-" + std::to_string(a), bank::open_account{"o" + std::to_string(a), a});
    for (int d = 0; d < deposits; ++d)
      last = run("acc-" + std::to_string(d % accounts), bank::deposit{d + 1, ""});
    return last;
  }
  // Every table of the read model, ordered, as text (what "identical content" means).
  static std::vector<std::string> content(const std::filesystem::path& database) {
    auto db = open_read_model(database);
    EXPECT_TRUE(db) << db.error();
    std::vector<std::string> out;
    if (!db) return out;
    for (const char* sql : {"SELECT * FROM balances ORDER BY account_id",
                            "SELECT aggregate_type, aggregate_id, version, sequence FROM "
                            "applied_versions ORDER BY 1, 2",
                            "SELECT count(*) FROM dead_letters"}) {
      auto rows = db->query(sql);
      EXPECT_TRUE(rows) << rows.error();
      for (const auto& r : *rows) {
        std::string line;
        for (std::size_t i = 0; i < r.size(); ++i) line += sqlite::detail::to_text(r[i]) + "|";
        out.push_back(line);
      }
    }
    return out;
  }
};

TEST_F(rebuild_test, ARebuiltModelIsIdenticalToTheLiveOne) {
  auto last = seed(30, 300);
  auto live_db = dir_.path() / "balances.db";
  {
    auto p = start(options("balances.db"));
    ASSERT_TRUE(p.wait_for(last, 20s));
  }
  auto before = content(live_db);
  std::vector<rebuild_progress> seen;
  auto r = rebuild(*conn_, balances_projection(), options("balances.db"),
                   {.progress = [&](const rebuild_progress& pr) { seen.push_back(pr); }});
  ASSERT_TRUE(r) << r.error();
  EXPECT_FALSE(r->adopted_by_live);  // nobody ran: the rebuild switched by itself
  EXPECT_EQ(r->sequence, last);
  EXPECT_EQ(r->events, 30u + 29u + 300u);  // opens (29 with a deposit), deposits
  EXPECT_EQ(current_file(live_db), r->file);
  EXPECT_NE(r->file, live_db);
  EXPECT_FALSE(std::filesystem::exists(live_db)) << "the old file is removed";
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().done, last);
  EXPECT_EQ(seen.back().total, last);
  EXPECT_EQ(content(live_db), before);
  // And it runs live on from there.
  auto p = start(options("balances.db"));
  auto more = run("acc-1", bank::deposit{1000, ""});
  ASSERT_TRUE(p.wait_for(more, 10s));
  int expected = 1 + 1000;  // acc-1: opened with 1, then deposits d + 1 for d % 30 == 1
  for (int d = 1; d < 300; d += 30) expected += d + 1;
  EXPECT_EQ(std::get<2>(balances(r->file)[1]), expected);
}

TEST_F(rebuild_test, LiveProjectorAdoptsTheRebuildWhileAppendsAndReadsGoOn) {
  auto seeded = seed(20, 100);
  auto live_db = dir_.path() / "balances.db";
  auto o = options("balances.db");
  std::optional<projector> live(start(o));
  ASSERT_TRUE(live->wait_for(seeded, 20s));  // readers start on a complete model
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> last{0};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      last = run("acc-" + std::to_string(i % 20), bank::deposit{1, ""});
      std::this_thread::sleep_for(2ms);
    }
  });
  std::atomic<int> reads{0}, read_errors{0}, went_back{0};
  std::string first_error;
  std::thread reader([&] {
    std::int64_t seen = 0;
    while (!stop) {
      auto db = open_read_model(live_db);
      if (!db) {
        if (read_errors++ == 0) first_error = to_string(db.error());
        continue;
      }
      auto row = db->query_one("SELECT coalesce(sum(deposits), 0), count(*) FROM balances");
      if (!row || !*row || (*row)->get<int>(1) != 20) {
        // an error, or an empty / partial model
        if (read_errors++ == 0)
          first_error = !row ? to_string(row.error())
                             : fmt::format("{} rows", *row ? (**row).get<int>(1) : -1);
        continue;
      }
      auto deposits = (*row)->get<std::int64_t>(0);
      if (deposits < seen) ++went_back;
      seen = std::max(seen, deposits);
      ++reads;
    }
  });
  // The serve loop: adopts a finished rebuild.
  std::atomic<bool> adopted{false};
  std::thread serve([&] {
    while (!stop) {
      auto r = live->adopt_rebuild();
      EXPECT_TRUE(r) << r.error();
      if (r && *r) adopted = true;
      std::this_thread::sleep_for(50ms);
    }
  });
  std::this_thread::sleep_for(300ms);
  auto r = rebuild(*conn_, balances_projection(), o);
  ASSERT_TRUE(r) << r.error();
  EXPECT_TRUE(r->adopted_by_live);
  std::this_thread::sleep_for(300ms);
  stop = true;
  writer.join();
  reader.join();
  serve.join();
  EXPECT_TRUE(adopted);
  ASSERT_TRUE(live->wait_for(last, 20s));
  EXPECT_EQ(read_errors.load(), 0) << "first: " << first_error;
  EXPECT_EQ(went_back.load(), 0) << "a reader saw an older model after a newer one";
  EXPECT_GT(reads.load(), 10);
  EXPECT_EQ(current_file(live_db), r->file);
  // Every appended event exactly once: the same as an uninterrupted projector's model.
  auto ro = options("reference.db");
  ro.consumer = "reference";
  auto reference = start(ro);
  ASSERT_TRUE(reference.wait_for(last, 20s));
  EXPECT_EQ(balances(r->file), balances(dir_.path() / "reference.db"));
  ASSERT_TRUE(live->stop());
}

pid_t spawn_rebuild(const std::string& url, const std::filesystem::path& db) {
  // Slow handlers (300 us per deposit): the kill lands mid-way.
  return spawn_test_projector(
      {"--nats-url", url, "--db", db.string(), "--rebuild", "--apply-delay-us", "300"});
}

TEST_F(rebuild_test, KilledMidwayLeavesTheLiveModelAloneAndResumes) {
  auto last = seed(50, 3000);
  auto live_db = dir_.path() / "balances.db";
  {
    auto p = start(options("balances.db"));
    ASSERT_TRUE(p.wait_for(last, 30s));
  }
  auto before = balances(live_db);
  pid_t pid = spawn_rebuild(server_->url(), live_db);
  // Kill it once it has started writing its file.
  for (int i = 0; i < 200 && !pending_rebuild(live_db, "balances"); ++i)
    std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(100ms);
  ::kill(pid, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the rebuild ended before it was killed: " << status;
  EXPECT_EQ(current_file(live_db), live_db) << "the live model was switched";
  EXPECT_EQ(balances(live_db), before);
  auto pending = pending_rebuild(live_db, "balances");
  ASSERT_TRUE(pending);
  EXPECT_FALSE(pending->ready);

  auto r = rebuild(*conn_, balances_projection(), options("balances.db"));
  ASSERT_TRUE(r) << r.error();
  EXPECT_TRUE(r->resumed);
  EXPECT_EQ(r->file, pending->file);
  EXPECT_EQ(balances(r->file), before);
  EXPECT_FALSE(pending_rebuild(live_db, "balances"));
}

// The rebuild's consumer is kept in the server's memory (its position is the file's mark, and
// the server then writes no consumer state while it replays): a server that crashes mid-replay
// loses it, and the rebuild makes it again from its file and finishes with the same model.
TEST_F(rebuild_test, ItsConsumerIsInMemoryAndAServerCrashMidReplayLosesNothing) {
  auto last = seed(50, 3000);
  auto live_db = dir_.path() / "balances.db";
  {
    auto p = start(options("balances.db"));
    ASSERT_TRUE(p.wait_for(last, 30s));
  }
  const auto before = balances(live_db);
  const auto rebuilder = live_consumer() + "-rebuild";
  EXPECT_FALSE(consumer(live_consumer()).in_memory) << "a live projection's consumer is on disk";
  // ~1.5 s of replay in commits of 100, at most 400 messages fetched ahead: the crash lands
  // mid-way, and the rest must come through a new consumer.
  hooks().delay_us = 500;
  auto rebuilding = std::async(std::launch::async, [&] {
    return rebuild(*conn_, balances_projection(), options("balances.db"),
                   {.batch = 100, .max_group = 100, .max_buffered = 400});
  });
  bool midway = false;
  for (int i = 0; i < 500 && !midway; ++i) {
    std::this_thread::sleep_for(10ms);
    auto pending = pending_rebuild(live_db, "balances");
    midway = pending && pending->applied_sequence > 0 && consumer(rebuilder, false).exists;
  }
  ASSERT_TRUE(midway) << "the replay did not start";
  auto during = consumer(rebuilder);
  EXPECT_TRUE(during.in_memory) << "the rebuild's consumer is on disk";
  EXPECT_TRUE(during.ack_none) << "the rebuild's consumer is acknowledged";
  crash_and_restart_server();
  const auto crashed_at = pending_rebuild(live_db, "balances");
  ASSERT_TRUE(crashed_at);
  EXPECT_LT(crashed_at->applied_sequence, last / 2) << "the crash came late in the replay";
  hooks().delay_us = 0;
  auto r = rebuilding.get();
  ASSERT_TRUE(r) << r.error();
  EXPECT_FALSE(r->resumed);
  EXPECT_EQ(r->sequence, last);
  EXPECT_EQ(balances(r->file), before);
  EXPECT_EQ(current_file(live_db), r->file);
}

TEST_F(rebuild_test, AVersionBumpRebuildsOnStart) {
  auto last = seed(10, 50);
  auto live_db = dir_.path() / "balances.db";
  {
    auto p = start(options("balances.db"));
    ASSERT_TRUE(p.wait_for(last, 20s));
  }
  auto before = balances(live_db);
  auto p = start_or_rebuild(*conn_, balances_projection(2), options("balances.db"));
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(*built_version(live_db, "balances"), 2);
  EXPECT_NE(current_file(live_db), live_db);
  EXPECT_EQ(balances(live_db == current_file(live_db) ? live_db : current_file(live_db)), before);
  // A plain start of the old version is now refused.
  ASSERT_TRUE(p->stop());
}

TEST_F(rebuild_test, TwoRebuildsAtOnceAreRefused) {
  seed(2, 2);
  auto live_db = dir_.path() / "balances.db";
  int fd = ::open((live_db.string() + ".rebuild.lock").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);  // "another rebuild" holds it
  auto r = rebuild(*conn_, balances_projection(), options("balances.db"));
  ::close(fd);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::busy)) << r.error();
  EXPECT_NE(r.error().message.find("already running"), std::string::npos) << r.error();
}

TEST_F(rebuild_test, APoisonEventFailsTheRebuildAndLeavesTheLiveModel) {
  auto last = seed(3, 6);
  auto live_db = dir_.path() / "balances.db";
  {
    auto p = start(options("balances.db"));
    ASSERT_TRUE(p.wait_for(last, 20s));
  }
  hooks().poison = false;  // the live projection once accepted this event...
  last = run("acc-1", bank::deposit{5, "poison"});
  {
    auto p = start(options("balances.db"));
    ASSERT_TRUE(p.wait_for(last, 20s));
  }
  auto before = balances(live_db);
  hooks().poison = true;  // ...the rebuilt handler does not
  auto r = rebuild(*conn_, balances_projection(), options("balances.db"));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::rejected)) << r.error();
  EXPECT_NE(r.error().message.find("the note says poison"), std::string::npos) << r.error();
  EXPECT_EQ(current_file(live_db), live_db);
  EXPECT_EQ(balances(live_db), before);
  EXPECT_FALSE(pending_rebuild(live_db, "balances")) << "the leftover file is cleaned up";
}

}  // namespace
}  // namespace jetsource::test
