// detail: the type erasure of an event handler, shared by projection::on and reactor::on. A
// handler written as `handler(Context&, const E&)` returning result<void> (or void) becomes one
// that decodes the current event node's "data" as E (older schema versions upcast first) and
// calls it.
//
// Thread-safety: the erased handler is as thread-safe as the handler it wraps.
#pragma once

#include <jetsource/event.hpp>  // with detail/codec.hpp: decode_event
#include <jetsource/result.hpp>

#include <functional>
#include <type_traits>
#include <utility>

namespace jetsource::detail {

template <class Context>
using erased_event_handler = std::function<result<void>(Context&, int, json_reader&)>;

template <event E, class Context, class F>
erased_event_handler<Context> erase_event_handler(F handler) {
  return
      [h = std::move(handler)](Context& cx, int schema, json_reader& ar) mutable -> result<void> {
        auto e = decode_event<E>(schema, ar);
        if (!e) return std::move(e).error();
        if constexpr (std::is_void_v<std::invoke_result_t<F&, Context&, const E&>>) {
          h(cx, e.value());
          return success();
        } else {
          return h(cx, e.value());
        }
      };
}

}  // namespace jetsource::detail
