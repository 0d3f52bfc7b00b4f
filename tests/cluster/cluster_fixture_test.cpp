// The cluster fixture itself: a port it picked but that something else took before the node
// bound it (under `ctest -j2` another test's server or an outgoing connection can) does not
// fail the set-up: the node is started again on a fresh port. Here the ports are taken on
// purpose, by listening sockets, before start() and before a node's restart.
#include "cluster_fixture.hpp"
#include "nats_fixture.hpp"

#include <gtest/gtest.h>

namespace jetsource::test {
namespace {

// A listening loopback socket on `port` (closed when it goes).
class taken_port {
 public:
  explicit taken_port(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    ok_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
          ::listen(fd_, 4) == 0;
  }
  ~taken_port() {
    if (fd_ >= 0) ::close(fd_);
  }
  taken_port(const taken_port&) = delete;
  taken_port& operator=(const taken_port&) = delete;
  bool ok() const { return ok_; }

 private:
  int fd_;
  bool ok_ = false;
};

TEST(cluster_fixture, NodesWhosePortsWereTakenStartOnFreshPorts) {
  temp_dir dir;
  nats_cluster cluster{dir.path()};
  const auto route = cluster.at(1).route, client = cluster.at(2).client,
             monitor = cluster.at(0).monitor;
  taken_port a{route}, b{client}, c{monitor};
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  auto started = cluster.start();
  ASSERT_TRUE(started) << started.error();
  EXPECT_EQ(cluster.port_retries_used(), 3);
  EXPECT_NE(cluster.at(1).route, route);
  EXPECT_NE(cluster.at(2).client, client);
  EXPECT_NE(cluster.at(0).monitor, monitor);
  for (int i = 0; i < cluster.size(); ++i) EXPECT_TRUE(cluster.running(i)) << i;

  // A restarted node whose client port was taken while it was down comes back on another one.
  cluster.kill(0);
  const auto old_client = cluster.at(0).client;
  taken_port d{old_client};
  ASSERT_TRUE(d.ok());
  auto restarted = cluster.start_node(0);
  ASSERT_TRUE(restarted) << restarted.error();
  EXPECT_NE(cluster.at(0).client, old_client);
  ASSERT_TRUE(cluster.wait_for_meta_leader(std::chrono::seconds{30}));
  // Every node, also the restarted one, serves JetStream in one cluster.
  auto conn = connection::connect(cluster.client_options());
  ASSERT_TRUE(conn) << conn.error();
  auto store =
      event_store::open(*conn, {.stream = "TEST", .subject_prefix = "test", .replicas = 3});
  ASSERT_TRUE(store) << store.error();
}

}  // namespace
}  // namespace jetsource::test
