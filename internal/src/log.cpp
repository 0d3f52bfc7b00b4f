// detail: the library's spdlog logger.
#include "log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace jetsource::detail {

std::shared_ptr<spdlog::logger> log() {
  // Never destroyed: nats.c runs connection callbacks (which log) on its own threads, and they
  // can still run while a process that just closed its connection exits and destroys statics.
  static const auto* const logger = new std::shared_ptr<spdlog::logger>([] {
    if (auto existing = spdlog::get("jetsource")) return existing;
    auto l = spdlog::stderr_color_mt("jetsource");
    l->set_level(spdlog::get_level());
    return l;
  }());
  return *logger;
}

}  // namespace jetsource::detail
