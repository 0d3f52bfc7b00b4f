// The library's own metrics under load: repositories count commands from many threads (sync and
// pipelined) while a projector applies them and another thread scrapes the registry, which reads
// the projector's state; the projector then goes away in the middle of the scrapes. Also run
// under ThreadSanitizer (label `concurrent`).
#include <jetsource/metrics.hpp>

#include "projector_fixture.hpp"

#include <atomic>
#include <sstream>
#include <thread>
#include <vector>

namespace jetsource::test {
namespace {

using namespace std::chrono_literals;

std::optional<double> sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  return std::nullopt;
}

TEST_F(projector_test, ScrapesWhileCommandsRunAndAProjectorAppliesAndGoes) {
  metrics::registry reg;
  repository<bank::account> repo{*store_, {.metrics = &reg}};
  auto o = options("balances.db", 4);
  o.metrics = &reg;
  std::optional<projector> p = start(o);

  const std::string appended =
      R"(jetsource_commands_total{aggregate="Account",outcome="appended"})";
  std::atomic<bool> scraping{true};
  std::atomic<int> scrapes{0};
  std::thread scraper([&] {
    double last = 0;
    while (scraping) {
      auto text = metrics::render_prometheus(reg);
      auto v = sample(text, appended).value_or(0);
      EXPECT_GE(v, last) << "a counter went down between scrapes";
      last = v;
      ++scrapes;
    }
  });

  constexpr int threads = 4, accounts = 10, deposits = 5;
  std::atomic<std::uint64_t> last_sequence{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < threads; ++t)
    writers.emplace_back([&, t] {
      for (int a = 0; a < accounts; ++a) {
        auto id = fmt::format("acc-{}-{}", t, a);
        auto opened = repo.execute(id, bank::open_account{"o"});
        ASSERT_TRUE(opened) << opened.error();
        for (int d = 0; d < deposits; ++d)
          ASSERT_TRUE(repo.execute_async(id, bank::deposit{1, "d"}, [&](result<executed> r) {
            ASSERT_TRUE(r) << r.error();
            auto seq = r->sequence;
            auto seen = last_sequence.load();
            while (seq > seen && !last_sequence.compare_exchange_weak(seen, seq)) {
            }
          }));
      }
    });
  for (auto& w : writers) w.join();
  ASSERT_TRUE(repo.flush());
  ASSERT_TRUE(p->wait_for(last_sequence.load(), 30s));
  while (scrapes.load() < 3) std::this_thread::yield();
  p.reset();  // its collector goes while scrapes run
  const int before = scrapes.load();
  while (scrapes.load() < before + 2) std::this_thread::yield();
  scraping = false;
  scraper.join();

  auto text = metrics::render_prometheus(reg);
  EXPECT_EQ(sample(text, appended), threads * accounts * (1 + deposits)) << text;
  EXPECT_EQ(text.find("projection=\"balances\""), std::string::npos) << text;
}

}  // namespace
}  // namespace jetsource::test
