// detail: the event store's async publisher: appends pipelined through the async JetStream
// context, a bounded number in flight, each outcome reported exactly once from nats.c's ack
// handler (which runs on a nats.c thread).
#pragma once

#include <jetsource/result.hpp>

#include "nats/handles.hpp"
#include "store/store_state.hpp"

#include <string>

namespace jetsource::detail::store {

/// Sends one message through the async context; `p.done` (if set) gets the outcome exactly once.
/// Blocks while max_in_flight messages await their acks (not on the ack handler's thread).
result<void> publish_async(store_state& st, msg_ptr msg, std::string id, async_core::pending p);

/// nats.c's async ack handler; `closure` is the store's async_core.
void on_async_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure);

}  // namespace jetsource::detail::store
