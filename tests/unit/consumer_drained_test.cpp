// detail::consumer_drained: when wait_for may count a never-delivered sequence as applied; and
// detail::trusted_backlog: when status() and the metrics may take the consumer's word for its
// backlog (a zeroed answer read as "nothing pending" made a projector behind look caught up). The
// answers are built as nats.c decodes nats-server 2.9.10's (jetstream_api.go, consumer info: a
// consumer assigned but without a leader yet is answered with its config and zeroed state, and
// no cluster info).
#include "consumer_admin.hpp"

#include <gtest/gtest.h>

namespace {

using jetsource::detail::consumer_drained;
using jetsource::detail::trusted_backlog;

struct answer {
  jsStreamInfo stream{};
  jsClusterInfo stream_cluster{};
  jsConsumerInfo consumer{};
  jsClusterInfo consumer_cluster{};
  std::string cluster_name = "c1", leader = "n2";

  // A server in a cluster: the stream's info names the cluster.
  void in_cluster() {
    stream_cluster.Name = cluster_name.data();
    stream_cluster.Leader = leader.data();
    stream.Cluster = &stream_cluster;
  }
  // The consumer's leader answered: its cluster info names it.
  void from_leader() {
    consumer_cluster.Name = cluster_name.data();
    consumer_cluster.Leader = leader.data();
    consumer.Cluster = &consumer_cluster;
  }
};

TEST(ConsumerDrained, AStandaloneServersAnswerWithNothingPendingCounts) {
  answer a;  // standalone: no cluster name in the stream's info, no cluster info in the consumer's
  EXPECT_TRUE(consumer_drained(a.stream, a.consumer));
  a.consumer.NumPending = 1;
  EXPECT_FALSE(consumer_drained(a.stream, a.consumer));
  a.consumer.NumPending = 0;
  a.consumer.NumAckPending = 2;
  EXPECT_FALSE(consumer_drained(a.stream, a.consumer));
}

TEST(ConsumerDrained, InAClusterOnlyTheConsumerLeadersAnswerCounts) {
  answer a;
  a.in_cluster();
  // The zeroed answer for a consumer still without a leader: config, no state, no cluster info.
  EXPECT_FALSE(consumer_drained(a.stream, a.consumer));
  // A member's answer while the group has no leader: cluster info without one.
  a.consumer_cluster.Name = a.cluster_name.data();
  a.consumer.Cluster = &a.consumer_cluster;
  EXPECT_FALSE(consumer_drained(a.stream, a.consumer));
  a.from_leader();
  EXPECT_TRUE(consumer_drained(a.stream, a.consumer));
  a.consumer.NumPending = 3;
  EXPECT_FALSE(consumer_drained(a.stream, a.consumer));
}

TEST(TrustedBacklog, AStandaloneServersAnswerIsTaken) {
  answer a;
  a.consumer.NumPending = 5;
  a.consumer.NumAckPending = 2;
  EXPECT_EQ(trusted_backlog(false, a.consumer), 7u);
  a.consumer.NumPending = 0;
  a.consumer.NumAckPending = 0;
  EXPECT_EQ(trusted_backlog(false, a.consumer), 0u);
}

TEST(TrustedBacklog, InAClusterOnlyTheConsumerLeadersAnswerIsTaken) {
  answer a;
  a.in_cluster();
  // The zeroed answer for a consumer without a leader: no cluster info. Not "caught up".
  EXPECT_EQ(trusted_backlog(true, a.consumer), std::nullopt);
  // A member's answer while the group has no leader.
  a.consumer_cluster.Name = a.cluster_name.data();
  a.consumer.Cluster = &a.consumer_cluster;
  EXPECT_EQ(trusted_backlog(true, a.consumer), std::nullopt);
  std::string none;
  a.consumer_cluster.Leader = none.data();
  EXPECT_EQ(trusted_backlog(true, a.consumer), std::nullopt);
  a.from_leader();
  a.consumer.NumPending = 4;
  EXPECT_EQ(trusted_backlog(true, a.consumer), 4u);
}

}  // namespace
