// Test support: a 3-node cluster holding an R3 store "TEST" (subject prefix "test"), and a
// connection to node 0 only (2 s request timeout), for the tests that take the quorum away (two
// nodes SIGSTOPped: JetStream answers nothing) while something starts, and give it back.
#pragma once

#include <jetsource/connection.hpp>
#include <jetsource/event_store.hpp>

#include "cluster_fixture.hpp"
#include "nats_fixture.hpp"

#include <chrono>
#include <optional>

namespace jetsource::test {

struct r3_on_first_node {
  temp_dir dir;
  nats_cluster cluster{dir.path()};
  std::optional<connection> conn;
  std::optional<event_store> store;

  /// Starts the cluster, connects to node 0 and opens the store.
  result<void> start() {
    JETSOURCE_TRY(cluster.start());
    auto o = cluster.client_options();
    o.urls = {cluster.url(0)};
    o.request_timeout = std::chrono::seconds{2};
    JETSOURCE_TRY(c, connection::connect(o));
    conn.emplace(std::move(c));
    JETSOURCE_TRY(
        s, event_store::open(*conn, {.stream = "TEST", .subject_prefix = "test", .replicas = 3}));
    store.emplace(std::move(s));
    return success();
  }
  void lose_quorum() {
    cluster.pause(1);
    cluster.pause(2);
  }
  void regain_quorum() {
    cluster.resume(1);
    cluster.resume(2);
  }
};

}  // namespace jetsource::test
