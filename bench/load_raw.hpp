// load's raw nats.c reads of one subject (bench/load_raw.cpp): the baselines beside jetsource's
// cold loads and the options of ADR 0017. Microseconds, or < 0 on a wrong result.
#pragma once

#include "bench.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace bench::load_raw {

/// The floor of any load: one DirectGet LastBySubject (the head alone).
double read_last(const env& e, const std::string& stream, const std::string& subject);
/// The head and the snapshot, raw: one after the other, or both in flight (`paired`).
double read_head_and_snapshot(const env& e, const std::string& stream, const std::string& subject,
                              const std::string& snap_stream, const std::string& snap_subject,
                              bool paired);
/// The stream sequences of a subject's messages (untimed: what a local index would hold).
std::vector<std::uint64_t> sequences_of(const env& e, const std::string& stream,
                                        const std::string& subject);
/// The local-index option: the head, then every commit by sequence, all in flight.
double read_indexed(const env& e, const std::string& stream, const std::string& subject,
                    const std::vector<std::uint64_t>& seqs);
/// DirectGet LastBySubject, then a NextBySubject loop: `expect` messages.
double read_direct(const env& e, const std::string& stream, const std::string& subject, int expect);
/// An ordered consumer until NumPending is 0 (its teardown not timed): `expect` messages.
double read_ordered(const env& e, const std::string& stream, const std::string& subject,
                    int expect);
/// Waits (untimed) until the stream has no consumer left.
void quiesce(const env& e, const std::string& stream);

}  // namespace bench::load_raw
