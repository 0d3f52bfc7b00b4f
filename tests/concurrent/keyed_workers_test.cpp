// The keyed worker pool (projections/src/keyed_workers.hpp): per-key order across threads,
// control tasks on a key's worker, draining. Runs under TSan (label concurrent).
#include "keyed_workers.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using jetsource::detail::keyed_workers;

struct item {
  std::string key;
  int n = 0;
};

TEST(KeyedWorkersTest, EachKeysItemsRunInOrderOnOneThread) {
  std::mutex m;
  std::map<std::string, std::vector<int>> seen;
  std::map<std::string, std::thread::id> thread_of;
  bool same_thread = true;
  {
    keyed_workers<item> w(3, 16, [&](std::size_t, std::vector<item>& batch) {
      std::lock_guard lk(m);
      for (auto& i : batch) {
        seen[i.key].push_back(i.n);
        auto [it, added] = thread_of.try_emplace(i.key, std::this_thread::get_id());
        same_thread = same_thread && it->second == std::this_thread::get_id();
      }
    });
    for (int n = 0; n < 2000; ++n) {
      auto key = "k" + std::to_string(n % 7);
      w.dispatch(key, item{key, n});
    }
    w.drain();  // runs everything queued
  }
  ASSERT_EQ(seen.size(), 7u);
  for (const auto& [key, ns] : seen) {
    ASSERT_FALSE(ns.empty());
    for (std::size_t i = 1; i < ns.size(); ++i) ASSERT_LT(ns[i - 1], ns[i]) << key;
    EXPECT_EQ(ns.size(), key < "k5" ? 286u : 285u);  // 2000 = 7 * 285 + 5
  }
  EXPECT_TRUE(same_thread);
}

TEST(KeyedWorkersTest, ATaskRunsOnItsKeysWorkerBetweenBatches) {
  std::atomic<int> batches{0};
  std::thread::id batch_thread;
  std::mutex m;
  keyed_workers<item> w(2, 4, [&](std::size_t, std::vector<item>& batch) {
    std::lock_guard lk(m);
    if (batch.front().key == "a") batch_thread = std::this_thread::get_id();
    ++batches;
  });
  w.dispatch("a", item{"a", 1});
  std::promise<std::thread::id> ran;
  ASSERT_TRUE(w.post("a", [&] { ran.set_value(std::this_thread::get_id()); }));
  auto id = ran.get_future().get();
  w.drain();
  std::lock_guard lk(m);
  EXPECT_EQ(id, batch_thread);
  EXPECT_EQ(w.index_of("a"), w.index_of("a"));
}

// The review found that a retry posted while stop() ran could wait forever: once draining has
// begun, post() refuses instead of queueing a task no thread will run.
TEST(KeyedWorkersTest, PostAfterDrainIsRefusedNotLost) {
  keyed_workers<item> w(2, 4, [](std::size_t, std::vector<item>&) {});
  std::promise<void> ran;
  ASSERT_TRUE(w.post("x", [&] { ran.set_value(); }));
  w.drain();
  EXPECT_EQ(ran.get_future().wait_for(std::chrono::seconds(0)), std::future_status::ready)
      << "a task posted before drain() runs";
  EXPECT_FALSE(w.post("x", [] { FAIL() << "ran after drain"; }));
  w.drain();  // idempotent
}

TEST(KeyedWorkersTest, PostRacingDrainEitherRunsOrIsRefused) {
  for (int round = 0; round < 50; ++round) {
    keyed_workers<item> w(2, 4, [](std::size_t, std::vector<item>&) {});
    std::atomic<bool> ran{false};
    std::thread poster([&] {
      if (!w.post("k", [&] { ran = true; })) ran = true;  // refused counts as answered
    });
    w.drain();
    poster.join();
    EXPECT_TRUE(ran.load()) << "round " << round << ": a posted task was neither run nor refused";
  }
}

}  // namespace

namespace {

// A reactor's retry backoff (ADR 0014): a delayed task runs on the key's worker once due, while
// items keep flowing; drain() drops a delayed task not yet due.
TEST(KeyedWorkersTest, DelayedTasksRunOnTheKeysWorkerWhenDueAndDrainDropsTheRest) {
  std::atomic<int> items{0};
  std::promise<std::pair<std::thread::id, std::chrono::steady_clock::time_point>> ran;
  std::atomic<bool> late_ran{false};
  std::thread::id key_thread;
  std::mutex m;
  const auto posted = std::chrono::steady_clock::now();
  {
    keyed_workers<item> w(2, 8, [&](std::size_t, std::vector<item>& batch) {
      std::lock_guard lk(m);
      for (auto& i : batch)
        if (i.key == "k") key_thread = std::this_thread::get_id();
      items += static_cast<int>(batch.size());
    });
    w.dispatch("k", item{"k", 0});
    ASSERT_TRUE(w.post_after("k", std::chrono::milliseconds(60), [&] {
      ran.set_value({std::this_thread::get_id(), std::chrono::steady_clock::now()});
    }));
    ASSERT_TRUE(w.post_after("k", std::chrono::hours(1), [&] { late_ran = true; }));
    for (int n = 0; n < 100; ++n) w.dispatch("other" + std::to_string(n % 5), item{"o", n});
    auto f = ran.get_future();
    ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
    auto [thread, at] = f.get();
    EXPECT_GE(at - posted, std::chrono::milliseconds(60));
    std::lock_guard lk(m);
    EXPECT_EQ(thread, key_thread) << "on the key's worker";
  }
  EXPECT_EQ(items.load(), 101);
  EXPECT_FALSE(late_ran.load()) << "not due at drain: dropped";
}

}  // namespace

namespace {

// run_here (the projector's fetcher applying a trickle itself, W = 1): a batch runs on the
// caller's thread only while the worker is idle, never beside one of the worker's own batches,
// and items keep their order whichever path they took.
TEST(KeyedWorkersTest, RunHereRunsOnTheCallerOnlyWhileTheWorkerIsIdleAndKeepsTheOrder) {
  std::atomic<int> running{0}, overlaps{0};
  std::mutex m;
  std::vector<int> seen;
  int here = 0, there = 0;
  const auto caller = std::this_thread::get_id();
  {
    keyed_workers<item> w(1, 64, [&](std::size_t, std::vector<item>& batch) {
      if (running.fetch_add(1) != 0) ++overlaps;
      std::this_thread::yield();  // a batch takes a moment: give an overlap its chance
      {
        std::lock_guard lk(m);
        for (auto& i : batch) seen.push_back(i.n);
        ++(std::this_thread::get_id() == caller ? here : there);
      }
      running.fetch_sub(1);
    });
    std::vector<item> chunk;
    for (int n = 0; n < 20'000;) {
      const int size = 1 + n % 5;
      for (int k = 0; k < size; ++k, ++n) chunk.push_back(item{"k", n});
      if (n % 3 == 0 || !w.run_here(0, chunk)) w.dispatch_to(0, chunk);
      EXPECT_TRUE(chunk.empty());
    }
    w.drain();
  }
  EXPECT_EQ(overlaps.load(), 0);
  ASSERT_EQ(seen.size(), 20'000u);
  for (std::size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], static_cast<int>(i));
  EXPECT_GT(here, 0) << "some batches ran on the caller";
  EXPECT_GT(there, 0) << "some on the worker";
}

// While the worker runs a batch, or has items or a task waiting, run_here declines and leaves
// the items alone.
TEST(KeyedWorkersTest, RunHereDeclinesWhileTheWorkerIsBusyOrHasWork) {
  std::promise<void> entered, release;
  auto release_f = release.get_future().share();
  std::atomic<int> batches{0};
  keyed_workers<item> w(1, 64, [&](std::size_t, std::vector<item>& batch) {
    if (batches++ == 0) {
      entered.set_value();
      release_f.wait();
    }
    (void)batch;
  });
  std::vector<item> first{item{"k", 0}};
  w.dispatch_to(0, first);
  entered.get_future().wait();  // the worker is inside its batch
  std::vector<item> chunk{item{"k", 1}};
  EXPECT_FALSE(w.run_here(0, chunk)) << "the worker is running a batch";
  EXPECT_EQ(chunk.size(), 1u);
  w.dispatch_to(0, chunk);  // queued behind it
  release.set_value();
  std::vector<item> more{item{"k", 2}};
  // Until the worker took the queued item, run_here declines; then it runs here.
  bool ran_here = false;
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
       !ran_here && std::chrono::steady_clock::now() < until;) {
    ran_here = w.run_here(0, more);
    if (!ran_here) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(ran_here);
  EXPECT_TRUE(more.empty());
  w.drain();
  EXPECT_EQ(batches.load(), 3);
}

}  // namespace
