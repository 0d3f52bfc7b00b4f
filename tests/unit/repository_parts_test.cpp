// The repository's parts that need no server: the aggregate cache (checkout, later copy wins,
// LRU bound) and the keyed executor (one job at a time per key, in order; flush; the worker).
#include <jetsource/detail/aggregate_cache.hpp>
#include <jetsource/detail/keyed_executor.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using jetsource::detail::aggregate_cache;
using jetsource::detail::keyed_executor;
using jetsource::detail::queued_job;

struct copy {
  int state = 0;
  std::uint64_t sequence = 0;
};

TEST(AggregateCacheTest, TakeChecksOutAndPutReturns) {
  aggregate_cache<copy> c(10);
  EXPECT_FALSE(c.take("a"));
  c.put("a", {1, 5});
  auto got = c.take("a");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->state, 1);
  EXPECT_FALSE(c.take("a"));  // checked out: a second command must load its own
  c.put("a", std::move(*got));
  EXPECT_TRUE(c.take("a"));
}

TEST(AggregateCacheTest, AnOlderCopyDoesNotReplaceALaterOne) {
  aggregate_cache<copy> c(10);
  c.put("a", {2, 9});
  c.put("a", {1, 4});
  auto got = c.take("a");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->sequence, 9u);
  c.put("a", {3, 12});
  EXPECT_EQ(c.take("a")->sequence, 12u);
}

TEST(AggregateCacheTest, DropsTheLeastRecentlyUsedWhenFull) {
  aggregate_cache<copy> c(2);
  c.put("a", {1, 1});
  c.put("b", {2, 1});
  c.put("a", {1, 2});  // a is now the most recent
  c.put("c", {3, 1});  // b goes
  EXPECT_EQ(c.size(), 2u);
  EXPECT_FALSE(c.take("b"));
  EXPECT_TRUE(c.take("a"));
  EXPECT_TRUE(c.take("c"));
}

TEST(AggregateCacheTest, CapacityZeroKeepsNothingAndEraseForgets) {
  aggregate_cache<copy> none(0);
  none.put("a", {1, 1});
  EXPECT_FALSE(none.take("a"));
  aggregate_cache<copy> c(4);
  c.put("a", {1, 1});
  c.erase("a");
  c.erase("missing");
  EXPECT_FALSE(c.take("a"));
  EXPECT_EQ(c.size(), 0u);
}

struct numbered : queued_job {
  explicit numbered(int n) : n(n) {}
  int n;
};

TEST(KeyedExecutorTest, RunsOneJobPerKeyAtATimeInOrder) {
  std::mutex m;
  std::vector<int> started;
  keyed_executor* self = nullptr;
  keyed_executor ex([&](std::shared_ptr<queued_job> j) {
    {
      std::lock_guard lock(m);
      started.push_back(static_cast<numbered&>(*j).n);
    }
    self->finished("k");  // each queued job finishes at once, on the worker
  });
  self = &ex;
  EXPECT_TRUE(ex.admit("k", std::make_shared<numbered>(0)));   // idle: the caller runs it
  EXPECT_FALSE(ex.admit("k", std::make_shared<numbered>(1)));  // queued behind it
  EXPECT_FALSE(ex.admit("k", std::make_shared<numbered>(2)));
  EXPECT_TRUE(ex.admit("other", std::make_shared<numbered>(9)));  // another key is idle
  {
    std::lock_guard lock(m);
    EXPECT_TRUE(started.empty());  // nothing queued starts before job 0 is done
  }
  EXPECT_FALSE(ex.flush(std::chrono::milliseconds(50)));  // four jobs outstanding
  ex.finished("other");
  ex.finished("k");  // job 0: starts 1, which starts 2
  ASSERT_TRUE(ex.flush(std::chrono::seconds(10)));
  std::lock_guard lock(m);
  EXPECT_EQ(started, (std::vector<int>{1, 2}));
}

TEST(KeyedExecutorTest, FlushTimesOutWhileAJobRunsAndSaysHowMany) {
  keyed_executor ex([](std::shared_ptr<queued_job>) {});
  ASSERT_TRUE(ex.admit("k", std::make_shared<numbered>(0)));
  auto r = ex.flush(std::chrono::milliseconds(20));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(jetsource::errc::timeout));
  EXPECT_NE(r.error().message.find("1 async commands still running"), std::string::npos);
  ex.finished("k");
  EXPECT_TRUE(ex.flush(std::chrono::milliseconds(0)));
}

TEST(KeyedExecutorTest, PostedTasksRunInOrderOnOneOtherThread) {
  keyed_executor ex([](std::shared_ptr<queued_job>) {});
  std::vector<int> seen;
  std::thread::id worker;
  std::promise<void> done;
  for (int i = 0; i < 5; ++i)
    ex.post([&, i] {
      if (i == 0) worker = std::this_thread::get_id();
      EXPECT_EQ(std::this_thread::get_id(), worker);
      seen.push_back(i);
      if (i == 4) done.set_value();
    });
  ASSERT_EQ(done.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_NE(worker, std::this_thread::get_id());
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(KeyedExecutorTest, DestructorWaitsForOutstandingJobs) {
  std::atomic<bool> finished{false};
  std::thread late;
  {
    keyed_executor ex([](std::shared_ptr<queued_job>) {});
    ASSERT_TRUE(ex.admit("k", std::make_shared<numbered>(0)));
    late = std::thread([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      finished = true;
      ex.finished("k");
    });
  }  // returns only after the job finished
  EXPECT_TRUE(finished.load());
  late.join();
}

}  // namespace
