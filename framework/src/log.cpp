// detail: the library's spdlog logger.
#include "log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace jetsource::detail {

std::shared_ptr<spdlog::logger> log() {
  static const std::shared_ptr<spdlog::logger> logger = [] {
    if (auto existing = spdlog::get("jetsource")) return existing;
    auto l = spdlog::stderr_color_mt("jetsource");
    l->set_level(spdlog::get_level());
    return l;
  }();
  return logger;
}

}  // namespace jetsource::detail
