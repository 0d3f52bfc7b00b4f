// `order-system backup PATH` and `order-system restore PATH`: the ORDERS stream to a backup file
// and back (jetsource::backup / jetsource::restore), a progress bar on stderr when it is a
// terminal, one summary line (or --json) on stdout. Read models are not in the file: after a
// restore, `projections rebuild` (or `serve`) builds them from the restored stream.
#include "cli.hpp"

#include <jetsource/backup.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

namespace order_system::cli {

namespace {

struct backup_command_options {
  std::string path;
  std::uint64_t from_sequence = 1;
  std::string stream;  // restore: "" = the name recorded in the file
  bool json = false;
};

// The progress bar, redrawn in place on a terminal; nothing otherwise.
jetsource::backup_progress_callback progress_bar(const char* label) {
  if (::isatty(STDERR_FILENO) == 0) return {};
  return [label](const jetsource::backup_progress& p) {
    const double f = p.total > 0
                         ? std::min(1.0, static_cast<double>(p.done) / static_cast<double>(p.total))
                         : 1.0;
    constexpr int width = 30;
    const int filled = static_cast<int>(f * width);
    fmt::print(stderr, "\r{:<8} [{}{}] {:5.1f}% {}/{} commits, {:.1f} MB   ", label,
               std::string(static_cast<std::size_t>(filled), '#'),
               std::string(static_cast<std::size_t>(width - filled), '.'), f * 100, p.done, p.total,
               static_cast<double>(p.bytes) / 1e6);
  };
}

void end_bar(const jetsource::backup_progress_callback& bar) {
  if (bar) fmt::print(stderr, "\n");
}

// The backup commands' exit codes: a damaged file, a target stream that is not empty, a path that
// exists or a stream that is not a jetsource one are the caller's to fix (2); no such file or
// stream: 4; the rest (server, disk): 1.
int backup_exit_code(const jetsource::error& e) {
  switch (e.code) {
    case jetsource::errc::corrupt:
    case jetsource::errc::conflict:
    case jetsource::errc::stream_config_mismatch:
      return exit_usage;
    default:
      return exit_code_of(e);
  }
}

int backup_failed(std::string_view what, const jetsource::error& e) {
  fmt::print(stderr, "order-system: {}: {}\n", what, jetsource::to_string(e));
  return backup_exit_code(e);
}

int run_backup(context& ctx, const backup_command_options& o) {
  auto rt = ctx.runtime();
  if (!rt) return backup_failed("backup", rt.error());
  auto bar = progress_bar("backup");
  auto r = jetsource::backup((*rt)->conn, orders_stream().stream, o.path,
                             {.from_sequence = o.from_sequence, .progress = bar});
  end_bar(bar);
  if (!r) return backup_failed("backup", r.error());
  if (o.json)
    fmt::print("{}\n", nlohmann::ordered_json{{"stream", r->stream},
                                              {"path", r->path.string()},
                                              {"from_sequence", r->from_sequence},
                                              {"last_sequence", r->last_sequence},
                                              {"commits", r->records},
                                              {"bytes", r->bytes},
                                              {"sha256", r->sha256},
                                              {"seconds", r->seconds}}
                           .dump());
  else
    fmt::print("backup: {} sequences {}..{}: {} commits, {} bytes in {:.2f} s to {} (sha256 {})\n",
               r->stream, r->from_sequence, r->last_sequence, r->records, r->bytes, r->seconds,
               r->path.string(), r->sha256);
  return exit_ok;
}

int run_restore(context& ctx, const backup_command_options& o) {
  // Checked before connecting: a damaged file fails without a server.
  auto info = jetsource::verify_backup(o.path);
  if (!info) return backup_failed("restore", info.error());
  auto rt = ctx.runtime();
  if (!rt) return backup_failed("restore", rt.error());
  auto bar = progress_bar("restore");
  auto r = jetsource::restore((*rt)->conn, o.path, {.stream = o.stream, .progress = bar});
  end_bar(bar);
  if (!r) return backup_failed("restore", r.error());
  if (o.json)
    fmt::print("{}\n", nlohmann::ordered_json{{"stream", r->stream},
                                              {"commits", r->records},
                                              {"first_sequence", r->first_sequence},
                                              {"last_sequence", r->last_sequence},
                                              {"renumbered", r->renumbered},
                                              {"seconds", r->seconds}}
                           .dump());
  else
    fmt::print("restore: {} commits into {} (sequences {}..{}{}) in {:.2f} s\n", r->records,
               r->stream, r->first_sequence, r->last_sequence,
               r->renumbered ? "; renumbered: the original had gaps" : "", r->seconds);
  return exit_ok;
}

}  // namespace

void add_backup_commands(CLI::App& app, action& chosen) {
  auto o = std::make_shared<backup_command_options>();
  const auto footer = exit_codes_footer({exit_ok, exit_failure, exit_usage, exit_not_found});
  auto* backup = app.add_subcommand(
      "backup",
      "back up the ORDERS stream (every commit, its headers and the stream's configuration) to "
      "PATH while writers keep running; read models are not backed up (they are rebuilt)");
  backup->add_option("PATH", o->path, "the backup file to write (must not exist)")->required();
  backup
      ->add_option("--from-sequence", o->from_sequence,
                   "incremental: back up from this stream sequence (the previous backup's last "
                   "sequence + 1)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{UINT64_MAX}));
  backup->add_flag(
      "--json", o->json,
      "print {\"stream\",\"path\",\"from_sequence\",\"last_sequence\",\"commits\",\"bytes\","
      "\"sha256\",\"seconds\"}");
  backup->footer(footer +
                 "\n  (2 also when PATH exists; 4 when there is no ORDERS stream or no commit "
                 "before --from-sequence)");
  backup->callback([&chosen, o] { chosen = [o](context& ctx) { return run_backup(ctx, *o); }; });

  auto* restore = app.add_subcommand(
      "restore",
      "restore a backup file into an empty server (or a new stream name), or apply an "
      "incremental one; then rebuild the read models (projections rebuild NAME)");
  restore->add_option("PATH", o->path, "the backup file")->required();
  restore->add_option("--stream", o->stream,
                      "restore into this stream (default: the name in the file; the sample "
                      "itself uses ORDERS)");
  restore->add_flag("--json", o->json,
                    "print {\"stream\",\"commits\",\"first_sequence\",\"last_sequence\","
                    "\"renumbered\",\"seconds\"}");
  restore->footer(footer +
                  "\n  (2 also when the file is damaged or truncated: nothing is written; or when "
                  "the stream already holds other messages. 4 when there is no such file)");
  restore->callback([&chosen, o] { chosen = [o](context& ctx) { return run_restore(ctx, *o); }; });
}

}  // namespace order_system::cli
