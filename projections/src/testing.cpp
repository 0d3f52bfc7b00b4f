// jetsource::testing::projection_test: the projector's apply path over an in-memory database.
#include <jetsource/testing/projection_test.hpp>

#include "applier.hpp"

namespace jetsource::testing {

using detail::owned_commit;

struct projection_test::state {
  explicit state(projection p) : proj(std::move(p)) {}

  projection proj;
  std::optional<sqlite::database> db;
  std::optional<detail::applier> apply;
  std::optional<error> setup_error;
  std::map<std::string, std::uint64_t> versions;  // per aggregate key, given so far
  std::map<std::uint64_t, owned_commit> commits;  // by sequence
  std::uint64_t sequence = 0;

  result<void> run(const owned_commit& c, std::uint64_t seq) {
    std::vector<detail::envelope> batch;
    batch.push_back(c.view(seq));
    JETSOURCE_TRY(out, apply->apply(*db, batch, seq));
    if (out.done.empty())
      return make_error(errc::conflict, "commit {} of {}/{} is held: an earlier version is missing",
                        seq, c.type, c.id);
    return success();
  }
};

projection_test::projection_test(projection p) : state_(std::make_unique<state>(std::move(p))) {
  auto db = sqlite::database::open(":memory:");
  if (!db) {
    state_->setup_error = db.error();
    return;
  }
  state_->db.emplace(std::move(db).value());
  auto version = detail::prepare_database(*state_->db, state_->proj, "TEST", "test");
  if (!version) state_->setup_error = version.error();
  state_->apply.emplace(state_->proj);
}

projection_test::~projection_test() = default;

result<void> projection_test::apply_commit(std::string_view aggregate_type,
                                           std::string_view aggregate_id,
                                           std::string_view event_types, std::string body,
                                           std::uint64_t version) {
  if (state_->setup_error) return *state_->setup_error;
  std::size_t count = 1;
  for (char c : event_types) count += c == ',';
  auto& so_far = state_->versions[detail::aggregate_key(aggregate_type, aggregate_id)];
  if (version == 0) version = so_far + count;
  so_far = std::max(so_far, version);
  auto seq = ++state_->sequence;
  owned_commit c{fmt::format("test.{}.0.{}", aggregate_type, aggregate_id),
                 std::string(aggregate_type),
                 std::string(aggregate_id),
                 std::string(event_types),
                 fmt::format("commit-{}", seq),
                 std::to_string(version),
                 std::move(body)};
  auto& stored = state_->commits[seq] = std::move(c);
  return state_->run(stored, seq);
}

result<void> projection_test::redeliver(std::uint64_t sequence) {
  if (state_->setup_error) return *state_->setup_error;
  auto it = state_->commits.find(sequence);
  if (it == state_->commits.end())
    return make_error(errc::not_found, "no commit with sequence {} was given", sequence);
  return state_->run(it->second, sequence);
}

sqlite::database& projection_test::db() {
  return *state_->db;
}

result<std::vector<dead_letter>> projection_test::dead_letters() {
  if (state_->setup_error) return *state_->setup_error;
  return read_dead_letters(*state_->db);
}

result<std::size_t> projection_test::retry(std::string_view aggregate_type,
                                           std::string_view aggregate_id) {
  if (state_->setup_error) return *state_->setup_error;
  return state_->apply->retry(*state_->db, aggregate_type, aggregate_id, false);
}

result<std::size_t> projection_test::skip(std::string_view aggregate_type,
                                          std::string_view aggregate_id) {
  if (state_->setup_error) return *state_->setup_error;
  return state_->apply->retry(*state_->db, aggregate_type, aggregate_id, true);
}

const std::optional<error>& projection_test::setup_error() const noexcept {
  return state_->setup_error;
}

}  // namespace jetsource::testing
