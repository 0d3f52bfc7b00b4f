// detail: dead-letter retry / skip from any process (request_retry, request_skip). With no
// projector on the database the caller repairs it itself, holding <db>.lock; with one, the
// request goes through <db>.requests/ and the projector's fetcher hands it to the worker that
// owns the aggregate, which writes the answer back:
//
//   caller: <token>.request  ->  projector: renames it <token>.taken (claimed), posts the repair
//   worker: writes <token>.answer, removes <token>.taken  ->  caller: reads and removes the answer
//
// A request is withdrawn by removing <token>.request: the rename and the removal cannot both
// succeed, so a request is carried out once. A projector that stops before running it renames
// it back, and the caller, now able to take the lock, does it itself.
#include "files.hpp"
#include "log.hpp"
#include "projector_state.hpp"

#include <nlohmann/json.hpp>

#include <random>
#include <thread>

namespace jetsource {

namespace detail {

namespace {

using clock = std::chrono::steady_clock;

path requests_dir(const path& database) {
  return with_suffix(database, ".requests");
}

path sibling(const path& request, std::string_view extension) {
  auto p = request;
  p.replace_extension(extension);
  return p;
}

// The repair itself, on a database no one else writes to meanwhile: errc::not_found when the
// aggregate has no dead letters.
result<std::size_t> repair(applier& a, sqlite::database& db, std::string_view type,
                           std::string_view id, bool skip) {
  JETSOURCE_TRY(row, db.query_one("SELECT count(*) FROM dead_letters "
                                  "WHERE aggregate_type = ?1 AND aggregate_id = ?2",
                                  type, id));
  if (!row || row->get<std::int64_t>(0) == 0)
    return make_error(errc::not_found, "{} {} has no dead letters", type, id);
  return a.retry(db, type, id, skip);
}

std::string answer_of(const result<std::size_t>& r) {
  nlohmann::json j =
      r ? nlohmann::json{{"remaining", *r}}
        : nlohmann::json{{"error", to_string(r.error().code)}, {"message", r.error().message}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

errc errc_named(std::string_view name) {
  for (int c = static_cast<int>(errc::invalid_argument); c <= static_cast<int>(errc::corrupt); ++c)
    if (to_string(static_cast<errc>(c)) == name) return static_cast<errc>(c);
  return errc::internal;
}

result<std::size_t> read_answer(const path& file, const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return make_error(errc::internal, "unreadable answer {}: {}", file.string(), text);
  if (j.contains("remaining")) return j["remaining"].get<std::size_t>();
  return make_error(errc_named(j.value("error", "internal")), "{}", j.value("message", text));
}

// Done here: the caller holds <db>.lock, so no projector applies meanwhile.
result<std::size_t> repair_here(const projection& p, const projector_options& o,
                                std::string_view type, std::string_view id, bool skip) {
  auto so = o.sqlite;
  so.create = false;
  JETSOURCE_TRY(db, sqlite::database::open(current_file(o.database).string(), so));
  applier a(p);
  return repair(a, db, type, id, skip);
}

std::string new_token() {
  std::random_device random;
  return fmt::format("{:08x}{:08x}", random(), random());
}

result<dead_letter_repair> request_repair(const projection& p, const projector_options& o,
                                          std::string_view type, std::string_view id, bool skip,
                                          std::chrono::milliseconds timeout) {
  if (type.empty() || id.empty())
    return make_error(errc::invalid_argument, "dead letters: no aggregate type or id given");
  if (!std::filesystem::exists(current_file(o.database)))
    return make_error(errc::not_found, "no read model at {}", current_file(o.database).string());
  const auto dir = requests_dir(o.database);
  const auto request = dir / (new_token() + ".request");
  const auto answer = sibling(request, ".answer");
  const auto deadline = clock::now() + timeout;
  bool sent = false;
  for (;;) {
    std::error_code ec;
    auto lock = file_lock::try_acquire(with_suffix(o.database, ".lock"));
    if (lock && (!sent || std::filesystem::remove(request, ec))) {
      JETSOURCE_TRY(left, repair_here(p, o, type, id, skip));
      return dead_letter_repair{left, false};
    }
    if (!lock && !lock.error().is(errc::busy)) return std::move(lock).error();
    if (!lock && !sent) {
      std::filesystem::create_directories(dir, ec);
      nlohmann::json j = {
          {"action", skip ? "skip" : "retry"}, {"aggregate_type", type}, {"aggregate_id", id}};
      JETSOURCE_TRY(write_text(request, j.dump()));
      sent = true;
    }
    if (auto text = read_text(answer)) {
      std::filesystem::remove(answer, ec);
      JETSOURCE_TRY(left, read_answer(answer, *text));
      return dead_letter_repair{left, true};
    }
    if (clock::now() >= deadline) {
      if (std::filesystem::remove(request, ec))
        return make_error(errc::timeout,
                          "the projector running on {} did not take the request within {} ms",
                          o.database.string(), timeout.count());
      return make_error(errc::timeout,
                        "the projector running on {} took the request but did not answer within "
                        "{} ms; it may still carry it out",
                        o.database.string(), timeout.count());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

void projector_state::serve_repair_requests() {
  std::error_code ec;
  const auto dir = requests_dir(opts.database);
  if (!std::filesystem::is_directory(dir, ec)) return;
  std::vector<path> requests;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
    if (entry.path().extension() == ".request") requests.push_back(entry.path());
  for (const auto& request : requests) {
    const auto taken = sibling(request, ".taken"), answer = sibling(request, ".answer");
    std::filesystem::rename(request, taken, ec);
    if (ec) continue;  // withdrawn meanwhile
    auto j = nlohmann::json::parse(read_text(taken).value_or(""), nullptr, false);
    auto field = [&](const char* k) { return j.is_object() ? j.value(k, "") : std::string(); };
    const auto action = field("action"), type = field("aggregate_type"), id = field("aggregate_id");
    if ((action != "retry" && action != "skip") || type.empty() || id.empty()) {
      (void)write_text(answer, answer_of(make_error(errc::invalid_argument,
                                                    "bad dead-letter request {}", taken.string())));
      std::filesystem::remove(taken, ec);
      continue;
    }
    auto& slot = *slots[workers->index_of(id)];
    bool posted =
        workers->post(id, [this, &slot, taken, answer, type, id, skip = action == "skip"] {
          auto r = [&] {
            std::lock_guard dl(db_mutex);
            return repair(*slot.apply, *db, type, id, skip);
          }();
          log()->info("projection {}: {} of {} {} requested by another process: {}", proj.name(),
                      skip ? "skip" : "retry", type, id, r ? "done" : to_string(r.error()));
          (void)write_text(answer, answer_of(r));
          std::error_code gone;
          std::filesystem::remove(taken, gone);
        });
    // Stopping: give it back; the caller takes the lock once it is free and does it itself.
    if (!posted) std::filesystem::rename(taken, request, ec);
  }
}

}  // namespace detail

result<dead_letter_repair> request_retry(const projection& p, const projector_options& o,
                                         std::string_view aggregate_type,
                                         std::string_view aggregate_id,
                                         std::chrono::milliseconds timeout) {
  return detail::request_repair(p, o, aggregate_type, aggregate_id, false, timeout);
}

result<dead_letter_repair> request_skip(const projection& p, const projector_options& o,
                                        std::string_view aggregate_type,
                                        std::string_view aggregate_id,
                                        std::chrono::milliseconds timeout) {
  return detail::request_repair(p, o, aggregate_type, aggregate_id, true, timeout);
}

}  // namespace jetsource
