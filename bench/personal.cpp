// personal: the cost of crypto-shredding (issue 15 §3). The same aggregate shape appended and
// loaded with two personal<std::string> fields (encrypted per data subject, keys in jsk-<STREAM>)
// and with plain strings, in the same run: append (repository::execute of a new aggregate) and
// cold load (a repository without cache) medians, their ratio, and the key cache's hit rate.
// 200 data subjects over the aggregates: the first write of a subject creates its key.
#include "bench.hpp"

#include <jetsource/personal.hpp>
#include <jetsource/repository.hpp>

namespace bench {

namespace {

template <class Field>
struct registered {
  static constexpr std::string_view type_name = "Registered";
  std::string subject;
  Field name, email;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(subject), CEREAL_NVP(name), CEREAL_NVP(email));
  }
};

struct register_member {
  std::string subject, name, email;
};

template <class Field>
class member {
 public:
  static constexpr std::string_view type_name = "Member";
  using event = std::variant<registered<Field>>;
  jetsource::decision<event> handle(const register_member& c) const {
    if constexpr (std::is_same_v<Field, std::string>)
      return registered<Field>{c.subject, c.name, c.email};
    else
      return registered<Field>{c.subject, {c.subject, c.name}, {c.subject, c.email}};
  }
  void apply(const registered<Field>& e) { subject_ = e.subject; }

 private:
  std::string subject_;
};

constexpr int subjects = 200;

struct timings {
  summary append_us, load_us;
};

template <class Field>
timings run_one(const env& e, const std::string& stream, std::int64_t n) {
  stream_guard guard(e, stream);
  auto store = must(jetsource::event_store::open(*e.conn, store_options_for(stream)), "open");
  jetsource::repository<member<Field>> writer{store, {.cache_capacity = 0}};
  std::vector<double> append_us, load_us;
  for (std::int64_t i = 0; i < n; ++i) {
    auto t0 = clock_type::now();
    auto r = writer.execute(
        fmt::format("m-{}", i),
        register_member{fmt::format("s-{}", i % subjects), "Ann Example " + std::to_string(i),
                        fmt::format("ann.{}@example.com", i)});
    if (!r) throw failure(fmt::format("append: {}", r.error()));
    append_us.push_back(micros_since(t0));
  }
  for (std::int64_t i = 0; i < n; ++i) {
    auto t0 = clock_type::now();
    auto l = writer.load(fmt::format("m-{}", i));
    if (!l) throw failure(fmt::format("load: {}", l.error()));
    load_us.push_back(micros_since(t0));
  }
  return {summarize(std::move(append_us)), summarize(std::move(load_us))};
}

}  // namespace

void run_personal(const env& e) {
  const std::int64_t n = e.opt.events.value_or(2000);
  auto keys = must(jetsource::key_store::open(*e.conn, {.stream = "BENCH_PII_" + e.tag}), "keys");
  jetsource::key_scope scope(keys);
  note("personal: {} appends and loads, with and without personal fields", n);
  auto plain = run_one<std::string>(e, "BENCH_PLAIN_" + e.tag, n);
  auto pii = run_one<jetsource::personal<std::string>>(e, "BENCH_PII_" + e.tag, n);
  auto stats = keys.cache_stats();
  line("personal")
      .kv("events", n)
      .stats("append_us", pii.append_us)
      .stats("load_us", pii.load_us)
      .kv("append_ratio", pii.append_us.median / plain.append_us.median)
      .kv("load_ratio", pii.load_us.median / plain.load_us.median)
      .kv("key_cache_hit_rate",
          static_cast<double>(stats.hits) / static_cast<double>(stats.hits + stats.misses))
      .kv("key_lookups", stats.misses)
      .print();
  line("raw_personal").stats("append_us", plain.append_us).stats("load_us", plain.load_us).print();
  jsErrCode err = static_cast<jsErrCode>(0);
  (void)js_DeleteStream(e.raw_js, ("KV_" + keys.bucket()).c_str(), nullptr, &err);
}

}  // namespace bench
