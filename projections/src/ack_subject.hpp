// detail: the tokens of a JetStream ack subject (the reply subject of a consumer's delivery).
// 2.9 sends $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending> (9 tokens);
// newer servers add domain and account hash after ACK and a token at the end (12). The numbers
// are kept so a cumulative ack can name a message after it is gone; the rest is the same for
// every message of a consumer.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace jetsource::detail {

struct ack_numbers {
  std::uint64_t delivered = 0, stream_sequence = 0, consumer_sequence = 0, timestamp = 0,
                pending = 0;
};

struct ack_meta {
  ack_numbers n;
  std::string_view prefix, suffix;  ///< up to <delivered>, after <pending> (views into the input)
};

/// nullopt when `reply` is not a JetStream ack subject.
std::optional<ack_meta> parse_ack_subject(std::string_view reply);

}  // namespace jetsource::detail
