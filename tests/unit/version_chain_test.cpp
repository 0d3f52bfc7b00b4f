// The check a read on a replicated stream makes of the commits a replica hands over before the
// head it read from the leader (framework/src/store/version_chain.hpp): versions follow one
// another by their event counts and reach the head's, sequences only grow.
#include "store/version_chain.hpp"

#include <gtest/gtest.h>
#include <nats/nats.h>

#include <memory>
#include <optional>
#include <string>

namespace jetsource::detail::store {
namespace {

struct commit_msg {
  explicit commit_msg(std::uint64_t version, const char* events = "Deposited",
                      std::optional<std::uint64_t> expects = std::nullopt) {
    static const bool opened = nats_Open(-1) == NATS_OK;  // natsMsg_Destroy needs the library
    EXPECT_TRUE(opened);
    EXPECT_EQ(natsMsg_Create(&m, "bank.Account.1.a", nullptr, "[]", 2), NATS_OK);
    EXPECT_EQ(natsMsgHeader_Set(m, hdr_version, std::to_string(version).c_str()), NATS_OK);
    EXPECT_EQ(natsMsgHeader_Set(m, hdr_events, events), NATS_OK);
    if (expects) {
      EXPECT_EQ(natsMsgHeader_Set(m, hdr_expected_subject_seq, std::to_string(*expects).c_str()),
                NATS_OK);
    }
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

// A drifted replica holds the commits in order but at other sequences: each commit's
// expectation (the sequence of the commit before it, as the leader checked it) shows it.
TEST(VersionChain, EachCommitsExpectationNamesTheSequenceOfTheOneBefore) {
  commit_msg v1(1, "Deposited", 0), v2(2, "Deposited", 10), v3(3, "Deposited", 12);
  {
    version_chain chain(0, 4, 1, 20);  // the head expects the third commit at 20
    EXPECT_TRUE(chain.follows(v1.m, 10));
    EXPECT_TRUE(chain.follows(v2.m, 12));
    EXPECT_TRUE(chain.follows(v3.m, 20));
    EXPECT_TRUE(chain.complete());
  }
  {
    version_chain chain(0, 4, 1, 20);
    EXPECT_TRUE(chain.follows(v1.m, 11));   // one off: only the commit after it can tell
    EXPECT_FALSE(chain.follows(v2.m, 13));  // expects the first at 10, handed over at 11
    EXPECT_TRUE(chain.broken());
  }
  {
    version_chain chain(0, 4, 1, 19);  // the last commit before the head is one off
    EXPECT_TRUE(chain.follows(v1.m, 10));
    EXPECT_TRUE(chain.follows(v2.m, 12));
    EXPECT_TRUE(chain.follows(v3.m, 20));
    EXPECT_FALSE(chain.complete());  // the head expects it at 19
  }
  {
    version_chain chain(0, 2, 1);  // no expectation stored: nothing to hold it against
    commit_msg plain(1);
    EXPECT_TRUE(chain.follows(plain.m, 7));
    EXPECT_TRUE(chain.complete());
  }
  {
    version_chain chain(5, 3, 1, 12);  // after a snapshot: the first commit's is not checked
    EXPECT_TRUE(chain.follows(v2.m, 12));
    EXPECT_TRUE(chain.complete());
  }
}

}  // namespace
}  // namespace jetsource::detail::store
