// jetsource::detail::check_integrity: the start-up check of a projection database.
#include "integrity.hpp"

#include <string>

namespace jetsource::detail {

error rebuild_needed(const std::filesystem::path& file, const error& cause) {
  return make_error(errc::corrupt, "rebuild needed: {} is damaged ({})", file.string(),
                    cause.message);
}

result<void> check_integrity(sqlite::database& db, const std::filesystem::path& file) {
  auto rows = db.query("PRAGMA quick_check(3)");  // at most 3 problems: enough to say why
  if (!rows) {
    if (is_corrupt(rows.error())) return rebuild_needed(file, rows.error());
    return std::move(rows).error();
  }
  std::string problems;
  for (const auto& r : *rows) {
    auto line = r.get<std::string>(0);
    if (line == "ok") continue;
    problems += (problems.empty() ? "" : "; ") + line;
  }
  if (problems.empty()) return success();
  return rebuild_needed(file, error{errc::corrupt, "quick_check: " + problems});
}

}  // namespace jetsource::detail
