// detail: a delivered commit message as an envelope for the workers: its commit headers read
// straight from the message (no nats.c header table per message), the body, the reply subject.
#pragma once

#include "applier.hpp"
#include "nats/handles.hpp"

#include <cstdint>

namespace jetsource::detail {

/// The envelope of a delivered message at stream sequence `sequence`; it owns the message.
envelope envelope_of(msg_ptr m, std::uint64_t sequence);

}  // namespace jetsource::detail
