// A worker lcore's poll loop: receive bursts from its queues, process them,
// transmit through per-port TX buffers, pass packets waiting for ARP to the
// service thread, apply session commands, expire idle sessions, and back off
// when idle.
#pragma once

#include <rte_mbuf.h>

#include <memory>

#include "dataplane_state.hpp"
#include "packet_processor.hpp"

namespace relay::dp {

class Worker {
  public:
    Worker(DataplaneState& state, unsigned index);
    // The lcore entry point; returns when state.stop is set.
    int run();

  private:
    struct TxBuffer {
        unsigned count = 0;
        rte_mbuf* pkts[64];
    };

    unsigned poll_port(unsigned port_index);
    unsigned poll_handoff();
    unsigned send_service_frames();
    void handle_burst(rte_mbuf** pkts, unsigned n, uint16_t port_index, uint64_t now);
    void enqueue_tx(uint16_t port_index, rte_mbuf* m);
    void hold(uint16_t port_index, rte_mbuf* m, Ipv4 next_hop);
    void flush_tx(uint16_t port_index);
    unsigned apply_commands(uint64_t now);
    void push_events();
    void idle_backoff(bool did_work);

    DataplaneState& state_;
    unsigned index_;
    WorkerStats& stats_;
    WorkerRings& rings_;
    std::unique_ptr<PacketProcessor> processor_;
    std::vector<TxBuffer> tx_;
    std::vector<uint16_t> port_index_of_id_;  // DPDK port id -> our port index
    unsigned idle_iterations_ = 0;
    unsigned sleep_us_ = 0;
    uint64_t next_expiry_ = 0;
};

// Computes a relay-port -> worker map for software dispatch.
std::vector<uint8_t> make_shard_map(unsigned workers);

}  // namespace relay::dp
