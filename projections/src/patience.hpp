// detail: asking again while a cluster elects a leader. A replicated stream or the meta layer
// answers no JetStream request for a few seconds after its leader died (timeouts, or 10008/10009
// "temporarily unavailable": errc::unreachable); a start should wait that out, not fail.
#pragma once

#include <jetsource/result.hpp>

#include "log.hpp"

#include <chrono>
#include <string_view>
#include <thread>

namespace jetsource::detail {

/// Whether `e` may pass by itself: a timeout or an unreachable server.
inline bool transient(const error& e) noexcept {
  return e.is(errc::timeout) || e.is(errc::unreachable);
}

/// Runs `attempt` until it succeeds, fails otherwise than transiently, or `patience` has
/// passed; asks again every half second, with a warning naming `who` ("projection balances").
template <class Attempt>
auto patiently(std::string_view who, std::chrono::milliseconds patience, Attempt attempt) {
  const auto give_up = std::chrono::steady_clock::now() + patience;
  for (;;) {
    auto r = attempt();
    if (r || !transient(r.error()) || std::chrono::steady_clock::now() >= give_up) return r;
    log()->warn("{}: {}; asking again (a cluster may be electing a leader)", who, r.error());
    std::this_thread::sleep_for(std::chrono::milliseconds{500});
  }
}

}  // namespace jetsource::detail
