// Test support: a real server, the bank sample's repository on the fixture's stream, and the
// "balances" projection run by projectors on real SQLite files.
#pragma once

#include <jetsource/projector.hpp>
#include <jetsource/repository.hpp>

#include "balances_projection.hpp"
#include "nats_fixture.hpp"

#include <nats/nats.h>
#include <spawn.h>

#include <fstream>
#include <string>
#include <tuple>
#include <vector>

extern "C" char** environ;

namespace jetsource::test {

/// Starts the test projector tool (tests/tools/balances_projector.cpp) with `args`; by PID.
inline pid_t spawn_test_projector(const std::vector<std::string>& args) {
  std::vector<std::string> all{TEST_PROJECTOR_BIN};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  EXPECT_EQ(posix_spawn(&pid, TEST_PROJECTOR_BIN, nullptr, nullptr, argv.data(), environ), 0);
  return pid;
}

/// One balances row: account, owner, balance, version, deposits.
using balance_row = std::tuple<std::string, std::string, std::int64_t, std::int64_t, std::int64_t>;

class projector_test : public nats_test {
 protected:
  void SetUp() override {
    nats_test::SetUp();
    hooks().order_violations = 0;
    hooks().poison = true;
    hooks().slow_once = 0;
    hooks().delay_us = 0;
    store_.emplace(open_store());
    repo_.emplace(*store_);
  }
  void TearDown() override {
    repo_.reset();
    store_.reset();
    nats_test::TearDown();
    EXPECT_EQ(hooks().order_violations.load(), 0) << "an event was applied out of order";
  }

  projector_options options(const std::string& file, int workers = 4) {
    projector_options o;
    o.stream = "TEST";
    o.database = dir_.path() / file;
    o.workers = workers;
    o.ack_wait = std::chrono::milliseconds(2000);
    return o;
  }

  projector start(projector_options o, projection p = balances_projection()) {
    auto r = projector::start(*conn_, std::move(p), std::move(o));
    EXPECT_TRUE(r) << r.error();
    if (!r) std::abort();
    return std::move(r).value();
  }

  /// Runs a command; returns the stream sequence of its commit.
  template <class C>
  std::uint64_t run(const std::string& id, const C& command) {
    auto r = repo_->execute(id, command);
    EXPECT_TRUE(r) << id << ": " << r.error();
    return r ? r->sequence : 0;
  }

  static std::vector<balance_row> balances(const std::filesystem::path& file) {
    sqlite::options o;
    o.read_only = true;
    auto db = sqlite::database::open(file.string(), o);
    EXPECT_TRUE(db) << db.error();
    std::vector<balance_row> out;
    if (!db) return out;
    auto rows = db->query(
        "SELECT account_id, owner, balance_cents, version, deposits FROM balances "
        "ORDER BY account_id");
    EXPECT_TRUE(rows) << rows.error();
    if (!rows) return out;
    for (const auto& r : *rows)
      out.emplace_back(r.get<std::string>(0), r.get<std::string>(1), r.get<std::int64_t>(2),
                       r.get<std::int64_t>(3), r.get<std::int64_t>(4));
    return out;
  }

  /// The durable consumer of the read-model copy at dir_/`database` (made on its first start:
  /// "jetsource-<name>-<copy id>", kept in <database>.consumer).
  std::string live_consumer(const std::string& database = "balances.db") const {
    std::ifstream in(dir_.path() / (database + ".consumer"));
    std::string name;
    std::getline(in, name);
    EXPECT_FALSE(name.empty()) << "no consumer recorded for " << database;
    return name;
  }

  /// The durable consumer's state, straight from the server.
  struct consumer_state {
    std::uint64_t pending = 0, ack_pending = 0, redelivered = 0, ack_floor = 0;
    bool ack_all = false;    ///< AckPolicy All (cumulative acks)
    bool in_memory = false;  ///< kept in the server's memory (MemoryStorage)
    bool exists = false;
    bool ack_none = false;  ///< AckPolicy None (nothing acknowledged)
  };
  consumer_state consumer(const std::string& name, bool must_exist = true) {
    natsConnection* nc = nullptr;
    jsCtx* js = nullptr;
    consumer_state out;
    EXPECT_EQ(natsConnection_ConnectTo(&nc, server_->url().c_str()), NATS_OK);
    EXPECT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
    jsConsumerInfo* ci = nullptr;
    jsErrCode code{};
    natsStatus s = js_GetConsumerInfo(&ci, js, "TEST", name.c_str(), nullptr, &code);
    if (must_exist) {
      EXPECT_EQ(s, NATS_OK) << "consumer " << name;
    }
    if (ci) {
      out = {ci->NumPending,
             static_cast<std::uint64_t>(ci->NumAckPending),
             static_cast<std::uint64_t>(ci->NumRedelivered),
             ci->AckFloor.Stream,
             ci->Config->AckPolicy == js_AckAll,
             ci->Config->MemoryStorage,
             true,
             ci->Config->AckPolicy == js_AckNone};
      jsConsumerInfo_Destroy(ci);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return out;
  }
  void delete_consumer(const std::string& name) {
    natsConnection* nc = nullptr;
    jsCtx* js = nullptr;
    ASSERT_EQ(natsConnection_ConnectTo(&nc, server_->url().c_str()), NATS_OK);
    ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
    jsErrCode code{};
    EXPECT_EQ(js_DeleteConsumer(js, "TEST", name.c_str(), nullptr, &code), NATS_OK);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
  }

  std::optional<event_store> store_;
  std::optional<repository<bank::account>> repo_;
};

}  // namespace jetsource::test
