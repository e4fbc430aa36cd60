#include "worker.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_prefetch.h>

#include "session_command.hpp"

namespace relay::dp {

namespace {
constexpr unsigned kMaxBurst = 64;
constexpr unsigned kIdleIterationsBeforeSleep = 64;
constexpr unsigned kFirstSleepUs = 1;
constexpr uint32_t kExpiryScanBudget = 1024;  // slots per scan; a scan every ms
constexpr unsigned kCommandsPerIteration = 16;
}  // namespace

std::vector<uint8_t> make_shard_map(unsigned workers) {
    std::vector<uint8_t> map(65536);
    for (unsigned p = 0; p < map.size(); ++p) map[p] = static_cast<uint8_t>(p % workers);
    return map;
}

Worker::Worker(DataplaneState& state, unsigned index)
    : state_(state), index_(index), stats_(state.stats[index]), rings_(state.rings[index]) {
    std::vector<PortContext> contexts;
    uint16_t max_id = 0;
    for (const auto& p : state_.ports) {
        contexts.push_back(p.context);
        if (p.port_id > max_id) max_id = p.port_id;
    }
    port_index_of_id_.assign(max_id + 1u, 0xffff);
    for (size_t i = 0; i < state_.ports.size(); ++i)
        port_index_of_id_[state_.ports[i].port_id] = static_cast<uint16_t>(i);
    processor_ = std::make_unique<PacketProcessor>(
        *state_.sessions, *state_.neighbours, std::move(contexts), state_.tsc_hz, stats_,
        static_cast<uint8_t>(index_), state_.workers() > 1 ? state_.shard_map.data() : nullptr);
    tx_.resize(state_.ports.size());
}

void Worker::enqueue_tx(uint16_t port_index, rte_mbuf* m) {
    TxBuffer& b = tx_[port_index];
    b.pkts[b.count++] = m;
    if (b.count == state_.burst_size) flush_tx(port_index);
}

void Worker::flush_tx(uint16_t port_index) {
    TxBuffer& b = tx_[port_index];
    if (b.count == 0) return;
    const PortRuntime& port = state_.ports[port_index];
    uint16_t sent = rte_eth_tx_burst(port.port_id, static_cast<uint16_t>(index_), b.pkts,
                                     static_cast<uint16_t>(b.count));
    uint64_t bytes = 0;
    for (uint16_t i = 0; i < sent; ++i) bytes += rte_pktmbuf_pkt_len(b.pkts[i]);
    stats_.ports[port_index].tx_packets.add(sent);
    stats_.ports[port_index].tx_bytes.add(bytes);
    if (sent < b.count) {
        stats_.drops[static_cast<unsigned>(DropReason::tx_full)].add(b.count - sent);
        rte_pktmbuf_free_bulk(b.pkts + sent, b.count - sent);
    }
    b.count = 0;
}

void Worker::hold(uint16_t port_index, rte_mbuf* m, Ipv4 next_hop) {
    // The service thread keeps it until ARP answers, then worker 0 sends it.
    m->port = state_.ports[port_index].port_id;
    m->hash.usr = next_hop;
    if (rte_ring_sp_enqueue(rings_.held, m) != 0) {
        stats_.drops[static_cast<unsigned>(DropReason::no_neighbour)].add();
        rte_pktmbuf_free(m);
    }
}

void Worker::handle_burst(rte_mbuf** pkts, unsigned n, uint16_t port_index, uint64_t now) {
    uint8_t* frames[kMaxBurst];
    uint32_t lens[kMaxBurst];
    Verdict verdicts[kMaxBurst];
    if (n == 0 || n > kMaxBurst) return;  // never: bursts are at most burst_size <= 64
    for (unsigned i = 0; i < n; ++i) {
        // Multi-segment frames are not parsed across segments: give the
        // processor the first segment only, so it can never read past it.
        frames[i] = rte_pktmbuf_mtod(pkts[i], uint8_t*);
        lens[i] = rte_pktmbuf_data_len(pkts[i]);
    }
    processor_->process_burst(frames, lens, n, port_index, now, verdicts);
    for (unsigned i = 0; i < n; ++i) {
        switch (verdicts[i].action) {
            case Action::transmit:
                enqueue_tx(port_index, pkts[i]);
                break;
            case Action::handoff:
                if (rte_ring_mp_enqueue(state_.rings[verdicts[i].owner].handoff, pkts[i]) != 0) {
                    stats_.drops[static_cast<unsigned>(DropReason::wrong_shard)].add();
                    rte_pktmbuf_free(pkts[i]);
                }
                break;
            case Action::hold:
                hold(port_index, pkts[i], verdicts[i].next_hop);
                break;
            case Action::drop:
                rte_pktmbuf_free(pkts[i]);
                break;
        }
    }
}

unsigned Worker::poll_port(unsigned port_index) {
    const PortRuntime& port = state_.ports[port_index];
    unsigned total = 0;
    // Queue q belongs to worker q % workers; with fewer queues than workers
    // the workers without one are fed by handoffs.
    for (unsigned q = index_; q < port.rx_queues; q += state_.workers()) {
        rte_mbuf* pkts[kMaxBurst];
        const uint16_t n = rte_eth_rx_burst(port.port_id, static_cast<uint16_t>(q), pkts,
                                            static_cast<uint16_t>(state_.burst_size));
        if (n == 0) continue;
        uint64_t bytes = 0;
        for (uint16_t i = 0; i < n; ++i) bytes += rte_pktmbuf_pkt_len(pkts[i]);
        stats_.ports[port_index].rx_packets.add(n);
        stats_.ports[port_index].rx_bytes.add(bytes);
        handle_burst(pkts, n, static_cast<uint16_t>(port_index), rte_rdtsc());
        total += n;
    }
    return total;
}

unsigned Worker::poll_handoff() {
    rte_mbuf* pkts[kMaxBurst];
    const unsigned n = rte_ring_sc_dequeue_burst(rings_.handoff, reinterpret_cast<void**>(pkts),
                                                 state_.burst_size, nullptr);
    const uint64_t now = rte_rdtsc();
    // Handed-off packets keep the DPDK port they arrived on in mbuf->port.
    for (unsigned i = 0; i < n; ++i) {
        const uint16_t id = pkts[i]->port;
        const uint16_t port_index = id < port_index_of_id_.size() ? port_index_of_id_[id] : 0xffff;
        if (port_index == 0xffff) {
            rte_pktmbuf_free(pkts[i]);
            continue;
        }
        handle_burst(&pkts[i], 1, port_index, now);
    }
    return n;
}

unsigned Worker::send_service_frames() {
    if (!rings_.service_tx) return 0;
    rte_mbuf* pkts[kMaxBurst];
    const unsigned n = rte_ring_sc_dequeue_burst(rings_.service_tx, reinterpret_cast<void**>(pkts),
                                                 kMaxBurst, nullptr);
    for (unsigned i = 0; i < n; ++i) {
        const uint16_t id = pkts[i]->port;
        const uint16_t port_index = id < port_index_of_id_.size() ? port_index_of_id_[id] : 0xffff;
        if (port_index == 0xffff)
            rte_pktmbuf_free(pkts[i]);
        else
            enqueue_tx(port_index, pkts[i]);
    }
    return n;
}

unsigned Worker::apply_commands(uint64_t now) {
    return apply_session_commands(rings_.commands, *state_.sessions, now, state_.tsc_hz,
                                  kCommandsPerIteration);
}

void Worker::push_events() {
    const unsigned n = processor_->event_count();
    if (n == 0) return;
    // A full ring loses events; the hot path asks again on the next miss.
    rte_ring_sp_enqueue_burst_elem(rings_.events, processor_->events(), sizeof(SlowPathEvent), n,
                                   nullptr);
    processor_->clear_events();
}

void Worker::idle_backoff(bool did_work) {
    if (did_work || state_.idle_sleep_max_us == 0) {
        idle_iterations_ = 0;
        sleep_us_ = 0;
        return;
    }
    if (++idle_iterations_ < kIdleIterationsBeforeSleep) return;
    // Sleep in growing steps, like VPP's adaptive mode and OVS's pmd-sleep-max:
    // an idle node gives its cores away, a loaded one never sleeps.
    sleep_us_ = sleep_us_ == 0 ? kFirstSleepUs : sleep_us_ * 2;
    if (sleep_us_ > state_.idle_sleep_max_us) sleep_us_ = state_.idle_sleep_max_us;
    rte_delay_us_sleep(sleep_us_);
}

int Worker::run() {
    const uint64_t expiry_period = state_.tsc_hz / 1000;
    uint64_t last = rte_rdtsc();
    stats_.heartbeat_tsc.set(last);
    while (!state_.stop.load(std::memory_order_relaxed)) {
        unsigned work = 0;
        for (unsigned p = 0; p < state_.ports.size(); ++p) work += poll_port(p);
        work += poll_handoff();
        work += send_service_frames();
        for (unsigned p = 0; p < state_.ports.size(); ++p) flush_tx(static_cast<uint16_t>(p));
        push_events();

        const uint64_t now = rte_rdtsc();
        work += apply_commands(now);
        if (now >= next_expiry_) {
            next_expiry_ = now + expiry_period;
            // Never expire more than the IPC thread has room to hear about.
            const uint32_t room = rte_ring_free_count(rings_.expired);
            const uint32_t budget = room < kExpiryScanBudget ? room : kExpiryScanBudget;
            processor_->expire_idle(now, budget, [&](uint32_t slot, uint64_t id) {
                notify_expired(rings_.expired, id, slot);
            });
        }
        const uint64_t end = rte_rdtsc();
        stats_.heartbeat_tsc.set(end);
        stats_.total_cycles.add(end - last);
        if (work) stats_.busy_cycles.add(end - last);
        last = end;
        idle_backoff(work != 0);
    }
    for (unsigned p = 0; p < state_.ports.size(); ++p) flush_tx(static_cast<uint16_t>(p));
    return 0;
}

}  // namespace relay::dp
