// The status page served at GET / (status_page.html, compiled in by domain-samples/CMakeLists.txt).
#pragma once

#include <string_view>

namespace order_system::cli::api {

/// status_page.html's bytes: one self-contained page (inline CSS and JS) that polls
/// GET /projections and GET /metrics every second.
extern const std::string_view status_page;

}  // namespace order_system::cli::api
