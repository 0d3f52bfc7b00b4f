// detail: one family as the registry keeps it (name, HELP, TYPE, label names and the family of
// the right series type), shared by the registry and the text writer.
#pragma once

#include <jetsource/metrics.hpp>

#include <memory>
#include <string>
#include <vector>

namespace jetsource::metrics {

struct registry::entry {
  std::string name, help;
  kind type = kind::counter;
  std::vector<std::string> label_names;
  // exactly one of these, as `type` says
  std::unique_ptr<family<counter>> counters;
  std::unique_ptr<family<gauge>> gauges;
  std::unique_ptr<family<histogram>> histograms;
};

}  // namespace jetsource::metrics
