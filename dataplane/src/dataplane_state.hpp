// Everything the threads of relay-dataplane share, created once at start.
// The threads: one worker per configured lcore; the service thread (the EAL
// main lcore: ARP, held packets); the IPC thread (a plain thread: control's
// socket, the session registry); the metrics thread (prometheus-cpp's HTTP).
// Who writes what is the point of this file:
//   sessions     slots allocated/freed by the IPC thread (SessionRegistry);
//                contents and index entries by the owning worker
//   neighbours   written by the service thread; read by workers
//   stats[w]     written by worker w (counters and heartbeat); read by metrics
//   ipc          written by the IPC thread; read by metrics
//   rings        single producer / single consumer each, except handoff (multi-producer):
//                commands: IPC thread -> worker   expired: worker -> IPC thread
//                events, held: worker -> service thread   service_tx: service -> worker 0
//   service counters (arp_ignored, held_*, service_drops)  written by the service thread
//   stop         set by the main thread at shutdown; read by every loop
#pragma once

#include <rte_mempool.h>
#include <rte_ring.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "neighbour_table.hpp"
#include "packet_processor.hpp"
#include "session_service.hpp"
#include "session_table.hpp"
#include "worker_stats.hpp"

namespace relay::dp {

struct PortRuntime {
    std::string name;        // config name, the `port` metrics label
    uint16_t port_id = 0;    // DPDK port id
    uint16_t rx_queues = 1;  // queue q is polled by worker q % workers
    bool rss = false;        // the NIC spreads by UDP destination port
    PortContext context;
};

struct WorkerRings {
    rte_ring* commands = nullptr;  // SessionCommandRef*: IPC thread -> worker
    rte_ring* expired = nullptr;   // ExpiredSession: worker -> IPC thread
    rte_ring* events = nullptr;    // SlowPathEvent: worker -> service thread
    rte_ring* handoff = nullptr;   // rte_mbuf*: any worker -> this worker
    // rte_mbuf*: this worker -> service thread, rewritten frames whose next hop
    // has no MAC yet (Action::hold); mbuf->port is the egress DPDK port id and
    // mbuf->hash.usr the next hop's IPv4 (host order).
    rte_ring* held = nullptr;
    // rte_mbuf* with mbuf->port set: service thread -> worker 0, which sends
    // them on its own TX queue, so that no device needs an extra queue for ARP.
    rte_ring* service_tx = nullptr;
};

struct DataplaneState {
    uint64_t tsc_hz = 0;
    unsigned burst_size = 32;
    unsigned idle_sleep_max_us = 1000;
    uint64_t arp_ttl_cycles = 0;
    std::vector<PortRuntime> ports;  // index = position in config = PacketProcessor port index
    std::unique_ptr<SessionTable> sessions;
    std::unique_ptr<NeighbourTable> neighbours;
    std::vector<uint8_t> shard_map;  // relay port -> worker index
    std::vector<unsigned> worker_lcores;
    std::vector<WorkerRings> rings;
    std::unique_ptr<WorkerStats[]> stats;  // one per worker
    rte_mempool* pool = nullptr;
    std::atomic<bool> stop{false};
    IpcStats ipc;         // IPC thread
    Counter arp_ignored;  // ARP answers nobody asked for (service thread)
    Counter held_sent;    // held packets sent once their next hop was learnt (service thread)
    // Drops counted by the service thread (held packets it gave up on), added
    // to the workers' in relay_dataplane_drops_total.
    Counter service_drops[kDropReasonCount];

    unsigned workers() const { return static_cast<unsigned>(worker_lcores.size()); }
};

}  // namespace relay::dp
