// jetsource::detail::command_meters: the repository's series of one aggregate type.
#include <jetsource/detail/command_meters.hpp>

namespace jetsource::detail {

command_meters::command_meters(metrics::registry* r, std::string_view aggregate_type) {
  if (r == nullptr) return;
  auto& commands = r->counters(
      "jetsource_commands_total",
      "Commands executed by repositories, by aggregate type and outcome: appended, "
      "already_appended (a retried command id), conflict_retried (appended after losing the "
      "optimistic concurrency check at least once), rejected (a domain rule), failed.",
      {"aggregate", "outcome"});
  constexpr std::array<std::string_view, 5> names{"appended", "already_appended",
                                                  "conflict_retried", "rejected", "failed"};
  for (std::size_t i = 0; i < names.size(); ++i)
    outcomes_[i] = &commands.with({aggregate_type, names[i]});
  append_ = &r->histograms("jetsource_append_duration_seconds",
                           "Time from sending a commit to the server's answer (ack, conflict or "
                           "error), per attempt, by aggregate type.",
                           {"aggregate"})
                 .with({aggregate_type});
}

}  // namespace jetsource::detail
