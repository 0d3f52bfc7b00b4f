// A reactor group's bucket lists each key exactly once, even while a key is rewritten during the
// listing (a member renews its key every lease/3). nats.c 3.4.1's kvStore_Keys, used before,
// returned such a key twice and could then end before the last keys: `reactors status` counted
// a member twice (3 members from 2 processes in make test's reactor_status_liveness_test) or left
// a lease out (the group's position dipped: StatusPageTest). keys() now reads the bucket stream's
// subject list.
#include "reactors/group_bucket.hpp"

#include "projector_fixture.hpp"

#include <algorithm>
#include <atomic>
#include <thread>

namespace jetsource::test {
namespace {

class group_bucket_test : public projector_test {
 protected:
  std::shared_ptr<detail::connection_state> state() { return detail::state_of(*conn_); }
};

TEST_F(group_bucket_test, ListsEachKeyOnceWhileAKeyIsRewritten) {
  auto bucket = detail::group_bucket::open(state(), "TEST", "keys", true, 1);
  ASSERT_TRUE(bucket) << bucket.error();
  // Enough keys that a listing takes a while: the rewrites land in the middle of it.
  for (int i = 0; i < 400; ++i)
    ASSERT_TRUE(bucket->put(fmt::format("park.{}.Account.a-{}", i % 16, i), "{}"));
  ASSERT_TRUE(bucket->put("member.a", "{}"));

  std::atomic<bool> stop{false};
  std::atomic<int> rewrites{0};
  std::thread writer([&] {
    while (!stop.load()) {
      if (bucket->put("member.a", "{}")) rewrites.fetch_add(1);
    }
  });
  int listings = 0, doubled = 0;
  std::string example;
  for (; listings < 30; ++listings) {
    auto keys = bucket->keys();
    if (!keys) {  // not ASSERT: the writer must be joined first
      ADD_FAILURE() << keys.error();
      break;
    }
    EXPECT_EQ(keys->size(), 401u) << "listing " << listings;
    auto sorted = *keys;
    std::sort(sorted.begin(), sorted.end());
    if (auto dup = std::adjacent_find(sorted.begin(), sorted.end()); dup != sorted.end()) {
      ++doubled;
      example = *dup;
    }
  }
  stop.store(true);
  writer.join();
  EXPECT_GT(rewrites.load(), listings) << "the key was not rewritten during the listings";
  EXPECT_EQ(doubled, 0) << doubled << " of " << listings << " listings had a key twice (e.g. "
                        << example << ")";
}

}  // namespace
}  // namespace jetsource::test
