// repository_options::presume_new (ADR 0020) against a real nats-server: a command that creates
// an aggregate appends without reading the stream first; every other command still decides on
// the aggregate as the stream has it, and an aggregate wrongly presumed new is never written.
#include <jetsource/repository.hpp>

#include "nats_fixture.hpp"
#include "subject_watcher.hpp"
#include "test_domain.hpp"

#include <nats/nats.h>

#include <chrono>
#include <future>
#include <optional>
#include <string_view>

using namespace bank;
using jetsource::errc;

namespace {

class PresumeNewTest : public jetsource::test::nats_test {
 protected:
  void SetUp() override {
    nats_test::SetUp();
    store_.emplace(open_store());
    // A second connection sees every JetStream API request the store makes ($JS.API.>): the
    // reads of a load are direct gets or message gets there; an append is not.
    api_.emplace(server_->url(), "$JS.API.>");
  }
  void TearDown() override {
    api_.reset();
    store_.reset();
    nats_test::TearDown();
  }
  jetsource::repository<account> repo(jetsource::repository_options o = {}) {
    o.snapshot_every = 0;  // loads are then plain reads of the commits
    return jetsource::repository<account>{*store_, o};
  }
  // The reads the store asked the server for since the last call (not a consumer's deletion,
  // which the store's reaper may send at any time).
  int reads() {
    api_->flush();
    int n = 0;
    while (natsMsg* m = api_->next(std::chrono::milliseconds{100})) {
      std::string_view subject = natsMsg_GetSubject(m);
      n += subject.starts_with("$JS.API.DIRECT.GET.") ||
           subject.starts_with("$JS.API.STREAM.MSG.GET.") ||
           subject.starts_with("$JS.API.CONSUMER.CREATE.");  // a read of 3+ commits
      natsMsg_Destroy(m);
    }
    return n;
  }
  std::uint64_t last_seq() {
    auto s = store_->last_sequence();
    EXPECT_TRUE(s) << s.error();
    return s ? *s : 0;
  }
  std::optional<jetsource::event_store> store_;
  std::optional<jetsource::test::subject_watcher> api_;
};

TEST_F(PresumeNewTest, ACreateAppendsWithoutReadingTheStream) {
  auto r = repo();
  (void)reads();
  auto opened = r.execute("acc-new", open_account{"ada", 500});
  ASSERT_TRUE(opened) << opened.error();
  EXPECT_EQ(opened->version, 2u);
  EXPECT_EQ(opened->attempts, 1);
  EXPECT_EQ(reads(), 0);

  // The same create with the option off reads the (empty) aggregate first.
  jetsource::repository_options off;
  off.presume_new = false;
  auto loading = repo(off);
  ASSERT_TRUE(loading.execute("acc-other", open_account{"bob", 0}));
  EXPECT_GE(reads(), 1);
}

TEST_F(PresumeNewTest, ACreateOfAnAggregateThatExistsIsRefusedThenRejectedOnItsLoadedState) {
  ASSERT_TRUE(repo().execute("acc-1", open_account{"ada", 500}));
  const auto before = last_seq();

  auto other = repo();  // nothing cached: acc-1 is presumed new, and it is not
  auto again = other.execute("acc-1", open_account{"eve", 900});
  ASSERT_FALSE(again);
  EXPECT_TRUE(again.error().is(account_error::already_open)) << again.error();
  EXPECT_EQ(last_seq(), before);  // the stream refused the presumed-new commit

  auto l = repo().load("acc-1");
  ASSERT_TRUE(l) << l.error();
  EXPECT_EQ(l->state.owner(), "ada");
  EXPECT_EQ(l->state.balance_cents(), 500);
  EXPECT_EQ(l->version, 2u);
}

TEST_F(PresumeNewTest, ACommandTheEmptyAggregateRejectsIsDecidedOnTheLoadedOne) {
  ASSERT_TRUE(repo().execute("acc-2", open_account{"ada", 500}));
  auto other = repo();
  (void)reads();
  auto paid = other.execute("acc-2", deposit{250, "pay"});
  ASSERT_TRUE(paid) << paid.error();
  EXPECT_EQ(paid->version, 3u);
  EXPECT_EQ(paid->attempts, 1);  // the presumption costs no attempt
  EXPECT_GE(reads(), 1);         // it was loaded

  auto l = repo().load("acc-2");
  ASSERT_TRUE(l) << l.error();
  EXPECT_EQ(l->state.balance_cents(), 750);
}

TEST_F(PresumeNewTest, ARejectionIsAlwaysMadeOnStateReadFromTheStream) {
  auto r = repo();
  (void)reads();
  auto ghost = r.execute("ghost", deposit{100, "x"});
  ASSERT_FALSE(ghost);
  EXPECT_TRUE(ghost.error().is(account_error::not_open)) << ghost.error();
  EXPECT_GE(reads(), 1);
  EXPECT_EQ(last_seq(), 0u);
}

TEST_F(PresumeNewTest, TheAsyncPathPresumesTheSame) {
  ASSERT_TRUE(repo().execute("acc-3", open_account{"ada", 500}));
  auto r = repo();
  (void)reads();
  std::promise<jetsource::result<jetsource::executed>> created, refused;
  ASSERT_TRUE(r.execute_async("acc-new", open_account{"bob", 100},
                              [&](auto out) { created.set_value(std::move(out)); }));
  ASSERT_TRUE(r.execute_async("acc-3", open_account{"eve", 900},
                              [&](auto out) { refused.set_value(std::move(out)); }));
  auto c = created.get_future().get();
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->version, 2u);
  auto f = refused.get_future().get();
  ASSERT_FALSE(f);
  EXPECT_TRUE(f.error().is(account_error::already_open)) << f.error();
  EXPECT_GE(reads(), 1);  // acc-3, after the refusal; acc-new read nothing (first test)
  auto l = repo().load("acc-3");
  ASSERT_TRUE(l) << l.error();
  EXPECT_EQ(l->state.owner(), "ada");
}

TEST_F(PresumeNewTest, ARetriedCreateWithItsCommandIdLandsOnce) {
  jetsource::command_context ctx{.command_id = "cmd-open-acc-4"};
  auto first = repo().execute("acc-4", open_account{"ada", 500}, ctx);
  ASSERT_TRUE(first) << first.error();
  const auto before = last_seq();
  auto retried = repo().execute("acc-4", open_account{"ada", 500}, ctx);  // a fresh process
  ASSERT_TRUE(retried) << retried.error();
  EXPECT_EQ(retried->status, jetsource::append_status::already_appended);
  EXPECT_EQ(retried->sequence, first->sequence);
  EXPECT_EQ(last_seq(), before);
}

}  // namespace
