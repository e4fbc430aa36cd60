// The service thread's share of ARP: gratuitous ARP at start, requests for
// next hops the workers could not resolve, learning from the answers to its
// own requests (nothing else), and keeping the cache fresh (entries are
// re-asked before they expire, and dropped when they do).
//
// It also keeps the packets the workers could not send for want of a next
// hop's MAC (Action::hold; Linux's "unresolved queue"): at most 4 per
// neighbour (the oldest gives way) and kMaxHeld in all.  While something is
// held for a neighbour it is asked for once a second; when it answers, its
// packets get its MAC and leave in order; after kHoldTimeoutS unanswered they
// are dropped (no_neighbour).  Its frames, ARP and released packets alike,
// leave through worker 0's TX queue (handed over on a ring).
#pragma once

#include <rte_mbuf.h>

#include <map>
#include <utility>

#include "dataplane_state.hpp"
#include "held_packets.hpp"

namespace relay::dp {

class NeighbourService {
  public:
    static constexpr size_t kMaxHeldPerNeighbour = 4;
    static constexpr size_t kMaxHeld = 256;
    // Three requests a second apart, then the held packets are dropped (as
    // Linux does with its defaults: mcast_solicit 3, retrans_time 1 s).
    static constexpr uint64_t kHoldTimeoutS = 3;

    explicit NeighbourService(DataplaneState& state);
    ~NeighbourService();  // frees what is still held
    NeighbourService(const NeighbourService&) = delete;
    NeighbourService& operator=(const NeighbourService&) = delete;

    // Gratuitous ARP for every address, and a first request for each gateway.
    void announce(uint64_t now);
    // Takes the workers' held packets, drains their event rings and runs the
    // timers; call often.
    void run_once(uint64_t now);

    uint64_t requests_sent() const { return requests_sent_; }
    uint64_t announcements_sent() const { return announcements_sent_; }

  private:
    void handle(const SlowPathEvent& e, uint64_t now);
    void take_held(uint64_t now);
    void tend_held(uint64_t now);
    // Fills in the next hop's MAC and hands the frame to worker 0.
    void send_held(rte_mbuf* m, const MacAddr& mac);
    void drop_held(rte_mbuf* m);
    void request(uint16_t port_index, Ipv4 target, uint64_t now);
    bool send_arp(uint16_t port_index, uint16_t op, Ipv4 sender_ip, Ipv4 target_ip);
    bool on_link(uint16_t port_index, Ipv4 ip) const;
    Ipv4 source_for(uint16_t port_index, Ipv4 target) const;
    uint16_t port_index_of(uint16_t port_id) const;  // 0xffff if none

    DataplaneState& state_;
    std::map<std::pair<uint16_t, Ipv4>, uint64_t> last_request_;  // (port, ip) -> TSC
    HeldPackets<rte_mbuf*> held_{kMaxHeldPerNeighbour, kMaxHeld};
    uint64_t next_tick_ = 0;
    uint64_t second_announce_ = 0;
    uint64_t requests_sent_ = 0;
    uint64_t announcements_sent_ = 0;
};

}  // namespace relay::dp
