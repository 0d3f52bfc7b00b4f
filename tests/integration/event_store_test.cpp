// Integration tests of the event store against a real nats-server: wire format, optimistic
// concurrency, idempotent retries, validation, stream verification, immutability, faults.
#include <jetsource/event_store.hpp>

#include <nats/nats.h>

#include "nats_fixture.hpp"
#include "subject_watcher.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace jetsource::test {
namespace {

using namespace std::chrono_literals;

commit make_commit(std::string id, std::uint64_t version, std::string body,
                   std::optional<std::uint64_t> expected = std::nullopt,
                   std::string type = "Order") {
  commit c;
  c.aggregate_type = std::move(type);
  c.aggregate_id = std::move(id);
  c.expected_sequence = expected;
  c.version = version;
  c.event_types = "order.noted.v1";
  c.body = std::move(body);
  return c;
}

// A plain nats.c client of our own (like a service in another language would use), for raw
// reads and for requests the store never makes (delete, purge, streams made by hand).
struct raw_client {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  explicit raw_client(const std::string& url) {
    EXPECT_EQ(natsConnection_ConnectTo(&nc, url.c_str()), NATS_OK);
    EXPECT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  }
  ~raw_client() {
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
  }
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;
};

struct msg_deleter {
  void operator()(natsMsg* m) const { natsMsg_Destroy(m); }
};
using raw_msg = std::unique_ptr<natsMsg, msg_deleter>;

std::optional<std::string> raw_header(natsMsg* m, const char* key) {
  const char* v = nullptr;
  if (natsMsgHeader_Get(m, key, &v) != NATS_OK || v == nullptr) return std::nullopt;
  return std::string(v);
}

// 2026-11-22T11:28:57.123456Z
bool is_rfc3339_micros(const std::string& t) {
  const std::string shape = "dddd-dd-ddTdd:dd:dd.ddddddZ";
  if (t.size() != shape.size()) return false;
  for (std::size_t i = 0; i < t.size(); ++i)
    if (shape[i] == 'd' ? !std::isdigit(static_cast<unsigned char>(t[i])) : t[i] != shape[i])
      return false;
  return true;
}

class EventStoreTest : public nats_test {
 protected:
  // Waits until the connection is back (after a server restart).
  void wait_connected(std::chrono::milliseconds limit = 15s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!conn_->connected() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(20ms);
    ASSERT_TRUE(conn_->connected());
  }
  // Appends, retrying (same commit id) while JetStream is not ready yet after a restart.
  result<append_result> append_eventually(event_store& store, const commit& c,
                                          std::chrono::milliseconds limit = 20s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      auto r = store.append(c);
      if (r || std::chrono::steady_clock::now() > deadline ||
          !(r.error().is(errc::timeout) || r.error().is(errc::unreachable) ||
            r.error().is(errc::server_error)))
        return r;
      std::this_thread::sleep_for(100ms);
    }
  }
};

TEST(EventStoreHelpers, Fnv1a32MatchesReferenceVectors) {
  EXPECT_EQ(fnv1a32(""), 0x811c9dc5u);
  EXPECT_EQ(fnv1a32("a"), 0xe40c292cu);
  EXPECT_EQ(fnv1a32("foobar"), 0xbf9cf968u);
}

TEST(EventStoreHelpers, CommitIdsAreUniqueSubjectSafeAnd22Chars) {
  std::set<std::string> ids;
  for (int i = 0; i < 20000; ++i) {
    auto id = new_commit_id();
    ASSERT_EQ(id.size(), 22u);
    ASSERT_TRUE(validate_token("id", id));
    for (char ch : id) ASSERT_TRUE(std::isalnum(static_cast<unsigned char>(ch))) << id;
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 20000u);
}

TEST(EventStoreHelpers, EventCountCountsCommaSeparatedNames) {
  stored_commit c;
  EXPECT_EQ(c.event_count(), 0u);
  c.event_types = "a.v1";
  EXPECT_EQ(c.event_count(), 1u);
  c.event_types = "a.v1,b.v1,c.v2";
  EXPECT_EQ(c.event_count(), 3u);
}

TEST_F(EventStoreTest, AppendAndReadRoundTripKeepsEveryHeader) {
  auto store = open_store({.partitions = 64});
  commit c = make_commit("ord-1", 2, R"({"events":[1,2]})", 0);
  c.event_types = "order.placed.v1,order.item_added.v1";
  c.commit_id = "cmd-0001";
  c.correlation_id = "corr-7";
  c.causation_id = "cause-9";
  auto r = store.append(c);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->status, append_status::appended);
  EXPECT_EQ(r->sequence, 1u);
  EXPECT_EQ(r->version, 2u);
  EXPECT_EQ(r->commit_id, "cmd-0001");

  auto subject = store.subject_of("Order", "ord-1");
  ASSERT_TRUE(subject);
  EXPECT_EQ(*subject, "test.Order." + std::to_string(fnv1a32("ord-1") % 64) + ".ord-1");

  auto log = store.read("Order", "ord-1");
  ASSERT_TRUE(log) << log.error();
  EXPECT_EQ(log->head.sequence, 1u);
  EXPECT_EQ(log->head.version, 2u);
  EXPECT_EQ(log->head.commit_id, "cmd-0001");
  ASSERT_EQ(log->commits.size(), 1u);
  const auto& s = log->commits[0];
  EXPECT_EQ(s.sequence, 1u);
  EXPECT_EQ(s.version, 2u);
  EXPECT_EQ(s.aggregate_type, "Order");
  EXPECT_EQ(s.aggregate_id, "ord-1");
  EXPECT_EQ(s.commit_id, "cmd-0001");
  EXPECT_EQ(s.event_types, "order.placed.v1,order.item_added.v1");
  EXPECT_EQ(s.event_count(), 2u);
  EXPECT_EQ(s.content_type, "application/json");
  EXPECT_EQ(s.correlation_id, "corr-7");
  EXPECT_EQ(s.causation_id, "cause-9");
  EXPECT_EQ(s.body, R"({"events":[1,2]})");
  EXPECT_TRUE(is_rfc3339_micros(s.timestamp)) << s.timestamp;

  // The raw message, as any other client sees it (the public wire format).
  raw_client raw(server_->url());
  natsMsg* m = nullptr;
  ASSERT_EQ(js_GetLastMsg(&m, raw.js, "TEST", subject->c_str(), nullptr, nullptr), NATS_OK);
  raw_msg owned(m);
  EXPECT_EQ(std::string(natsMsg_GetSubject(m)), *subject);
  EXPECT_EQ(std::string(natsMsg_GetData(m), natsMsg_GetDataLength(m)), s.body);
  EXPECT_EQ(raw_header(m, "Nats-Msg-Id"), "cmd-0001");
  EXPECT_EQ(raw_header(m, "Es-Aggregate-Type"), "Order");
  EXPECT_EQ(raw_header(m, "Es-Aggregate-Id"), "ord-1");
  EXPECT_EQ(raw_header(m, "Es-Version"), "2");
  EXPECT_EQ(raw_header(m, "Es-Events"), "order.placed.v1,order.item_added.v1");
  EXPECT_EQ(raw_header(m, "Content-Type"), "application/json");
  EXPECT_EQ(raw_header(m, "Es-Timestamp"), s.timestamp);
  EXPECT_EQ(raw_header(m, "Es-Correlation-Id"), "corr-7");
  EXPECT_EQ(raw_header(m, "Es-Causation-Id"), "cause-9");
  EXPECT_EQ(raw_header(m, "Nats-Expected-Last-Subject-Sequence"), "0");

  // Optional headers are absent when empty; a generated commit id is returned and stored.
  auto r2 = store.append(make_commit("ord-2", 1, "{}"));
  ASSERT_TRUE(r2) << r2.error();
  EXPECT_EQ(r2->commit_id.size(), 22u);
  auto subject2 = store.subject_of("Order", "ord-2");
  natsMsg* m2 = nullptr;
  ASSERT_EQ(js_GetLastMsg(&m2, raw.js, "TEST", subject2->c_str(), nullptr, nullptr), NATS_OK);
  raw_msg owned2(m2);
  // A generated id rides in Es-Commit-Id only: no Nats-Msg-Id for the server to remember
  // (nothing could send it again; ADR 0019). Reads still return it.
  EXPECT_EQ(raw_header(m2, "Nats-Msg-Id"), std::nullopt);
  EXPECT_EQ(raw_header(m2, "Es-Commit-Id"), r2->commit_id);
  auto read2 = store.read("Order", "ord-2");
  ASSERT_TRUE(read2) << read2.error();
  ASSERT_EQ(read2->commits.size(), 1u);
  EXPECT_EQ(read2->commits[0].commit_id, r2->commit_id);
  EXPECT_EQ(raw_header(m2, "Es-Correlation-Id"), std::nullopt);
  EXPECT_EQ(raw_header(m2, "Es-Causation-Id"), std::nullopt);
  EXPECT_EQ(raw_header(m2, "Nats-Expected-Last-Subject-Sequence"), std::nullopt);
}

TEST_F(EventStoreTest, ReplayHandsOverWhatReadReturnsAndStopsOnAVisitorError) {
  auto store = open_store();
  std::vector<std::uint64_t> seqs;
  for (int i = 1; i <= 6; ++i) {
    ASSERT_TRUE(store.append(make_commit("other-" + std::to_string(i), 1, "x")));
    auto r = store.append(
        make_commit("ord-7", static_cast<std::uint64_t>(i), "body-" + std::to_string(i)));
    ASSERT_TRUE(r) << r.error();
    seqs.push_back(r->sequence);
  }
  struct seen {
    std::uint64_t sequence, version;
    std::string body;
  };
  auto replay = [&](std::uint64_t after, std::vector<seen>& out) {
    return store.replay("Order", "ord-7", after,
                        [&](const jetsource::commit_view& c) -> jetsource::result<void> {
                          out.push_back({c.sequence, c.version, std::string(c.body)});
                          return jetsource::success();
                        });
  };
  // From the start (ordered consumer), after the 4th (direct gets), after the head (nothing).
  for (std::size_t from : {0u, 4u, 6u}) {
    std::vector<seen> got;
    auto head = replay(from == 0 ? 0 : seqs[from - 1], got);
    ASSERT_TRUE(head) << head.error();
    EXPECT_EQ(head->sequence, seqs.back());
    EXPECT_EQ(head->version, 6u);
    ASSERT_EQ(got.size(), 6 - from);
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].sequence, seqs[from + i]);
      EXPECT_EQ(got[i].body, "body-" + std::to_string(from + i + 1));
      // Only the head's headers are read.
      EXPECT_EQ(got[i].version, from + i + 1 == 6 ? 6u : 0u);
    }
  }
  std::vector<seen> none;
  auto unknown = store.replay("Order", "nobody", 0,
                              [&](const jetsource::commit_view& c) -> jetsource::result<void> {
                                none.push_back({c.sequence, c.version, std::string(c.body)});
                                return jetsource::success();
                              });
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->sequence, 0u);
  EXPECT_TRUE(none.empty());

  int calls = 0;
  auto stopped = store.replay(
      "Order", "ord-7", 0, [&](const jetsource::commit_view&) -> jetsource::result<void> {
        if (++calls == 3) return jetsource::make_error(jetsource::errc::decode_failed, "stop here");
        return jetsource::success();
      });
  ASSERT_FALSE(stopped);
  EXPECT_TRUE(stopped.error().is(jetsource::errc::decode_failed));
  EXPECT_EQ(calls, 3);
}

TEST_F(EventStoreTest, ReadReturnsOnlyThatAggregateInOrderAfterASequence) {
  auto store = open_store();
  std::vector<std::uint64_t> seqs;
  for (int i = 1; i <= 5; ++i) {
    // Other aggregates' commits interleave: the read must skip them.
    ASSERT_TRUE(store.append(make_commit("other-" + std::to_string(i), 1, "x")));
    auto r = store.append(
        make_commit("ord-9", static_cast<std::uint64_t>(i), "body-" + std::to_string(i)));
    ASSERT_TRUE(r) << r.error();
    seqs.push_back(r->sequence);
  }
  auto all = store.read("Order", "ord-9");
  ASSERT_TRUE(all) << all.error();
  ASSERT_EQ(all->commits.size(), 5u);
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(all->commits[i].sequence, seqs[i]);
    EXPECT_EQ(all->commits[i].version, i + 1);
    EXPECT_EQ(all->commits[i].body, "body-" + std::to_string(i + 1));
  }
  EXPECT_EQ(all->head.sequence, seqs.back());

  auto tail = store.read("Order", "ord-9", seqs[2]);
  ASSERT_TRUE(tail) << tail.error();
  ASSERT_EQ(tail->commits.size(), 2u);
  EXPECT_EQ(tail->commits[0].sequence, seqs[3]);
  EXPECT_EQ(tail->commits[1].sequence, seqs[4]);

  auto one = store.read("Order", "ord-9", seqs[3]);  // direct get path
  ASSERT_TRUE(one) << one.error();
  ASSERT_EQ(one->commits.size(), 1u);
  EXPECT_EQ(one->commits[0].sequence, seqs[4]);

  // Three commits: the two before the last are read by direct gets.
  std::vector<std::uint64_t> short_seqs;
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(store.append(make_commit("noise-" + std::to_string(i), 1, "x")));
    auto r = store.append(make_commit("ord-3", static_cast<std::uint64_t>(i), std::to_string(i)));
    ASSERT_TRUE(r);
    short_seqs.push_back(r->sequence);
  }
  auto three = store.read("Order", "ord-3");
  ASSERT_TRUE(three) << three.error();
  ASSERT_EQ(three->commits.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(three->commits[i].sequence, short_seqs[i]);
    EXPECT_EQ(three->commits[i].body, std::to_string(i + 1));
  }

  auto none = store.read("Order", "ord-9", seqs.back());
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->commits.empty());
  EXPECT_EQ(none->head.sequence, seqs.back());
  EXPECT_EQ(none->head.version, 5u);

  auto unknown = store.read("Order", "nobody");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->head.sequence, 0u);
  EXPECT_TRUE(unknown->commits.empty());

  auto h = store.head("Order", "ord-9");
  ASSERT_TRUE(h);
  ASSERT_TRUE(h->has_value());
  EXPECT_EQ((*h)->sequence, seqs.back());
  EXPECT_EQ((*h)->version, 5u);
  auto h0 = store.head("Order", "nobody");
  ASSERT_TRUE(h0);
  EXPECT_FALSE(h0->has_value());
}

TEST_F(EventStoreTest, ProcessesOpeningANewStreamAtOnceAllSucceed) {
  // Two creators of one stream race: the server answers the loser "name in use" or "subjects
  // overlap"; both must end up with the verified stream.
  for (int round = 0; round < 5; ++round) {
    store_options o;
    o.stream = "RACE" + std::to_string(round);
    o.subject_prefix = "race" + std::to_string(round);
    std::vector<std::thread> openers;
    std::atomic<int> ok{0};
    std::mutex m;
    std::string failure;
    for (int i = 0; i < 4; ++i)
      openers.emplace_back([&] {
        auto s = event_store::open(*conn_, o);
        if (s) {
          ++ok;
        } else {
          std::lock_guard lock(m);
          failure = to_string(s.error());
        }
      });
    for (auto& t : openers) t.join();
    EXPECT_EQ(ok.load(), 4) << failure;
  }
}

TEST_F(EventStoreTest, SecondMustBeNewAppendConflicts) {
  auto store = open_store();
  auto first = store.append(make_commit("ord-1", 1, "a", 0));
  ASSERT_TRUE(first) << first.error();
  auto second = store.append(make_commit("ord-1", 1, "b", 0));
  ASSERT_FALSE(second);
  EXPECT_TRUE(second.error().is(errc::conflict)) << second.error();
  EXPECT_NE(second.error().message.find("wrong last sequence: 1"), std::string::npos)
      << second.error();
  auto log = store.read("Order", "ord-1");
  ASSERT_TRUE(log);
  ASSERT_EQ(log->commits.size(), 1u);
  EXPECT_EQ(log->commits[0].body, "a");
}

TEST_F(EventStoreTest, StaleExpectedSequenceConflictsAndNamesTheActualOne) {
  auto store = open_store();
  auto a = store.append(make_commit("ord-1", 1, "a", 0));
  ASSERT_TRUE(a);
  ASSERT_TRUE(store.append(make_commit("zzz", 1, "noise")));  // moves the stream, not ord-1
  auto b = store.append(make_commit("ord-1", 2, "b", a->sequence));
  ASSERT_TRUE(b) << b.error();
  EXPECT_EQ(b->sequence, 3u);
  auto stale = store.append(make_commit("ord-1", 2, "c", a->sequence));
  ASSERT_FALSE(stale);
  EXPECT_TRUE(stale.error().is(errc::conflict)) << stale.error();
  EXPECT_NE(stale.error().message.find("wrong last sequence: 3"), std::string::npos)
      << stale.error();
  auto last = store.last_sequence();
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 3u);
}

TEST_F(EventStoreTest, RetryWithSameCommitIdLandsOnce) {
  auto store = open_store();
  commit c = make_commit("ord-1", 1, "a", 0);
  c.commit_id = "retry-me";
  auto first = store.append(c);
  ASSERT_TRUE(first) << first.error();
  EXPECT_EQ(first->status, append_status::appended);
  auto again = store.append(c);
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(again->status, append_status::already_appended);
  EXPECT_EQ(again->sequence, first->sequence);
  EXPECT_EQ(again->commit_id, "retry-me");

  commit unchecked = make_commit("ord-2", 1, "b");
  unchecked.commit_id = "retry-me-too";
  auto u1 = store.append(unchecked);
  auto u2 = store.append(unchecked);
  ASSERT_TRUE(u1 && u2);
  EXPECT_EQ(u2->status, append_status::already_appended);
  EXPECT_EQ(u2->sequence, u1->sequence);

  auto log = store.read("Order", "ord-1");
  ASSERT_TRUE(log);
  EXPECT_EQ(log->commits.size(), 1u);
  auto last = store.last_sequence();
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 2u);
}

// After the duplicate window a retry meets the expected-sequence check instead (as on a
// replicated stream within it): the subject's last message carries our id, so it had landed.
TEST_F(EventStoreTest, ConflictOnRetryOfALandedCommitIsAlreadyAppended) {
  auto store = open_store({.stream = "DEDUP", .subject_prefix = "dedup", .duplicate_window = 1s});
  commit c = make_commit("ord-1", 1, "a", 0);
  c.commit_id = "landed-before";
  auto first = store.append(c);
  ASSERT_TRUE(first) << first.error();
  std::this_thread::sleep_for(2500ms);  // the server forgets the msg id
  auto retry = store.append(c);
  ASSERT_TRUE(retry) << retry.error();
  EXPECT_EQ(retry->status, append_status::already_appended);
  EXPECT_EQ(retry->sequence, first->sequence);
  auto last = store.last_sequence();
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 1u);
}

// Commit messages delivered to any inbox of this server (replies to direct gets, a read's
// consumer deliveries) while it is alive: what the store read, counted by a second connection.
class delivered_commits {
 public:
  explicit delivered_commits(const std::string& url) : inboxes_(url, "_INBOX.>") {}
  // Those delivered since the last call.
  int take() {
    int n = 0;
    while (natsMsg* m = inboxes_.next(std::chrono::milliseconds{200})) {
      n += raw_header(m, "Es-Aggregate-Id").has_value();
      natsMsg_Destroy(m);
    }
    return n;
  }

 private:
  jetsource::test::subject_watcher inboxes_;
};

// A refused append looks for its own commit only where it can be: the aggregate's first commit
// after the expected sequence. Under the commit-slot scheme after the duplicate window (as on any
// replicated stream), a re-send of a landed commit is still found, and a commit that expected
// an aggregate to be new (0) reads one commit, not the aggregate's 40.
TEST_F(EventStoreTest, ARefusedAppendReadsOnlyTheFirstCommitAfterItsExpectation) {
  auto store = open_store({.stream = "SLOTS",
                           .subject_prefix = "slots",
                           .duplicate_window = 1s,
                           .concurrency = concurrency_scheme::commit_slot});
  commit first = make_commit("ord-9", 1, "a", 0);
  first.commit_id = "first-of-ord-9";
  auto landed = store.append(first);
  ASSERT_TRUE(landed) << landed.error();
  std::uint64_t last = landed->sequence;
  for (std::uint64_t v = 2; v <= 40; ++v) {
    auto r = store.append(make_commit("ord-9", v, "b", last));
    ASSERT_TRUE(r) << r.error();
    last = r->sequence;
  }
  std::this_thread::sleep_for(1500ms);  // the server forgets the slots: the expectation decides
  delivered_commits reads(server_->url());

  auto again = store.append(first);  // its ack was lost, say
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(again->status, append_status::already_appended);
  EXPECT_EQ(again->sequence, landed->sequence);
  EXPECT_EQ(again->version, 1u);
  EXPECT_LE(reads.take(), 2);  // the subject's last commit and its first after 0

  commit presumed_new = make_commit("ord-9", 1, "c", 0);
  auto refused = store.append(presumed_new);
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is(errc::conflict)) << refused.error();
  EXPECT_LE(reads.take(), 2);
  auto end = store.last_sequence();
  ASSERT_TRUE(end);
  EXPECT_EQ(*end, last);
}

TEST_F(EventStoreTest, MultiEventCommitIsOneMessage) {
  auto store = open_store();
  commit c = make_commit("ord-1", 3, R"([{"a":1},{"b":2},{"c":3}])", 0);
  c.event_types = "order.placed.v1,order.item_added.v1,order.item_added.v1";
  ASSERT_TRUE(store.append(c));
  auto last = store.last_sequence();
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 1u);
  auto log = store.read("Order", "ord-1");
  ASSERT_TRUE(log);
  ASSERT_EQ(log->commits.size(), 1u);
  EXPECT_EQ(log->commits[0].event_count(), 3u);
  EXPECT_EQ(log->commits[0].version, 3u);
}

TEST_F(EventStoreTest, InvalidIdsAreRejectedAndNothingIsWritten) {
  auto store = open_store();
  ASSERT_TRUE(store.append(make_commit("ok", 1, "x")));
  const std::vector<std::string> bad = {
      ".", "a.b", "a*", ">", "a b", "", std::string(300, 'x'), "\x01", "tab\there", "del\x7f"};
  for (const auto& id : bad) {
    auto r = store.append(make_commit(id, 1, "x"));
    ASSERT_FALSE(r) << "id '" << id << "' was accepted";
    EXPECT_TRUE(r.error().is(errc::invalid_id)) << r.error();
    EXPECT_NE(r.error().message.find("aggregate id"), std::string::npos) << r.error();
    bool called = false;
    auto a = store.append_async(make_commit(id, 1, "x"), [&](auto) { called = true; });
    ASSERT_FALSE(a);
    EXPECT_TRUE(a.error().is(errc::invalid_id));
    EXPECT_FALSE(called);
    EXPECT_FALSE(store.read("Order", id));
    EXPECT_FALSE(store.head("Order", id));
  }
  auto bad_type = store.append(make_commit("ok2", 1, "x", std::nullopt, "Or.der"));
  ASSERT_FALSE(bad_type);
  EXPECT_TRUE(bad_type.error().is(errc::invalid_id));
  EXPECT_NE(bad_type.error().message.find("aggregate type 'Or.der'"), std::string::npos)
      << bad_type.error();
  EXPECT_NE(store.append(make_commit("a.b", 1, "x")).error().message.find("'.'"),
            std::string::npos);
  EXPECT_NE(store.append(make_commit(std::string(300, 'x'), 1, "x")).error().message.find("300"),
            std::string::npos);
  ASSERT_TRUE(store.flush(5s));
  auto last = store.last_sequence();
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 1u);
}

TEST_F(EventStoreTest, MalformedCommitsAreInvalidArguments) {
  auto store = open_store();
  auto empty_body = store.append(make_commit("ord-1", 1, ""));
  ASSERT_FALSE(empty_body);
  EXPECT_TRUE(empty_body.error().is(errc::invalid_argument));
  commit no_types = make_commit("ord-1", 1, "x");
  no_types.event_types.clear();
  EXPECT_TRUE(store.append(no_types).error().is(errc::invalid_argument));
  commit injected = make_commit("ord-1", 1, "x");
  injected.correlation_id = "a\r\nNats-Msg-Id: evil";
  EXPECT_TRUE(store.append(injected).error().is(errc::invalid_argument));
  auto last = store.last_sequence();
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 0u);
}

TEST_F(EventStoreTest, TooLargeCommitIsRejectedBeforeSending) {
  auto store = open_store();
  const auto max = conn_->max_payload();
  ASSERT_GT(max, 0);
  auto r = store.append(make_commit("ord-1", 1, std::string(static_cast<std::size_t>(max), 'x')));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::payload_too_large)) << r.error();
  EXPECT_NE(r.error().message.find(std::to_string(max)), std::string::npos) << r.error();
  auto a = store.append_async(
      make_commit("ord-1", 1, std::string(static_cast<std::size_t>(max) - 100, 'x')), [](auto) {});
  ASSERT_FALSE(a);
  EXPECT_TRUE(a.error().is(errc::payload_too_large));
  auto last = store.last_sequence();
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 0u);
  // Just under the limit is fine.
  auto fits =
      store.append(make_commit("ord-1", 1, std::string(static_cast<std::size_t>(max) - 1024, 'y')));
  ASSERT_TRUE(fits) << fits.error();
  auto log = store.read("Order", "ord-1");
  ASSERT_TRUE(log);
  ASSERT_EQ(log->commits.size(), 1u);
  EXPECT_EQ(log->commits[0].body.size(), static_cast<std::size_t>(max) - 1024);
}

TEST_F(EventStoreTest, ReopenWithSameConfigSucceedsAndOtherPartitionsMismatch) {
  {
    auto store = open_store({.partitions = 16});
    ASSERT_TRUE(store.append(make_commit("ord-1", 1, "x")));
  }
  auto same =
      event_store::open(*conn_, {.stream = "TEST", .subject_prefix = "test", .partitions = 16});
  ASSERT_TRUE(same) << same.error();
  auto log = same->read("Order", "ord-1");
  ASSERT_TRUE(log);
  EXPECT_EQ(log->commits.size(), 1u);

  auto other =
      event_store::open(*conn_, {.stream = "TEST", .subject_prefix = "test", .partitions = 8});
  ASSERT_FALSE(other);
  EXPECT_TRUE(other.error().is(errc::stream_config_mismatch)) << other.error();
  EXPECT_NE(other.error().message.find("partitions 16 (want 8)"), std::string::npos)
      << other.error();

  auto replicas = event_store::open(
      *conn_, {.stream = "TEST", .subject_prefix = "test", .partitions = 16, .replicas = 3});
  ASSERT_FALSE(replicas);
  EXPECT_TRUE(replicas.error().is(errc::stream_config_mismatch)) << replicas.error();
  EXPECT_NE(replicas.error().message.find("replicas 1 (want 3)"), std::string::npos);
  auto window = event_store::open(*conn_, {.stream = "TEST",
                                           .subject_prefix = "test",
                                           .partitions = 16,
                                           .duplicate_window = std::chrono::seconds{30}});
  ASSERT_FALSE(window);
  EXPECT_TRUE(window.error().is(errc::stream_config_mismatch)) << window.error();
  EXPECT_NE(window.error().message.find("duplicate window 120000 ms (want 30000 ms)"),
            std::string::npos)
      << window.error();
}

TEST_F(EventStoreTest, StreamMadeByHandWithOtherSettingsIsReportedNotChanged) {
  raw_client raw(server_->url());
  const char* subjects[] = {"hand.>"};
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = "HAND";
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_MemoryStorage;
  cfg.MaxAge = 3600LL * 1'000'000'000LL;
  jsStreamInfo* si = nullptr;
  ASSERT_EQ(js_AddStream(&si, raw.js, &cfg, nullptr, nullptr), NATS_OK);
  jsStreamInfo_Destroy(si);

  auto s = event_store::open(*conn_, {.stream = "HAND", .subject_prefix = "hand"});
  ASSERT_FALSE(s);
  EXPECT_TRUE(s.error().is(errc::stream_config_mismatch)) << s.error();
  const auto& msg = s.error().message;
  for (const char* part : {"storage memory (want file)", "deny_delete false", "deny_purge false",
                           "max_age 3600s", "allow_direct false", "partitions"})
    EXPECT_NE(msg.find(part), std::string::npos) << "missing '" << part << "' in: " << msg;

  // Never changed.
  si = nullptr;
  ASSERT_EQ(js_GetStreamInfo(&si, raw.js, "HAND", nullptr, nullptr), NATS_OK);
  EXPECT_EQ(si->Config->Storage, js_MemoryStorage);
  EXPECT_FALSE(si->Config->DenyDelete);
  jsStreamInfo_Destroy(si);

  // Other subjects for the same name.
  auto wrong_prefix = event_store::open(*conn_, {.stream = "HAND", .subject_prefix = "other"});
  ASSERT_FALSE(wrong_prefix);
  EXPECT_NE(wrong_prefix.error().message.find("subjects [hand.>] (want [other.>])"),
            std::string::npos)
      << wrong_prefix.error();
}

TEST_F(EventStoreTest, ServerRefusesDeleteAndPurge) {
  auto store = open_store();
  auto a = store.append(make_commit("ord-1", 1, "keep me"));
  ASSERT_TRUE(a);
  raw_client raw(server_->url());
  jsErrCode jerr = static_cast<jsErrCode>(0);
  EXPECT_NE(js_DeleteMsg(raw.js, "TEST", a->sequence, nullptr, &jerr), NATS_OK);
  EXPECT_EQ(static_cast<int>(jerr), 10057);
  jerr = static_cast<jsErrCode>(0);
  EXPECT_NE(js_PurgeStream(raw.js, "TEST", nullptr, &jerr), NATS_OK);
  EXPECT_EQ(static_cast<int>(jerr), 10110);
  auto log = store.read("Order", "ord-1");
  ASSERT_TRUE(log);
  ASSERT_EQ(log->commits.size(), 1u);
  EXPECT_EQ(log->commits[0].body, "keep me");
}

TEST_F(EventStoreTest, ForeignMessageWithoutVersionIsDecodeFailed) {
  auto store = open_store();
  ASSERT_TRUE(store.append(make_commit("ord-1", 1, "ok")));
  raw_client raw(server_->url());
  auto subject = store.subject_of("Order", "ord-1");
  jsPubAck* pa = nullptr;
  ASSERT_EQ(js_Publish(&pa, raw.js, subject->c_str(), "junk", 4, nullptr, nullptr), NATS_OK);
  auto seq = pa->Sequence;
  jsPubAck_Destroy(pa);
  auto log = store.read("Order", "ord-1");
  ASSERT_FALSE(log);
  EXPECT_TRUE(log.error().is(errc::decode_failed)) << log.error();
  EXPECT_NE(log.error().message.find("sequence " + std::to_string(seq)), std::string::npos)
      << log.error();

  // In the middle of a history: found by the direct-get path (short) and the consumer (long).
  for (std::uint64_t v : {2u, 3u, 4u, 5u}) {
    ASSERT_TRUE(store.append(make_commit("ord-1", v, "later")));
    auto again = store.read("Order", "ord-1");
    ASSERT_FALSE(again) << "version " << v;
    EXPECT_TRUE(again.error().is(errc::decode_failed)) << again.error();
    EXPECT_NE(again.error().message.find("sequence " + std::to_string(seq)), std::string::npos)
        << again.error();
  }
}

TEST_F(EventStoreTest, SnapshotsRoundTripAndAreOptional) {
  auto store = open_store();
  auto none = store.load_snapshot("Order", "ord-1");
  ASSERT_TRUE(none) << none.error();
  EXPECT_FALSE(none->has_value());

  ASSERT_TRUE(store.save_snapshot(
      "Order", "ord-1", {.version = 10, .sequence = 42, .schema = 2, .body = R"({"state":1})"}));
  ASSERT_TRUE(store.save_snapshot(
      "Order", "ord-1", {.version = 20, .sequence = 84, .schema = 2, .body = R"({"state":2})"}));
  ASSERT_TRUE(store.flush(5s));
  auto s = store.load_snapshot("Order", "ord-1");
  ASSERT_TRUE(s) << s.error();
  ASSERT_TRUE(s->has_value());
  EXPECT_EQ((*s)->version, 20u);
  EXPECT_EQ((*s)->sequence, 84u);
  EXPECT_EQ((*s)->schema, 2);
  EXPECT_EQ((*s)->body, R"({"state":2})");
  EXPECT_TRUE(store.load_snapshot("Order", "a.b").error().is(errc::invalid_id));

  // One message per aggregate; the snapshot stream may be dropped: the store works without it.
  raw_client raw(server_->url());
  jsStreamInfo* si = nullptr;
  ASSERT_EQ(js_GetStreamInfo(&si, raw.js, "TEST_SNAPSHOTS", nullptr, nullptr), NATS_OK);
  EXPECT_EQ(si->State.Msgs, 1u);
  jsStreamInfo_Destroy(si);
  ASSERT_EQ(js_DeleteStream(raw.js, "TEST_SNAPSHOTS", nullptr, nullptr), NATS_OK);
  auto gone = store.load_snapshot("Order", "ord-1");
  ASSERT_TRUE(gone) << gone.error();
  EXPECT_FALSE(gone->has_value());
  EXPECT_TRUE(store.save_snapshot("Order", "ord-1", {.version = 1, .sequence = 1, .body = "{}"}));
  ASSERT_TRUE(store.flush(5s));  // its failure is only logged
  EXPECT_TRUE(store.append(make_commit("ord-1", 1, "x")));
}

// ADR 0022: a commit may carry the aggregate's state after it, as the body's last member "state"
// with the header Es-State-Schema; readers of the events are not affected.
TEST_F(EventStoreTest, ACommitCarriesAStateAsTheBodysLastMember) {
  auto store = open_store();
  commit c = make_commit("ord-1", 1,
                         R"({"events":[{"type":"A","v":1,"data":{}}]})"
                         "\n",
                         0);
  c.state = R"({"total":5,"note":"é \"q\""})";
  c.state_schema = 3;
  auto r = store.append(c);
  ASSERT_TRUE(r) << r.error();
  EXPECT_TRUE(r->state_stored);
  const std::string expected =
      R"({"events":[{"type":"A","v":1,"data":{}}],"state":{"total":5,"note":"é \"q\""}})";
  auto h = store.head("Order", "ord-1");
  ASSERT_TRUE(h && *h);
  EXPECT_EQ((*h)->state_schema, 3);
  EXPECT_EQ((*h)->body, expected);
  EXPECT_EQ((*h)->version, 1u);
  EXPECT_EQ((*h)->sequence, r->sequence);
  // As another language's client reads it: the header and the body as stored.
  raw_client raw(server_->url());
  jsDirectGetMsgOptions o;
  jsDirectGetMsgOptions_Init(&o);
  o.Sequence = r->sequence;
  natsMsg* m = nullptr;
  ASSERT_EQ(js_DirectGetMsg(&m, raw.js, "TEST", nullptr, &o), NATS_OK);
  raw_msg owned(m);
  const char* schema = nullptr;
  ASSERT_EQ(natsMsgHeader_Get(m, "Es-State-Schema", &schema), NATS_OK);
  EXPECT_STREQ(schema, "3");
  EXPECT_EQ(std::string(natsMsg_GetData(m), natsMsg_GetDataLength(m)), expected);

  // Without a state: no header, the body as given; async appends report it the same way.
  std::optional<result<append_result>> async;
  commit later = make_commit("ord-1", 2, R"({"events":[]})", r->sequence);
  later.state = "[1,2]";
  later.state_schema = 1;
  ASSERT_TRUE(store.append_async(later, [&](result<append_result> a) { async = std::move(a); }));
  ASSERT_TRUE(store.flush(5s));
  ASSERT_TRUE(async && *async) << (async ? async->error().message : "no outcome");
  EXPECT_TRUE((*async)->state_stored);
  auto plain = store.append(make_commit("ord-1", 3, "x", (*async)->sequence));
  ASSERT_TRUE(plain) << plain.error();
  EXPECT_FALSE(plain->state_stored);
  auto log = store.read("Order", "ord-1");
  ASSERT_TRUE(log) << log.error();
  ASSERT_EQ(log->commits.size(), 3u);
  EXPECT_EQ(log->commits[1].body, R"({"events":[],"state":[1,2]})");
  EXPECT_EQ(log->commits[2].body, "x");
  EXPECT_EQ(log->head.state_schema, 0);
}

TEST_F(EventStoreTest, AStateThatWouldBreakTheBodyIsRefusedAndNothingIsStored) {
  auto store = open_store();
  auto with = [](std::string body, std::string state, int schema) {
    commit c = make_commit("ord-1", 1, std::move(body), 0);
    c.state = std::move(state);
    c.state_schema = schema;
    return c;
  };
  const std::string body = R"({"events":[]})";
  for (const auto& c : {with(body, "{", 1),                             // not JSON
                        with(body, "{} {}", 1),                         // two values
                        with(body, "{\"a\":\"\xff\"}", 1),              // not UTF-8
                        with(body, "{}", 0),                            // no schema
                        with(body, "", 2),                              // no state
                        with(body, "{}", -1), with("[1]", "{}", 1)}) {  // the body is not an object
    auto r = store.append(c);
    ASSERT_FALSE(r) << c.state;
    EXPECT_TRUE(r.error().is(errc::invalid_argument)) << r.error();
  }
  commit other = with(body, "{}", 1);
  other.content_type = "application/octet-stream";
  EXPECT_TRUE(store.append(other).error().is(errc::invalid_argument));
  auto last = store.last_sequence();
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 0u);
}

TEST_F(EventStoreTest, ACommitTooLargeWithItsStateIsStoredWithout) {
  auto store = open_store();
  const auto max = static_cast<std::size_t>(conn_->max_payload());
  const std::string body = R"({"events":[{"note":")" + std::string(max - 1024, 'n') + R"("}]})";
  commit c = make_commit("ord-1", 1, body, 0);
  c.state = R"({"big":")" + std::string(2048, 's') + R"("})";
  c.state_schema = 1;
  auto r = store.append(c);
  ASSERT_TRUE(r) << r.error();
  EXPECT_FALSE(r->state_stored);
  auto h = store.head("Order", "ord-1");
  ASSERT_TRUE(h && *h);
  EXPECT_EQ((*h)->state_schema, 0);
  auto log = store.read("Order", "ord-1");
  ASSERT_TRUE(log) << log.error();
  ASSERT_EQ(log->commits.size(), 1u);
  EXPECT_EQ(log->commits[0].body, body);
}

TEST_F(EventStoreTest, AsyncAppendReportsAppendedConflictAndDuplicate) {
  auto store = open_store();
  std::mutex mu;
  std::map<std::string, result<append_result>> outcomes;
  auto record = [&](std::string key) {
    return [&, key](result<append_result> r) {
      std::lock_guard lock(mu);
      outcomes.emplace(key, std::move(r));
    };
  };
  commit first = make_commit("ord-1", 1, "a", 0);
  first.commit_id = "async-1";
  ASSERT_TRUE(store.append_async(first, record("first")));
  ASSERT_TRUE(store.flush(5s));
  ASSERT_TRUE(store.append_async(first, record("duplicate")));
  ASSERT_TRUE(store.append_async(make_commit("ord-1", 1, "b", 0), record("conflict")));
  ASSERT_TRUE(store.flush(5s));
  std::lock_guard lock(mu);
  ASSERT_EQ(outcomes.size(), 3u);
  ASSERT_TRUE(outcomes.at("first")) << outcomes.at("first").error();
  EXPECT_EQ(outcomes.at("first")->status, append_status::appended);
  EXPECT_EQ(outcomes.at("first")->version, 1u);
  EXPECT_EQ(outcomes.at("first")->commit_id, "async-1");
  ASSERT_TRUE(outcomes.at("duplicate"));
  EXPECT_EQ(outcomes.at("duplicate")->status, append_status::already_appended);
  EXPECT_EQ(outcomes.at("duplicate")->sequence, outcomes.at("first")->sequence);
  ASSERT_FALSE(outcomes.at("conflict"));
  EXPECT_TRUE(outcomes.at("conflict").error().is(errc::conflict))
      << outcomes.at("conflict").error();
  EXPECT_NE(outcomes.at("conflict").error().message.find("wrong last sequence: 1"),
            std::string::npos);
}

TEST_F(EventStoreTest, ServerDownFailsInBoundedTimeThenRecovers) {
  auto store = open_store({.ack_timeout = 500ms});
  ASSERT_TRUE(store.append(make_commit("ord-1", 1, "before", 0)));
  auto port = server_->port();
  server_->kill_hard();

  commit down = make_commit("ord-1", 2, "while down", 1);
  down.commit_id = "sent-while-down";
  auto t0 = std::chrono::steady_clock::now();
  auto r = store.append(down);
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::timeout) || r.error().is(errc::unreachable)) << r.error();
  EXPECT_LT(took, 3s);

  std::promise<result<append_result>> outcome;
  auto async =
      store.append_async(make_commit("ord-2", 1, "async while down"),
                         [&](result<append_result> a) { outcome.set_value(std::move(a)); });
  if (async) {
    auto f = outcome.get_future();
    ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
    auto a = f.get();
    ASSERT_FALSE(a);
    EXPECT_TRUE(a.error().is(errc::timeout) || a.error().is(errc::unreachable)) << a.error();
  } else {
    EXPECT_TRUE(async.error().is(errc::unreachable) || async.error().is(errc::timeout));
  }
  ASSERT_TRUE(store.flush(5s));

  server_.reset();
  start_server(port);
  wait_connected();
  // A timeout's outcome is unknown: nats.c may still deliver the buffered publish after the
  // reconnect. The retry with the same commit id lands exactly once either way.
  auto back = append_eventually(store, down);
  ASSERT_TRUE(back) << back.error();
  auto log = store.read("Order", "ord-1");
  ASSERT_TRUE(log) << log.error();
  ASSERT_EQ(log->commits.size(), 2u);
  EXPECT_EQ(log->commits[0].body, "before");
  EXPECT_EQ(log->commits[1].body, "while down");
  EXPECT_EQ(log->commits[1].commit_id, "sent-while-down");
  EXPECT_EQ(back->sequence, log->commits[1].sequence);
  auto next = store.append(make_commit("ord-1", 3, "after", log->head.sequence));
  ASSERT_TRUE(next) << next.error();
}

TEST_F(EventStoreTest, KillNineKeepsEveryAcknowledgedCommit) {
  auto store = open_store({.partitions = 8});
  std::mutex mu;
  std::map<std::string, std::string> acked;  // commit id -> body
  std::map<std::string, std::uint64_t> acked_seq;
  std::atomic<int> async_errors{0};
  for (int i = 0; i < 300; ++i) {
    std::string agg = "agg-" + std::to_string(i % 30);
    commit c =
        make_commit(agg, static_cast<std::uint64_t>(i / 30 + 1), "body-" + std::to_string(i));
    c.commit_id = "kill9-" + std::to_string(i);
    if (i % 2 == 0) {
      auto r = store.append(c);
      ASSERT_TRUE(r) << r.error();
      std::lock_guard lock(mu);
      acked[c.commit_id] = c.body;
      acked_seq[c.commit_id] = r->sequence;
    } else {
      std::string id = c.commit_id, body = c.body;
      ASSERT_TRUE(store.append_async(c, [&, id, body](result<append_result> r) {
        if (!r) {
          ++async_errors;
          return;
        }
        std::lock_guard lock(mu);
        acked[id] = body;
        acked_seq[id] = r->sequence;
      }));
    }
  }
  ASSERT_TRUE(store.flush(10s));
  EXPECT_EQ(async_errors.load(), 0);
  ASSERT_EQ(acked.size(), 300u);

  crash_and_restart_server();
  wait_connected();
  auto reopened =
      event_store::open(*conn_, {.stream = "TEST", .subject_prefix = "test", .partitions = 8});
  for (int i = 0; !reopened && i < 100; ++i) {  // JetStream may still be recovering
    std::this_thread::sleep_for(100ms);
    reopened =
        event_store::open(*conn_, {.stream = "TEST", .subject_prefix = "test", .partitions = 8});
  }
  ASSERT_TRUE(reopened) << reopened.error();
  std::size_t found = 0;
  for (int a = 0; a < 30; ++a) {
    auto log = reopened->read("Order", "agg-" + std::to_string(a));
    ASSERT_TRUE(log) << log.error();
    ASSERT_EQ(log->commits.size(), 10u);
    std::uint64_t prev = 0;
    for (const auto& c : log->commits) {
      ASSERT_TRUE(acked.count(c.commit_id)) << c.commit_id;
      EXPECT_EQ(c.body, acked.at(c.commit_id));
      EXPECT_EQ(c.sequence, acked_seq.at(c.commit_id));
      EXPECT_GT(c.sequence, prev);
      prev = c.sequence;
      ++found;
    }
  }
  EXPECT_EQ(found, 300u);
  auto last = reopened->last_sequence();
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 300u);
  // And it keeps working.
  auto more = append_eventually(*reopened, make_commit("agg-0", 11, "after restart"));
  ASSERT_TRUE(more) << more.error();
  EXPECT_EQ(more->sequence, 301u);
}

TEST_F(EventStoreTest, OpenRejectsBadOptions) {
  EXPECT_TRUE(event_store::open(*conn_, {.stream = "A.B"}).error().is(errc::invalid_argument));
  EXPECT_TRUE(event_store::open(*conn_, {.stream = "S", .subject_prefix = "a..b"})
                  .error()
                  .is(errc::invalid_argument));
  EXPECT_TRUE(event_store::open(*conn_, {.stream = "S", .subject_prefix = "a.*"})
                  .error()
                  .is(errc::invalid_argument));
  EXPECT_TRUE(event_store::open(*conn_, {.stream = "S", .partitions = 0})
                  .error()
                  .is(errc::invalid_argument));
  EXPECT_TRUE(event_store::open(*conn_, {.stream = "S", .max_in_flight = 0})
                  .error()
                  .is(errc::invalid_argument));
  // A dotted prefix is fine.
  auto ok = event_store::open(*conn_, {.stream = "DOTTED", .subject_prefix = "acme.orders"});
  ASSERT_TRUE(ok) << ok.error();
  auto subject = ok->subject_of("Order", "o1");
  ASSERT_TRUE(subject);
  EXPECT_EQ(subject->rfind("acme.orders.Order.", 0), 0u);
  EXPECT_TRUE(ok->append(make_commit("o1", 1, "x", 0)));
}

}  // namespace
}  // namespace jetsource::test
