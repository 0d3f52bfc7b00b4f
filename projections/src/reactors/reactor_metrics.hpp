// detail: registers a running reactor member's series with a metrics registry.
#pragma once

#include <jetsource/metrics.hpp>

namespace jetsource::detail {

struct reactor_member_state;

/// Reports `s` at every scrape of `r` until the handle goes (before `s` does).
metrics::collector_handle watch_reactor(reactor_member_state& s, metrics::registry& r);

}  // namespace jetsource::detail
