// Backup and restore of a bounded context (jetsource::backup / restore): taken while a writer
// keeps appending, restored into a second, empty nats-server; aggregates load to the same state
// and version, the read models rebuilt from the restored stream equal the original's; an
// incremental chain restores to the same; a non-empty target is refused, a prefix continued; a
// stream with gaps is restored in order.
#include "backup_fixture.hpp"

#include <atomic>
#include <thread>

namespace jetsource::test {
namespace {

using order_system::order;

TEST_F(backup_test, ABackupTakenWhileWritingRestoresToTheSameAggregatesAndReadModels) {
  seed(60);
  const auto before = *orders_store().last_sequence();
  // A writer keeps appending (new orders) during the backup.
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::thread writer([&] {
    repository<order> repo{orders_store()};
    for (int i = 1000; !stop; ++i) {
      drive(repo, fmt::format("w-{}", i), i);
      ++written;
    }
  });
  while (written < 3) std::this_thread::sleep_for(1ms);
  std::vector<backup_progress> seen;
  auto full = backup(*conn_, "ORDERS", file("full.jsbk"),
                     {.progress = [&](const backup_progress& p) { seen.push_back(p); }});
  const int during = written;
  while (written < during + 3) std::this_thread::sleep_for(1ms);  // and keeps going after it
  stop = true;
  writer.join();
  ASSERT_TRUE(full) << full.error();
  EXPECT_GT(full->last_sequence, before);         // the writer's commits up to the start are in
  EXPECT_EQ(full->records, full->last_sequence);  // 1..last, no gap
  EXPECT_EQ(full->from_sequence, 1u);
  EXPECT_EQ(full->sha256.size(), 64u);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().done, full->last_sequence);
  EXPECT_EQ(seen.back().total, full->last_sequence);
  const auto last = *orders_store().last_sequence();
  ASSERT_GT(last, full->last_sequence) << "the writer appended after the backup began";

  auto info = verify_backup(file("full.jsbk"));
  ASSERT_TRUE(info) << info.error();
  EXPECT_EQ(info->records, full->records);
  EXPECT_EQ(info->sha256, full->sha256);
  EXPECT_EQ(info->stream.name, "ORDERS");
  EXPECT_EQ(info->stream.subject_prefix, "orders");
  EXPECT_EQ(info->stream.partitions, order_system::orders_stream().partitions);
  EXPECT_EQ(info->stream.duplicate_window, 120s);
  EXPECT_FALSE(info->previous);

  // The rest, incrementally.
  auto inc = backup(*conn_, "ORDERS", file("inc.jsbk"), {.from_sequence = full->last_sequence + 1});
  ASSERT_TRUE(inc) << inc.error();
  EXPECT_EQ(inc->last_sequence, last);
  EXPECT_EQ(inc->records, last - full->last_sequence);

  second_server target;
  ASSERT_TRUE(target.conn);
  auto r1 = restore(*target.conn, file("full.jsbk"));
  ASSERT_TRUE(r1) << r1.error();
  EXPECT_EQ(r1->records, full->records);
  EXPECT_EQ(r1->last_sequence, full->last_sequence);
  EXPECT_FALSE(r1->renumbered);
  EXPECT_EQ(messages(*target.conn, "ORDERS", full->last_sequence),
            messages(*conn_, "ORDERS", full->last_sequence));
  // The incremental one onto it.
  auto r2 = restore(*target.conn, file("inc.jsbk"));
  ASSERT_TRUE(r2) << r2.error();
  EXPECT_EQ(r2->first_sequence, full->last_sequence + 1);
  EXPECT_EQ(r2->last_sequence, last);
  EXPECT_EQ(messages(*target.conn, "ORDERS", last), messages(*conn_, "ORDERS", last));

  // Every aggregate loads to the same state and version.
  auto restored = event_store::open(*target.conn, order_system::orders_stream());
  ASSERT_TRUE(restored) << restored.error();
  repository<order> original_repo{orders_store()}, restored_repo{*restored};
  std::vector<std::string> ids;
  for (int i = 0; i < 60; ++i) ids.push_back(fmt::format("o-{}", i));
  for (int i = 1000; i < 1000 + written; ++i) ids.push_back(fmt::format("w-{}", i));
  for (const auto& id : ids) {
    auto a = original_repo.load(id);
    auto b = restored_repo.load(id);
    ASSERT_TRUE(a && b) << id;
    EXPECT_EQ(describe(*b), describe(*a)) << id;
    EXPECT_EQ(b->sequence, a->sequence) << id;
  }
  // Every read model rebuilt from the restored stream equals the original's.
  auto original_models = read_models(*conn_, dir_.path() / "models-original");
  auto restored_models = read_models(*target.conn, target.dir.path() / "models-restored");
  EXPECT_GT(original_models.size(), 100u);
  EXPECT_EQ(restored_models, original_models);
}

TEST_F(backup_test, ARestoreIsRefusedIntoAStreamWithOtherMessagesAndRepeatsAsANoOp) {
  seed(5);
  auto full = backup(*conn_, "ORDERS", file("full.jsbk"));
  ASSERT_TRUE(full) << full.error();
  // The source server itself already holds ORDERS (other messages than a prefix? no: the same
  // ones): a restore there is a no-op, the file's commits being all present.
  auto again = restore(*conn_, file("full.jsbk"));
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(again->records, 0u);
  EXPECT_EQ(*orders_store().last_sequence(), full->last_sequence);

  second_server target;
  ASSERT_TRUE(target.conn);
  {
    auto other = event_store::open(*target.conn, order_system::orders_stream());
    ASSERT_TRUE(other) << other.error();
    repository<order> repo{*other};
    ASSERT_TRUE(repo.execute("x-1", order_system::create_order{"c-x", {}}));
  }
  auto r = restore(*target.conn, file("full.jsbk"));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::conflict)) << r.error();
  EXPECT_NE(r.error().message.find("already has 1 messages"), std::string::npos) << r.error();
  auto other = event_store::open(*target.conn, order_system::orders_stream());
  ASSERT_TRUE(other);
  EXPECT_EQ(*other->last_sequence(), 1u) << "nothing written";

  // An incremental backup applied to a stream it does not continue is refused too.
  auto inc = backup(*conn_, "ORDERS", file("inc.jsbk"), {.from_sequence = 3});
  ASSERT_TRUE(inc) << inc.error();
  auto ri = restore(*target.conn, file("inc.jsbk"));
  ASSERT_FALSE(ri);
  EXPECT_TRUE(ri.error().is(errc::conflict)) << ri.error();
  EXPECT_EQ(*other->last_sequence(), 1u) << "nothing written";
}

TEST_F(backup_test, ARestoreContinuesAStreamHoldingTheFirstCommitsOfItsFile) {
  // What an interrupted restore leaves: the first commits of the file. Made here by restoring
  // an earlier backup of the same stream first.
  seed(4);
  auto early = backup(*conn_, "ORDERS", file("early.jsbk"));
  ASSERT_TRUE(early) << early.error();
  seed(8);  // more commits on o-0..o-3 (those their state accepts), then o-4..o-7
  auto full = backup(*conn_, "ORDERS", file("full.jsbk"));
  ASSERT_TRUE(full) << full.error();
  ASSERT_GT(full->last_sequence, early->last_sequence);

  second_server target;
  ASSERT_TRUE(target.conn);
  ASSERT_TRUE(restore(*target.conn, file("early.jsbk")));
  std::vector<backup_progress> seen;
  auto r = restore(*target.conn, file("full.jsbk"),
                   {.progress = [&](const backup_progress& p) { seen.push_back(p); }});
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->first_sequence, early->last_sequence + 1);
  EXPECT_EQ(r->records, full->last_sequence - early->last_sequence);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().done, full->records);
  EXPECT_EQ(seen.back().total, full->records);
  EXPECT_EQ(messages(*target.conn, "ORDERS", full->last_sequence),
            messages(*conn_, "ORDERS", full->last_sequence));
}

TEST_F(backup_test, AStreamWithGapsIsRestoredInOrderAndRenumbered) {
  // Not a stream jetsource made (those deny deletes): one with the same shape whose messages 2,
  // 4 and 6 (the last) were deleted.
  auto* js = detail::state_of(*conn_)->js.get();
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  const char* subjects[] = {"gappy.>"};
  cfg.Name = "GAPPY";
  cfg.Description = "jetsource event store; partitions=4";
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.AllowDirect = true;
  cfg.Duplicates = std::chrono::nanoseconds{120s}.count();
  ASSERT_EQ(js_AddStream(nullptr, js, &cfg, nullptr, nullptr), NATS_OK);
  for (int i = 1; i <= 6; ++i) {
    natsMsg* raw = nullptr;
    auto body = fmt::format("commit {}", i);
    ASSERT_EQ(natsMsg_Create(&raw, fmt::format("gappy.T.0.a-{}", i).c_str(), nullptr, body.data(),
                             static_cast<int>(body.size())),
              NATS_OK);
    detail::msg_ptr m(raw);
    natsMsgHeader_Set(m.get(), "Nats-Msg-Id", fmt::format("id-{}", i).c_str());
    ASSERT_EQ(js_PublishMsg(nullptr, js, m.get(), nullptr, nullptr), NATS_OK);
  }
  ASSERT_EQ(js_DeleteMsg(js, "GAPPY", 2, nullptr, nullptr), NATS_OK);
  ASSERT_EQ(js_DeleteMsg(js, "GAPPY", 4, nullptr, nullptr), NATS_OK);
  ASSERT_EQ(js_DeleteMsg(js, "GAPPY", 6, nullptr, nullptr), NATS_OK);

  auto full = backup(*conn_, "GAPPY", file("gappy.jsbk"));
  ASSERT_TRUE(full) << full.error();
  EXPECT_EQ(full->records, 3u);
  EXPECT_EQ(full->last_sequence, 6u);  // the stream's, though deleted
  // An incremental backup must continue an existing message.
  auto inc = backup(*conn_, "GAPPY", file("inc.jsbk"), {.from_sequence = 3});
  ASSERT_FALSE(inc);
  EXPECT_TRUE(inc.error().is(errc::not_found)) << inc.error();

  second_server target;
  ASSERT_TRUE(target.conn);
  auto r = restore(*target.conn, file("gappy.jsbk"));
  ASSERT_TRUE(r) << r.error();
  EXPECT_TRUE(r->renumbered);
  EXPECT_EQ(r->last_sequence, 3u);
  auto restored = messages(*target.conn, "GAPPY", 3);
  ASSERT_EQ(restored.size(), 3u);
  const int original[] = {1, 3, 5};
  for (std::size_t k = 0; k < 3; ++k)
    EXPECT_EQ(restored[k], fmt::format("{} gappy.T.0.a-{} Nats-Msg-Id=id-{} commit {}", k + 1,
                                       original[k], original[k], original[k]));
}

}  // namespace
}  // namespace jetsource::test
