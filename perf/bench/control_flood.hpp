// The flood phase of `relay-bench control`: registered peers' keepalive and connect
// latency while senders with self-made keys flood control at the crypto limit of one
// core, against the same registered traffic without the flood, in the same run.
//
// Modelled as relay-control's two threads see it (the machine has 2 cores): the loop
// thread serves one queue of datagrams in arrival order (registered traffic and the flood
// interleaved, Poisson arrivals on a virtual clock), one at a time by ControlCore::handle,
// each for the CPU time handle() really takes plus the hand-over of any key agreement it
// queued (defer_key_agreements, as the server runs it).  The crypto thread, on the other
// core, computes those key agreements in order, each for the CPU time agree() really
// takes; each result comes back into the loop's queue when done, and the loop serves its
// continuation (ControlCore::complete_key_agreement: open, replay check, authorise,
// reply) for the CPU time that takes.  A datagram's latency is from its arrival to the
// end of its handling, so work the flood causes on the loop shows up as waiting.  The core runs on
// the virtual clock (Clock), so its budgets and limits see the modelled rates, not the benchmark's
// own speed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "relay/control/envelope.hpp"

namespace relay::bench {

struct FloodOptions {
    uint32_t peers = 1000;             // registered agents (each its own address)
    uint32_t seconds = 3;              // modelled time with traffic
    uint32_t registered_per_s = 2000;  // their keepalives and connects (1 in 5), together
    uint32_t attacker_keys = 4096;     // self-made keys, never registered (4x control's
                                       // cache of recently proven keys)
    uint32_t attacker_sources = 400;   // a few hundred addresses
    double flood_per_s = 0;            // 0: the measured key agreements a second of one core
    std::optional<uint32_t> unauthenticated_per_s;  // control's budget; default: the config's
};

struct FloodLatency {
    double p50_us = 0;
    double p99_us = 0;
    double max_us = 0;
    size_t count = 0;
};

struct FloodResult {
    double key_agreements_per_s = 0;  // the crypto limit of one core (shared_key), measured
    double flood_offered_per_s = 0;
    uint32_t unauthenticated_per_s = 0;     // control's budget in the run
    double flood_key_agreements_per_s = 0;  // key agreements control did for the flood
    double flood_answered_per_s = 0;        // flood datagrams that got a (not_registered) reply
    double flood_loop_share = 0;            // share of the loop thread's time spent on the flood
    double flood_crypto_share = 0;    // share of the crypto thread's time (its key agreements)
    double clock_overhead_us = 0;     // reading the CPU clock twice: taken off each service time
    FloodLatency keepalive, connect;  // with the flood
    FloodLatency keepalive_base, connect_base;  // without
    size_t registered_unanswered = 0;  // registered requests without their reply (flood run)
    double keepalive_p99_ratio() const { return keepalive.p99_us / keepalive_base.p99_us; }
    double connect_p99_ratio() const { return connect.p99_us / connect_base.p99_us; }
};

// Runs both models; false (and `error`) when the setup or the baseline went wrong (a
// registered request refused without a flood, a class not as set up).
bool run_flood(const FloodOptions& options, const control::KeyPair& server, FloodResult& result,
               std::string& error);

}  // namespace relay::bench
