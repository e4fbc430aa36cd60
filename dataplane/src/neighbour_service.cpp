#include "neighbour_service.hpp"

#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <cstring>

#include "relay/wire/headers.hpp"

namespace relay::dp {

using namespace relay::wire;

namespace {
constexpr unsigned kMaxPendingRequests = 4096;
constexpr unsigned kEventsPerRun = 256;
constexpr uint64_t kAnswerWindowS = 3;  // how long an ARP request waits for its answer
constexpr unsigned kHeldPerRun = 256;   // held packets taken from each worker per run
constexpr unsigned kHeldBurst = 64;
}  // namespace

NeighbourService::NeighbourService(DataplaneState& state) : state_(state) {}

NeighbourService::~NeighbourService() {
    held_.clear([](rte_mbuf* m) { rte_pktmbuf_free(m); });
}

uint16_t NeighbourService::port_index_of(uint16_t port_id) const {
    for (uint16_t p = 0; p < state_.ports.size(); ++p)
        if (state_.ports[p].port_id == port_id) return p;
    return 0xffff;
}

bool NeighbourService::on_link(uint16_t port_index, Ipv4 ip) const {
    const PortContext& pc = state_.ports[port_index].context;
    for (unsigned i = 0; i < pc.address_count; ++i)
        if (pc.addresses[i].contains(ip)) return true;
    return false;
}

Ipv4 NeighbourService::source_for(uint16_t port_index, Ipv4 target) const {
    const PortContext& pc = state_.ports[port_index].context;
    for (unsigned i = 0; i < pc.address_count; ++i)
        if (pc.addresses[i].contains(target)) return pc.addresses[i].addr;
    return pc.addresses[0].addr;
}

bool NeighbourService::send_arp(uint16_t port_index, uint16_t op, Ipv4 sender_ip, Ipv4 target_ip) {
    const PortRuntime& port = state_.ports[port_index];
    rte_mbuf* m = rte_pktmbuf_alloc(state_.pool);
    if (!m) return false;
    const uint16_t vlan = port.context.vlan;
    const uint16_t len = 60;  // minimum Ethernet frame without FCS
    uint8_t* f = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, len));
    if (!f) {
        rte_pktmbuf_free(m);
        return false;
    }
    std::memset(f, 0, len);
    std::memset(f + kEthDst, 0xff, 6);
    std::memcpy(f + kEthSrc, port.context.mac.bytes.data(), 6);
    uint8_t* p = f + kEthType;
    if (vlan) {
        store_be16(p, kEtherTypeVlan);
        store_be16(p + 2, vlan);
        p += kVlanTagLen;
    }
    store_be16(p, kEtherTypeArp);
    uint8_t* arp = p + 2;
    store_be16(arp + kArpHtype, kArpHtypeEthernet);
    store_be16(arp + kArpPtype, kEtherTypeIpv4);
    arp[kArpHlen] = 6;
    arp[kArpPlen] = 4;
    store_be16(arp + kArpOp, op);
    std::memcpy(arp + kArpSha, port.context.mac.bytes.data(), 6);
    store_be32(arp + kArpSpa, sender_ip);
    store_be32(arp + kArpTpa, target_ip);  // target MAC stays zero
    m->port = port.port_id;
    if (rte_ring_sp_enqueue(state_.rings[0].service_tx, m) != 0) {
        rte_pktmbuf_free(m);
        return false;
    }
    return true;
}

void NeighbourService::announce(uint64_t now) {
    for (uint16_t p = 0; p < state_.ports.size(); ++p) {
        const PortContext& pc = state_.ports[p].context;
        for (unsigned i = 0; i < pc.address_count; ++i)
            if (send_arp(p, kArpOpRequest, pc.addresses[i].addr, pc.addresses[i].addr))
                ++announcements_sent_;
        if (pc.gateway) request(p, pc.gateway, now);
    }
    // A second announcement a second later, for links that came up slowly.
    if (second_announce_ == 0) second_announce_ = now + state_.tsc_hz;
}

void NeighbourService::request(uint16_t port_index, Ipv4 target, uint64_t now) {
    auto key = std::make_pair(port_index, target);
    auto it = last_request_.find(key);
    // At most one request a second per neighbour: a flood of packets to an
    // unresolved peer must not become a flood of ARP.
    if (it != last_request_.end() && now - it->second < state_.tsc_hz) return;
    if (it == last_request_.end() && last_request_.size() >= kMaxPendingRequests) return;
    if (send_arp(port_index, kArpOpRequest, source_for(port_index, target), target))
        ++requests_sent_;
    last_request_[key] = now;
}

void NeighbourService::drop_held(rte_mbuf* m) {
    state_.service_drops[static_cast<unsigned>(DropReason::no_neighbour)].add();
    rte_pktmbuf_free(m);
}

void NeighbourService::send_held(rte_mbuf* m, const MacAddr& mac) {
    // The worker rewrote everything else; the Ethernet destination comes
    // first whether or not the port is tagged.
    std::memcpy(rte_pktmbuf_mtod(m, uint8_t*) + kEthDst, mac.bytes.data(), 6);
    if (rte_ring_sp_enqueue(state_.rings[0].service_tx, m) != 0) {
        drop_held(m);
        return;
    }
    state_.held_sent.add();
}

void NeighbourService::take_held(uint64_t now) {
    rte_mbuf* pkts[kHeldBurst];
    for (const WorkerRings& rings : state_.rings) {
        for (unsigned taken = 0; taken < kHeldPerRun;) {
            const unsigned n = rte_ring_sc_dequeue_burst(rings.held, reinterpret_cast<void**>(pkts),
                                                         kHeldBurst, nullptr);
            if (n == 0) break;
            taken += n;
            for (unsigned i = 0; i < n; ++i) {
                rte_mbuf* m = pkts[i];
                const uint16_t port = port_index_of(m->port);
                const Ipv4 next_hop = m->hash.usr;
                if (port == 0xffff) {
                    drop_held(m);
                    continue;
                }
                // Learnt while this packet was on its way here.
                MacAddr mac;
                if (state_.neighbours->lookup(port, next_hop, now, mac)) {
                    send_held(m, mac);
                    continue;
                }
                held_.hold(port, next_hop, m, now, [this](rte_mbuf* x) { drop_held(x); });
                request(port, next_hop, now);
            }
        }
    }
}

void NeighbourService::tend_held(uint64_t now) {
    if (held_.empty()) return;
    // Give up on what waited kHoldTimeoutS; ask again (at most once a second,
    // see request()) for every neighbour something still waits for.
    held_.expire(now, kHoldTimeoutS * state_.tsc_hz, [this](rte_mbuf* m) { drop_held(m); });
    held_.for_each_neighbour([&](uint16_t port, Ipv4 ip) { request(port, ip, now); });
}

void NeighbourService::handle(const SlowPathEvent& e, uint64_t now) {
    if (e.port >= state_.ports.size()) return;
    switch (e.kind) {
        case SlowPathEvent::Kind::learn: {
            // The workers pass on only ARP replies addressed to us (never a
            // request, probe or announcement), and of those only answers to
            // our own recent requests are learned: an unsolicited reply naming
            // someone else's address (the gateway's, say) cannot redirect
            // relayed traffic.
            const auto pending = last_request_.find({e.port, e.ip});
            if (pending == last_request_.end() ||
                now - pending->second > kAnswerWindowS * state_.tsc_hz || !on_link(e.port, e.ip)) {
                state_.arp_ignored.add();
                return;
            }
            // What waited for it leaves first, before the workers can send
            // newer packets there directly.
            held_.release(e.port, e.ip, [&](rte_mbuf* m) { send_held(m, e.mac); });
            state_.neighbours->update(e.port, e.ip, e.mac, now + state_.arp_ttl_cycles);
            last_request_.erase(pending);
            break;
        }
        case SlowPathEvent::Kind::resolve:
            request(e.port, e.ip, now);
            break;
    }
}

void NeighbourService::run_once(uint64_t now) {
    // Held packets before events: a worker passes a packet on before the
    // events of its iteration, so the answer that releases it comes after it.
    take_held(now);
    SlowPathEvent events[kEventsPerRun];
    for (const WorkerRings& rings : state_.rings) {
        unsigned n = rte_ring_sc_dequeue_burst_elem(rings.events, events, sizeof(SlowPathEvent),
                                                    kEventsPerRun, nullptr);
        for (unsigned i = 0; i < n; ++i) handle(events[i], now);
    }
    tend_held(now);
    if (second_announce_ && now >= second_announce_) {
        second_announce_ = 0;
        for (uint16_t p = 0; p < state_.ports.size(); ++p) {
            const PortContext& pc = state_.ports[p].context;
            for (unsigned i = 0; i < pc.address_count; ++i)
                if (send_arp(p, kArpOpRequest, pc.addresses[i].addr, pc.addresses[i].addr))
                    ++announcements_sent_;
        }
    }
    if (now < next_tick_) return;
    next_tick_ = now + state_.tsc_hz;

    // Once a second: re-ask entries in their last quarter of life so that a
    // busy next hop never expires under traffic; drop the expired ones; keep
    // asking for unresolved gateways.
    state_.neighbours->expire(now);
    const uint64_t refresh_window = state_.arp_ttl_cycles / 4;
    for (const auto& e : state_.neighbours->snapshot())
        if (e.expires - now < refresh_window) request(e.port, e.ip, now);
    for (uint16_t p = 0; p < state_.ports.size(); ++p) {
        const Ipv4 gw = state_.ports[p].context.gateway;
        MacAddr mac;
        if (gw && !state_.neighbours->lookup(p, gw, now, mac)) request(p, gw, now);
    }
    // Forget request times older than a minute (bounded map).
    for (auto it = last_request_.begin(); it != last_request_.end();)
        it = now - it->second > 60 * state_.tsc_hz ? last_request_.erase(it) : std::next(it);
}

}  // namespace relay::dp
