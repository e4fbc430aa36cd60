// Counters of one worker (one core).  Written only by that worker; read by
// the metrics exporter at scrape time and summed over workers.  Relaxed
// atomics compile to plain loads and stores on x86: no lock, no fence, but no
// data race either.
#pragma once

#include <atomic>
#include <cstdint>

#include "drop_reason.hpp"

namespace relay::dp {

constexpr unsigned kMaxPorts = 16;
constexpr unsigned kMaxAddressesPerPort = 64;

class Counter {
  public:
    void add(uint64_t n = 1) {
        v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    void set(uint64_t v) { v_.store(v, std::memory_order_relaxed); }
    uint64_t get() const { return v_.load(std::memory_order_relaxed); }

  private:
    std::atomic<uint64_t> v_{0};
};

struct PortCounters {
    Counter rx_packets;
    Counter rx_bytes;
    Counter tx_packets;
    Counter tx_bytes;
};

struct alignas(64) WorkerStats {
    PortCounters ports[kMaxPorts];
    Counter drops[kDropReasonCount];
    Counter arp_replies;
    Counter icmp_replies;
    Counter bind_acks;
    Counter forwarded_packets;
    Counter forwarded_bytes;
    Counter neighbour_held;  // forwarded, but held for a next hop not resolved yet
    Counter latches;         // side confirmations (first latch and roams)
    Counter latch_refused;   // handshakes/binds refused (bad MAC, source prefix, stale)
    Counter mac_checks;      // handshake and bind MACs computed (mac1 or bind MAC)
    Counter handoffs;        // packets passed to the worker that owns their session
    Counter sessions_expired;
    Counter busy_cycles;   // TSC cycles spent on non-empty iterations
    Counter total_cycles;  // TSC cycles of the loop in all
    // The TSC at the end of the worker's last loop iteration (set(), not
    // add()): its age is how long the worker has not come round its loop.
    // An idle worker sleeps at most idle_sleep_max_us per iteration, so a
    // live one is never older than that plus one iteration.
    Counter heartbeat_tsc;
};

}  // namespace relay::dp
