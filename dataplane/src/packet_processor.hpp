// The per-packet work of a worker: strict parsing, ARP and ICMP answers,
// session lookup, latching, rate limiting and the in-place rewrite.  Works on
// raw frame bytes so that the workers, the fixture tests and relay-bench run
// exactly the same code; the worker maps mbufs to frames and verdicts to TX.
//
// Every frame leaves through the port it arrived on (a session's address
// belongs to one port, and both of its peers send to that address), so a
// verdict is only: transmit (the frame was rewritten in place), hold (rewritten
// too, but its next hop's MAC is not known yet: the service thread keeps it
// until ARP answers), hand off to another worker, or drop with a reason.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "address_set.hpp"
#include "drop_reason.hpp"
#include "neighbour_table.hpp"
#include "rate_limiter.hpp"
#include "relay/crypto/mac1.hpp"
#include "relay/net.hpp"
#include "session_table.hpp"
#include "source_ratelimiter.hpp"
#include "worker_stats.hpp"

namespace relay::dp {

// What a port looks like to the hot path.  A frame is processed only when it
// is addressed to `mac` (or, for ARP, broadcast), comes from a unicast MAC other
// than `mac`, and carries at most `mtu` bytes after its Ethernet header and tag.
struct PortContext {
    MacAddr mac{};
    uint16_t vlan = 0;    // 0 = untagged
    uint16_t mtu = 1500;  // largest frame received: mtu + Ethernet header (+ tag)
    uint8_t address_count = 0;
    std::array<Ipv4Prefix, kMaxAddressesPerPort> addresses{};
    std::array<uint8_t, kMaxAddressesPerPort> table_index{};  // SessionTable address index
    Ipv4 gateway = 0;  // 0 = none: only on-link destinations are reachable
};

enum class Action : uint8_t { drop, transmit, handoff, hold };

struct Verdict {
    Action action = Action::drop;
    DropReason reason = DropReason::none;
    uint8_t owner = 0;  // handoff: the worker that owns the session's relay port
    // hold: the next hop (the on-link destination, or the gateway) whose MAC the
    // frame waits for.  The frame is rewritten in full except its Ethernet
    // destination, which is left zero.
    Ipv4 next_hop = 0;
};

// A UDP datagram to one of our addresses, as parsed so far (what a latch
// policy gets to look at).
struct Datagram {
    uint8_t* frame;
    uint8_t* ip;
    uint8_t* payload;
    uint32_t payload_len;
    uint32_t ip_len;
    SocketAddress src;
    uint16_t port;  // ingress port index
};

class LatchContext;

// Something the hot path cannot do itself, passed to the service thread.
struct SlowPathEvent {
    // learn: an ARP reply to our MAC (the service thread learns it only if it
    // answers a request of ours); resolve: a next hop whose MAC is wanted.
    enum class Kind : uint8_t { learn, resolve };
    Kind kind = Kind::learn;
    uint16_t port = 0;
    Ipv4 ip = 0;
    MacAddr mac{};  // learn only
};

class PacketProcessor {
  public:
    static constexpr unsigned kMaxEvents = 64;
    static constexpr unsigned kIcmpPerSecond = 1000;
    static constexpr unsigned kIcmpBurst = 100;
    static constexpr uint8_t kOutputTtl = 64;

    // shard_map: owner worker of each relay port (65536 entries), or nullptr
    // when this processor owns every port.
    PacketProcessor(SessionTable& sessions, const NeighbourTable& neighbours,
                    std::vector<PortContext> ports, uint64_t tsc_hz, WorkerStats& stats,
                    uint8_t shard = 0, const uint8_t* shard_map = nullptr);

    Verdict process(uint8_t* frame, uint32_t len, uint16_t port, uint64_t now);

    // Processes `n` frames of one port with l3fwd-style prefetching of the
    // frames and of their sessions ahead of use.
    void process_burst(uint8_t* const* frames, const uint32_t* lens, unsigned n, uint16_t port,
                       uint64_t now, Verdict* verdicts);

    // Events for the service thread since the last clear (bounded; extra ones are dropped,
    // ARP will ask again).
    const SlowPathEvent* events() const { return events_.data(); }
    unsigned event_count() const { return event_count_; }
    void clear_events() { event_count_ = 0; }

    // Removes up to `budget` of this shard's idle sessions, scanning
    // incrementally; calls on_expired(slot, id) for each.
    template <typename F>
    unsigned expire_idle(uint64_t now, uint32_t budget, F&& on_expired);

    WorkerStats& stats() { return stats_; }
    uint8_t shard() const { return shard_; }
    bool owns(uint16_t relay_port) const { return !shard_map_ || shard_map_[relay_port] == shard_; }

  private:
    // The latch policies (dataplane/src/latch/) reach the processor only
    // through LatchContext.
    friend class LatchContext;

    struct GatewayCache {
        MacAddr mac{};
        uint64_t valid_until = 0;  // TSC; 0 = look it up
    };

    Verdict drop(DropReason r) {
        stats_.drops[static_cast<unsigned>(r)].add();
        return {Action::drop, r};
    }
    Verdict refuse_latch(Session& s, int side);
    void emit(SlowPathEvent::Kind kind, uint16_t port, Ipv4 ip, const MacAddr& mac);

    Verdict handle_arp(uint8_t* frame, uint8_t* arp, uint32_t avail, uint16_t port);
    bool is_martian(Ipv4 src) const { return martians_.contains(src); }
    Verdict handle_icmp(uint8_t* frame, uint8_t* ip, uint32_t total_len, uint16_t port,
                        uint64_t now);
    Verdict handle_udp(uint8_t* frame, uint8_t* ip, uint32_t total_len, uint16_t port,
                       uint8_t addr_index, uint64_t now);
    // A datagram on a session of latch policy `Policy` (a LatchRules type):
    // data between confirmed endpoints is forwarded here, the rest is the policy's.
    template <typename Policy>
    Verdict on_session(Session& s, uint32_t slot, Datagram& d, int from, uint64_t now);
    // Accounts a packet from side `from` against the session's limits.
    bool within_limits(Session& s, int from, uint32_t bytes, uint64_t now);
    void latch(Session& s, int side, SocketAddress at, uint16_t port);
    bool on_link(uint16_t port, Ipv4 ip) const;
    // Rewrites the datagram to go from (relay address, relay port) to `dst`:
    // transmit, or hold when the next hop's MAC is unknown (a resolve event is
    // emitted); counted as forwarded either way.
    Verdict forward(Session& s, int from, Datagram& d, SocketAddress dst, bool dst_on_link,
                    uint64_t now);
    // Turns a received frame around towards its L2 sender (replies).
    void reflect_ethernet(uint8_t* frame, uint16_t port);
    // Turns a datagram around to its sender, in place (same size): addresses,
    // ports, checksums, Ethernet.
    Verdict reply_in_place(Datagram& d);
    const uint32_t* peek_index(const uint8_t* frame, uint32_t len, uint16_t port) const;

    SessionTable& sessions_;
    const NeighbourTable& neighbours_;
    std::vector<PortContext> ports_;
    uint64_t tsc_hz_;
    WorkerStats& stats_;
    uint8_t shard_;
    const uint8_t* shard_map_;
    // The node's own addresses (every port's), and those plus the network and
    // broadcast address of every configured subnet up to /30 (RFC 1122
    // 3.2.1.3; RFC 3021: a /31 or /32 has neither): sources nobody else may use.
    AddressSet own_addresses_;
    AddressSet martians_;
    crypto::Mac1 mac1_;
    SourceRateLimiter handshake_sources_;  // per (source address, session), before MACs
    Gcra icmp_budget_;
    std::array<GatewayCache, kMaxPorts> gateway_cache_{};
    std::array<SlowPathEvent, kMaxEvents> events_{};
    unsigned event_count_ = 0;
    uint32_t expiry_cursor_ = 0;
};

template <typename F>
unsigned PacketProcessor::expire_idle(uint64_t now, uint32_t budget, F&& on_expired) {
    unsigned expired = 0;
    const uint32_t cap = sessions_.capacity();
    for (uint32_t i = 0; i < budget && i < cap; ++i) {
        uint32_t slot = expiry_cursor_;
        expiry_cursor_ = expiry_cursor_ + 1 == cap ? 0 : expiry_cursor_ + 1;
        Session& s = sessions_.at(slot);
        if (s.id == 0 || !owns(s.relay_port)) continue;
        if (now - s.last_activity > s.idle_timeout && now > s.last_activity) {
            uint64_t id = s.id;
            sessions_.uninstall(slot);
            stats_.sessions_expired.add();
            on_expired(slot, id);
            ++expired;
        }
    }
    return expired;
}

}  // namespace relay::dp
