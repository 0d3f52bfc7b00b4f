// detail (internal target): the one parser of JetStream ack subjects (the reply subject of a
// message delivered by a consumer), shared by the event store's reads and the projector.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace jetsource::detail {

/// The numbers of an ack subject. They are kept so a cumulative ack can name a message after it
/// is gone.
struct ack_numbers {
  std::uint64_t delivered = 0, stream_sequence = 0, consumer_sequence = 0, timestamp = 0,
                pending = 0;
};

/// An ack subject taken apart: its numbers, and the text around them (the same for every
/// message of a consumer). The views point into the parsed subject.
struct ack_meta {
  ack_numbers n;
  std::string_view prefix, suffix;  // up to <delivered>, after <pending>
};

/// Parses a JetStream ack subject. nats-server 2.9 sends
/// $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending> (9 tokens); newer servers
/// add <domain>.<account hash> after ACK and a token at the end (12; a longer subject is read as
/// its first 12 tokens, the rest going to the suffix). nullopt for anything else: 10 or 11 tokens,
/// fewer than 9, another root, or a number token that is not a decimal number. Allocates nothing
/// (natsMsg_GetMetaData allocates three times).
std::optional<ack_meta> parse_ack_subject(std::string_view reply) noexcept;

/// parse_ack_subject for the subjects of one consumer, which share their prefix: once one was
/// parsed, a subject that starts with the same prefix has only its numbers and its end read
/// (what the projector's fetcher does per message). The same answers as parse_ack_subject.
///
/// Thread-safety: none (it remembers the last prefix).
class ack_subject_reader {
 public:
  std::optional<ack_meta> operator()(std::string_view reply);

 private:
  std::string prefix_;   // of the last subject parsed in full ("": none yet)
  bool twelve_ = false;  // that subject had the 12-token form
};

}  // namespace jetsource::detail
