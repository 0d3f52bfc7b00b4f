// detail: registers a running projector's series with a metrics registry (projector_metrics.cpp).
#pragma once

#include <jetsource/metrics.hpp>

namespace jetsource::detail {

struct projector_state;

/// Reports `s` at every scrape of `r` until the handle goes (before `s` does).
metrics::collector_handle watch_projector(projector_state& s, metrics::registry& r);

}  // namespace jetsource::detail
