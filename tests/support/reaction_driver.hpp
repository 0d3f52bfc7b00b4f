// Test support: calls a reactor's handler for one stored event as the engine would, without the
// engine: the aggregate's commit that holds `version` is read from the store, its body decoded
// up to that event, and reactor::handler(type) called with a hand-built reaction_context.
//
// Thread-safety: a function of its arguments; the store and the reactor are safe to share.
#pragma once

#include <jetsource/detail/json_reader.hpp>
#include <jetsource/event_store.hpp>
#include <jetsource/reactor.hpp>

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace jetsource::test {

struct handled {
  bool had_handler = false;  ///< false: the reactor passes this event type over
  result<void> outcome = success();
};

/// Handles event `version` of aggregate (type, id) with reactor `r`, as delivery number
/// `attempt`. Fails the test when the event does not exist.
inline handled handle_event(const reactor& r, event_store& store, const std::string& type,
                            const std::string& id, std::uint64_t version, int attempt = 1) {
  handled out;
  auto log = store.read(type, id);
  EXPECT_TRUE(log) << log.error();
  if (!log) return out;
  for (const auto& c : log->commits) {
    const std::uint64_t first = c.version - c.event_count() + 1;
    if (version < first || version > c.version) continue;
    detail::json_reader ar(c.body);
    ar.setNextName("events");
    ar.startNode();
    for (std::uint64_t v = first; v < version; ++v) {  // the commit's earlier events
      ar.startNode();
      ar.finishNode();
    }
    ar.startNode();
    std::string event_type;
    int schema = 0;
    ar(cereal::make_nvp("type", event_type), cereal::make_nvp("v", schema));
    const auto* h = r.handler(event_type);
    if (!h) return out;
    out.had_handler = true;
    reaction_context::origin o;
    o.reactor = r.name();
    o.aggregate_type = c.aggregate_type;
    o.aggregate_id = c.aggregate_id;
    o.version = version;
    o.sequence = c.sequence;
    o.event_index = static_cast<std::size_t>(version - first);
    o.commit_id = c.commit_id;
    o.timestamp = c.timestamp;
    o.correlation_id = c.correlation_id;
    o.causation_id = c.causation_id;
    o.attempt = attempt;
    reaction_context cx(o);
    out.outcome = (*h)(cx, schema, ar);
    return out;
  }
  ADD_FAILURE() << type << " " << id << " has no version " << version;
  return out;
}

}  // namespace jetsource::test
