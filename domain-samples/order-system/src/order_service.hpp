// Running order commands, shared by the command line (`order ...`) and the HTTP API (`serve
// --http`): order ids, and one command executed with a command id so that a retry lands once.
//
// Thread-safety: as the context's repository (safe to share) once ctx.orders() was called on the
// owner's thread (the context connects lazily, on one thread).
#pragma once

#include "cli.hpp"

#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace order_system::cli {

/// "ord-" and 16 random hex digits.
std::string new_order_id();

/// "ord-" and 16 hex digits of the command id's FNV-1a hash: a retried create with a command id
/// and no order id addresses the order its first run created.
std::string order_id_for(std::string_view command_id);

/// The commit of `id` that carries `command_id`, as the command's outcome, if any.
jetsource::result<std::optional<jetsource::executed>> landed(context& ctx, const std::string& id,
                                                             const std::string& command_id);

/// Executes one command with the command id, if any ("" = none). A retry of a command that
/// landed is answered with its first outcome: by the stream's duplicate check (Nats-Msg-Id) when
/// the command is accepted again, or, when the order's state now refuses it (a second `pay`), by
/// the order's commit that carries the id.
template <class Command>
jetsource::result<jetsource::executed> run_command(context& ctx, const std::string& id,
                                                   const Command& command,
                                                   const std::string& command_id) {
  JETSOURCE_TRY(orders, ctx.orders());
  auto r = orders->execute(id, command, {.command_id = command_id});
  if (r || command_id.empty() || !r.error().is(jetsource::errc::rejected)) return r;
  auto earlier = landed(ctx, id, command_id);
  if (!earlier) return std::move(earlier).error();
  if (*earlier) return **earlier;
  return r;
}

/// As run_command, through repository::execute_async (pipelined: the caller's thread waits for
/// the outcome, while commands from other threads share the store's in-flight window).
template <class Command>
jetsource::result<jetsource::executed> run_command_pipelined(context& ctx, const std::string& id,
                                                             const Command& command,
                                                             const std::string& command_id) {
  JETSOURCE_TRY(orders, ctx.orders());
  auto outcome = std::make_shared<std::promise<jetsource::result<jetsource::executed>>>();
  auto done = outcome->get_future();
  JETSOURCE_TRY(orders->execute_async(
      id, command,
      [outcome](jetsource::result<jetsource::executed> r) { outcome->set_value(std::move(r)); },
      {.command_id = command_id}));
  auto r = done.get();
  if (r || command_id.empty() || !r.error().is(jetsource::errc::rejected)) return r;
  auto earlier = landed(ctx, id, command_id);
  if (!earlier) return std::move(earlier).error();
  if (*earlier) return **earlier;
  return r;
}

}  // namespace order_system::cli
