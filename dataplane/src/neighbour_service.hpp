// The service thread's share of ARP: gratuitous ARP at start, requests for
// next hops the workers could not resolve, learning from the answers to its
// own requests (nothing else), and keeping the cache fresh (entries are
// re-asked before they expire, and dropped when they do).  Its frames leave through worker 0's TX
// queue (handed over on a ring).
#pragma once

#include <map>
#include <utility>

#include "dataplane_state.hpp"

namespace relay::dp {

class NeighbourService {
  public:
    explicit NeighbourService(DataplaneState& state);

    // Gratuitous ARP for every address, and a first request for each gateway.
    void announce(uint64_t now);
    // Drains the workers' event rings and runs the timers; call often.
    void run_once(uint64_t now);

    uint64_t requests_sent() const { return requests_sent_; }
    uint64_t announcements_sent() const { return announcements_sent_; }

  private:
    void handle(const SlowPathEvent& e, uint64_t now);
    void request(uint16_t port_index, Ipv4 target, uint64_t now);
    bool send_arp(uint16_t port_index, uint16_t op, Ipv4 sender_ip, Ipv4 target_ip);
    bool on_link(uint16_t port_index, Ipv4 ip) const;
    Ipv4 source_for(uint16_t port_index, Ipv4 target) const;

    DataplaneState& state_;
    std::map<std::pair<uint16_t, Ipv4>, uint64_t> last_request_;  // (port, ip) -> TSC
    uint64_t next_tick_ = 0;
    uint64_t second_announce_ = 0;
    uint64_t requests_sent_ = 0;
    uint64_t announcements_sent_ = 0;
};

}  // namespace relay::dp
