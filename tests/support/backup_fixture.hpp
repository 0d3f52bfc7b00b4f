// Test support: the fixture of the backup tests: a store of orders seeded through the
// repository, what "the same" means for an order, a stream's messages and a stream's existence.
#pragma once

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

#include <cstdlib>
#include <set>
#include <string>
#include <vector>

namespace jetsource::test {

using namespace std::chrono_literals;

// The state of an order as text (what "loads to the same state" compares).
inline std::string describe(const loaded<order_system::order>& l) {
  std::string s = fmt::format("v{} status {} customer {} total {} items {}:", l.version,
                              static_cast<int>(l.state.status()), l.state.customer_id(),
                              l.state.total_cents(), l.state.item_count());
  for (const auto& line : l.state.lines())
    s += fmt::format(" {}x{}@{}", line.sku, line.qty, line.unit_price_cents);
  return s;
}

// Every message 1..last of a stream: subject, headers (but the publish-time Nats-Expected-*
// checks) and body, one line each.
inline std::vector<std::string> messages(const connection& c, const std::string& stream,
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

inline bool stream_exists(const connection& c, const std::string& name) {
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
  void drive(repository<order_system::order>& repo, const std::string& id, int i) {
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
    repository<order_system::order> repo{orders_store()};
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

}  // namespace jetsource::test
