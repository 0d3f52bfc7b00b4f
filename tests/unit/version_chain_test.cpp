// The check a read on a replicated stream makes of the commits a replica hands over before the
// head it read from the leader (framework/src/store/version_chain.hpp): versions follow one
// another by their event counts and reach the head's, sequences only grow.
#include "store/version_chain.hpp"

#include <gtest/gtest.h>
#include <nats/nats.h>

#include <memory>
#include <string>

namespace jetsource::detail::store {
namespace {

struct commit_msg {
  explicit commit_msg(std::uint64_t version, const char* events = "Deposited") {
    static const bool opened = nats_Open(-1) == NATS_OK;  // natsMsg_Destroy needs the library
    EXPECT_TRUE(opened);
    EXPECT_EQ(natsMsg_Create(&m, "bank.Account.1.a", nullptr, "[]", 2), NATS_OK);
    EXPECT_EQ(natsMsgHeader_Set(m, hdr_version, std::to_string(version).c_str()), NATS_OK);
    EXPECT_EQ(natsMsgHeader_Set(m, hdr_events, events), NATS_OK);
  }
  ~commit_msg() { natsMsg_Destroy(m); }
  commit_msg(const commit_msg&) = delete;
  commit_msg& operator=(const commit_msg&) = delete;
  natsMsg* m = nullptr;
};

TEST(VersionChain, CommitsThatFollowOneAnotherReachTheHead) {
  version_chain chain(0, 5, 1);  // head: version 5, one event
  commit_msg v1(1), v3(3, "Deposited,Withdrawn"), v4(4);
  EXPECT_TRUE(chain.follows(v1.m, 10));
  EXPECT_TRUE(chain.follows(v3.m, 12));
  EXPECT_TRUE(chain.follows(v4.m, 20));
  EXPECT_TRUE(chain.complete());
  EXPECT_EQ(chain.last_sequence(), 20u);
}

TEST(VersionChain, ACommitHandedOverTwiceBreaksIt) {
  version_chain chain(0, 3, 1);
  commit_msg v1(1), v2(2);
  EXPECT_TRUE(chain.follows(v1.m, 10));
  EXPECT_TRUE(chain.follows(v2.m, 11));
  EXPECT_FALSE(chain.follows(v2.m, 12));  // the same version again, at another sequence
  EXPECT_TRUE(chain.broken());
  EXPECT_FALSE(chain.complete());
  EXPECT_EQ(chain.last_sequence(), 11u);  // the leader's commits are read after it
}

TEST(VersionChain, AMissingCommitOrAnEarlierSequenceBreaksIt) {
  {
    version_chain chain(0, 4, 1);
    commit_msg v1(1), v3(3);
    EXPECT_TRUE(chain.follows(v1.m, 10));
    EXPECT_FALSE(chain.follows(v3.m, 12));  // version 2 is missing
  }
  {
    version_chain chain(0, 4, 1);
    commit_msg v1(1), v2(2);
    EXPECT_TRUE(chain.follows(v1.m, 10));
    EXPECT_FALSE(chain.follows(v2.m, 9));
  }
  {
    version_chain chain(0, 3, 1);
    commit_msg v2(2);
    EXPECT_FALSE(chain.follows(v2.m, 10));  // from the start, the first commit is version 1
  }
}

TEST(VersionChain, ARangeThatStopsShortOfTheHeadIsNotComplete) {
  version_chain chain(0, 4, 1);  // commits 1..3 come before the head
  commit_msg v1(1), v2(2), v3(3);
  EXPECT_TRUE(chain.follows(v1.m, 10));
  EXPECT_TRUE(chain.follows(v2.m, 11));
  EXPECT_FALSE(chain.complete());
  EXPECT_FALSE(chain.broken());
  EXPECT_TRUE(chain.follows(v3.m, 15));
  EXPECT_TRUE(chain.complete());
}

TEST(VersionChain, AfterASnapshotTheFirstCommitStartsTheChain) {
  version_chain chain(100, 12, 1);
  commit_msg v9(9), v10(10), v11(11), v12(12);
  EXPECT_TRUE(chain.follows(v9.m, 101));
  EXPECT_TRUE(chain.follows(v10.m, 105));
  EXPECT_FALSE(chain.complete());
  EXPECT_TRUE(chain.follows(v11.m, 106));
  EXPECT_TRUE(chain.complete());
  version_chain empty(100, 12, 1);  // the head is the only commit after the snapshot
  EXPECT_TRUE(empty.complete());
  version_chain first(0, 1, 1);  // the head is the aggregate's first commit
  EXPECT_TRUE(first.complete());
}

}  // namespace
}  // namespace jetsource::detail::store
