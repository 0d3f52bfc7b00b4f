// Backup and restore of a bounded context (jetsource::backup / restore / verify_backup): taken
// while a writer keeps appending, restored into a second, empty nats-server; aggregates load to
// the same state and version, the read models rebuilt from the restored stream equal the
// original's; an incremental chain restores to the same; damaged files are refused before
// anything is written; a non-empty target is refused.
#include <jetsource/backup.hpp>
#include <jetsource/rebuild.hpp>
#include <jetsource/repository.hpp>
#include <jetsource/sqlite.hpp>

#include <order_system/order.hpp>
#include <order_system/read_models.hpp>
#include <order_system/stream.hpp>

#include "nats/handles.hpp"
#include "nats_fixture.hpp"
#include "second_server.hpp"

#include <atomic>
#include <fstream>
#include <set>
#include <thread>

namespace jetsource::test {
namespace {

using namespace std::chrono_literals;
using order_system::order;

// The state of an order as text (what "loads to the same state" compares).
std::string describe(const loaded<order>& l) {
  std::string s = fmt::format("v{} status {} customer {} total {} items {}:", l.version,
                              static_cast<int>(l.state.status()), l.state.customer_id(),
                              l.state.total_cents(), l.state.item_count());
  for (const auto& line : l.state.lines())
    s += fmt::format(" {}x{}@{}", line.sku, line.qty, line.unit_price_cents);
  return s;
}

// Every message 1..last of a stream: subject, headers (but the publish-time Nats-Expected-*
// checks) and body, one line each.
std::vector<std::string> messages(const connection& c, const std::string& stream,
                                  std::uint64_t last) {
  std::vector<std::string> out;
  auto* js = detail::state_of(c)->js.get();
  for (std::uint64_t seq = 1; seq <= last; ++seq) {
    natsMsg* raw = nullptr;
    EXPECT_EQ(js_GetMsg(&raw, js, stream.c_str(), seq, nullptr, nullptr), NATS_OK) << seq;
    detail::msg_ptr m(raw);
    if (!m) break;
    std::string line = fmt::format("{} {}", seq, natsMsg_GetSubject(m.get()));
    const char** keys = nullptr;
    int n = 0;
    std::set<std::string> sorted;
    if (natsMsgHeader_Keys(m.get(), &keys, &n) == NATS_OK) {
      for (int i = 0; i < n; ++i)
        if (!std::string_view(keys[i]).starts_with("Nats-Expected-")) sorted.insert(keys[i]);
      free(static_cast<void*>(keys));
    }
    for (const auto& k : sorted) line += " " + k + "=" + detail::header(m.get(), k.c_str());
    line += " " + std::string(natsMsg_GetData(m.get()) ? natsMsg_GetData(m.get()) : "",
                              static_cast<std::size_t>(natsMsg_GetDataLength(m.get())));
    out.push_back(std::move(line));
  }
  return out;
}

bool stream_exists(const connection& c, const std::string& name) {
  jsStreamInfo* raw = nullptr;
  natsStatus s =
      js_GetStreamInfo(&raw, detail::state_of(c)->js.get(), name.c_str(), nullptr, nullptr);
  jsStreamInfo_Destroy(raw);
  return s == NATS_OK;
}

class backup_test : public nats_test {
 protected:
  event_store& orders_store() {
    if (!store_) store_.emplace(open_store(order_system::orders_stream()));
    return *store_;
  }
  // Runs a few commands on order `id` (how far depends on `i`), some rejected by the rules.
  void drive(repository<order>& repo, const std::string& id, int i) {
    (void)repo.execute(id, order_system::create_order{fmt::format("c-{}", i % 7), {}});
    (void)repo.execute(id, order_system::add_item{fmt::format("sku-{}", i % 5), 1 + i % 3, 250});
    if (i % 2 == 0) (void)repo.execute(id, order_system::add_item{"gadget", 1, 1000});
    if (i % 3 == 0) return;
    (void)repo.execute(id, order_system::place_order{});
    auto l = repo.load(id);
    if (l && i % 4 != 1) (void)repo.execute(id, order_system::pay_order{l->state.total_cents()});
    if (i % 5 == 0) (void)repo.execute(id, order_system::cancel_order{"changed my mind"});
  }
  void seed(int orders) {
    repository<order> repo{orders_store()};
    for (int i = 0; i < orders; ++i) drive(repo, fmt::format("o-{}", i), i);
  }
  std::filesystem::path file(const std::string& name) const { return dir_.path() / name; }

  // Each read model rebuilt from `stream` on `c` into `dir`: every domain table, ordered, and the
  // versions applied per aggregate.
  static std::vector<std::string> read_models(const connection& c,
                                              const std::filesystem::path& dir) {
    std::vector<std::string> out;
    for (const auto& p : order_system::read_models()) {
      auto r = rebuild(c, p, {.stream = "ORDERS", .database = dir / (p.name() + ".db")});
      EXPECT_TRUE(r) << r.error();
      if (!r) continue;
      auto db = open_read_model(r->file);
      EXPECT_TRUE(db) << db.error();
      if (!db) continue;
      for (const char* table : {"orders", "order_lines", "customers", "products"}) {
        auto rows = db->query(fmt::format("SELECT * FROM {} ORDER BY 1, 2", table));
        if (!rows) continue;  // not this read model's table
        for (const auto& row : *rows) {
          std::string line = fmt::format("{} {}:", p.name(), table);
          for (std::size_t i = 0; i < row.size(); ++i)
            line += sqlite::detail::to_text(row[i]) + "|";
          out.push_back(line);
        }
      }
      auto applied = db->query(
          "SELECT aggregate_type, aggregate_id, version, sequence FROM applied_versions ORDER BY "
          "1, 2");
      EXPECT_TRUE(applied) << applied.error();
      if (applied)
        for (const auto& row : *applied)
          out.push_back(
              fmt::format("{} applied: {}|{}|{}", p.name(), sqlite::detail::to_text(row[1]),
                          sqlite::detail::to_text(row[2]), sqlite::detail::to_text(row[3])));
    }
    return out;
  }

  std::optional<event_store> store_;
};

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

TEST_F(backup_test, ABackupNeverOverwritesAFileAndNamesAMissingStream) {
  std::ofstream(file("exists.jsbk")) << "keep me";
  seed(1);
  auto r = backup(*conn_, "ORDERS", file("exists.jsbk"));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::invalid_argument)) << r.error();
  std::ifstream in(file("exists.jsbk"));
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, "keep me");
  auto missing = backup(*conn_, "NOPE", file("nope.jsbk"));
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(errc::not_found)) << missing.error();
  EXPECT_FALSE(std::filesystem::exists(file("nope.jsbk")));
  EXPECT_FALSE(std::filesystem::exists(file("nope.jsbk.partial")));
}

// A damaged file: refused with errc::corrupt before anything is written (the target stream is
// not even created).
class damaged_backup_test : public backup_test {
 protected:
  std::string bytes_of(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }
  void write(const std::filesystem::path& p, const std::string& b) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << b;
  }
  // Restores `damaged` into a fresh server: must fail with errc::corrupt mentioning `what`, and
  // leave the server without the stream.
  void expect_refused(const std::filesystem::path& damaged, std::string_view what) {
    auto v = verify_backup(damaged);
    ASSERT_FALSE(v);
    EXPECT_TRUE(v.error().is(errc::corrupt)) << v.error();
    second_server target;
    ASSERT_TRUE(target.conn);
    auto r = restore(*target.conn, damaged);
    ASSERT_FALSE(r) << "a damaged file was restored";
    EXPECT_TRUE(r.error().is(errc::corrupt)) << r.error();
    EXPECT_NE(r.error().message.find(what), std::string::npos) << r.error();
    EXPECT_NE(r.error().message.find("nothing written"), std::string::npos) << r.error();
    EXPECT_FALSE(stream_exists(*target.conn, "ORDERS")) << "the target stream was created";
  }
};

TEST_F(damaged_backup_test, AFlippedByteInACommitsBodyIsRefusedByTheChecksum) {
  seed(10);
  ASSERT_TRUE(backup(*conn_, "ORDERS", file("full.jsbk")));
  auto b = bytes_of(file("full.jsbk"));
  // A byte inside a commit's JSON body, well inside the file: its structure stays valid, only
  // the checksum can tell.
  auto at = b.find("\"sku\":\"sku-", b.size() / 2);
  ASSERT_NE(at, std::string::npos);
  b[at + 7] = 'X';
  write(file("flipped.jsbk"), b);
  expect_refused(file("flipped.jsbk"), "checksum mismatch");
}

TEST_F(damaged_backup_test, ATruncatedFileIsRefused) {
  seed(10);
  ASSERT_TRUE(backup(*conn_, "ORDERS", file("full.jsbk")));
  auto b = bytes_of(file("full.jsbk"));
  write(file("cut-end.jsbk"), b.substr(0, b.size() - 10));  // in the checksum
  expect_refused(file("cut-end.jsbk"), "truncated");
  write(file("cut-middle.jsbk"), b.substr(0, b.size() / 2));  // inside a record
  expect_refused(file("cut-middle.jsbk"), "truncated");
  write(file("empty.jsbk"), "");
  expect_refused(file("empty.jsbk"), "truncated");
}

TEST_F(damaged_backup_test, AFileThatIsNotABackupIsRefusedByItsMagic) {
  seed(2);
  ASSERT_TRUE(backup(*conn_, "ORDERS", file("full.jsbk")));
  auto b = bytes_of(file("full.jsbk"));
  b[0] = 'X';
  write(file("magic.jsbk"), b);
  expect_refused(file("magic.jsbk"), "does not start with JSBACKUP");
  write(file("text.jsbk"), "hello, this is not a backup at all\n");
  expect_refused(file("text.jsbk"), "JSBACKUP");
  auto missing = verify_backup(file("missing.jsbk"));
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(errc::not_found)) << missing.error();
}

}  // namespace
}  // namespace jetsource::test
