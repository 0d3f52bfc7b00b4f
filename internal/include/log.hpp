// detail: the library's spdlog logger ("jetsource"), created on first use unless the
// application registered its own logger under that name.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>

namespace jetsource::detail {

std::shared_ptr<spdlog::logger> log();

}  // namespace jetsource::detail
