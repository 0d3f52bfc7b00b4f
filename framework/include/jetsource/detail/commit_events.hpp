// detail: the walk over a commit body's events, shared by the projector (applier.cpp), the
// reactors (reactor_worker.cpp) and the commit decoder's fuzz target: {"events":[{"type","v",
// "data"}, ...]} is checked against the event count the commit's Es-Events header names, then
// each event's wire name and schema version are read and handed to a visitor, with the archive
// inside the event's node (its "data" readable by name). The wire format: docs/wire-format.md.
//
// Thread-safety: a function of its arguments.
#pragma once

#include <jetsource/result.hpp>

#include <jetsource/detail/json_reader.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace jetsource::detail {

/// Calls `visit(index, type, schema, ar)` -> result<void> for each event of `body`, in order,
/// and stops at its first error (returned as is). errc::decode_failed when the body does not hold
/// `named` events. A malformed body throws what cereal throws (a cereal::Exception, or a
/// std::exception from a decoder): the caller turns it into a decode failure of `type`, which
/// holds the wire name of the event being read ("" before the first one).
template <class Visit>
result<void> for_each_commit_event(std::string_view body, std::uint64_t named, std::string& type,
                                   Visit&& visit) {
  json_reader ar(body);
  ar.setNextName("events");
  ar.startNode();
  cereal::size_type n = 0;
  ar.loadSize(n);
  if (n != named)
    return make_error(errc::decode_failed, "the body has {} events, Es-Events names {}", n, named);
  for (cereal::size_type i = 0; i < n; ++i) {
    ar.startNode();
    int schema = 0;
    ar(cereal::make_nvp("type", type), cereal::make_nvp("v", schema));
    if (auto r = visit(static_cast<std::size_t>(i), std::string_view(type), schema, ar); !r)
      return r;
    ar.finishNode();
  }
  return success();
}

}  // namespace jetsource::detail
