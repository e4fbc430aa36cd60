// The one interface between the packet processor and a latch policy.
//
// A latch policy (BRIEF §2: how a session learns its two endpoints) is a type
// with two static functions, checked at compile time by `LatchRules`:
//
//   static PayloadKind classify(const Datagram& d);
//       data (forwarded between confirmed endpoints by the processor itself,
//       the fast path), latch (the policy's own messages), or malformed;
//   static Verdict on_latch_message(LatchContext& ctx, Session& s, uint32_t slot,
//                                   Datagram& d, int from, uint64_t now);
//       everything that is not data: handshakes, binds.  `from` is the side
//       whose confirmed endpoint sent it, or -1.
//
// PacketProcessor dispatches on Session::policy with a switch (no virtual
// call).  Each policy lives in its own file here (wireguard_latch, bind_latch)
// with its fixture table beside it in tests/fixtures; a new rule goes into the
// policy's file, a new policy is a new pair of files, a LatchPolicy value and
// a case in PacketProcessor::handle_udp.
#pragma once

#include <concepts>
#include <cstdint>
#include <span>

#include "packet_processor.hpp"

namespace relay::dp {

enum class PayloadKind : uint8_t { data, latch, malformed };

// What a latch policy may do: the processor's operations it needs, nothing else.
class LatchContext {
  public:
    explicit LatchContext(PacketProcessor& p) : p_(p) {}

    // Counted drop (worker totals).
    Verdict drop(DropReason r) { return p_.drop(r); }
    // A handshake or bind that failed verification: counted against `side`.
    Verdict refuse(Session& s, int side) { return p_.refuse_latch(s, side); }
    // Rewrites `d` towards `to` and forwards it (counted as forwarded).
    Verdict forward(Session& s, int from, Datagram& d, SocketAddress to, bool to_on_link,
                    uint64_t now) {
        return p_.forward(s, from, d, to, to_on_link, now);
    }
    Verdict forward(Session& s, int from, Datagram& d, SocketAddress to, uint64_t now) {
        return p_.forward(s, from, d, to, p_.on_link(d.port, to.ip), now);
    }
    Verdict forward_to_endpoint(Session& s, int from, Datagram& d, int to_side, uint64_t now) {
        const Endpoint& ep = s.ep[to_side];
        return p_.forward(s, from, d, {ep.ip, ep.port}, ep.on_link, now);
    }
    // Sends `d` back to its sender, rewritten in place (same size).
    Verdict reply(Datagram& d) { return p_.reply_in_place(d); }
    // Confirms `side` at `at` (a latch or a roam).
    void latch(Session& s, int side, SocketAddress at, uint16_t port) {
        p_.latch(s, side, at, port);
    }
    // The session's per-direction packet and byte limits.
    bool within_limits(Session& s, int from, uint32_t bytes, uint64_t now) {
        return !s.limited || p_.within_limits(s, from, bytes, now);
    }

    // The budget of source address `ip` on session `slot`, spent before any
    // MAC is computed (source_ratelimiter.hpp).
    bool admit_source(uint32_t slot, Ipv4 ip, uint64_t now) {
        return p_.handshake_sources_.allow(ip, slot, now);
    }
    // WireGuard mac1 of `message` under `key` (counted in mac_checks).
    bool verify_mac1(const crypto::Mac1Key& key, std::span<const uint8_t> message, size_t mac1_at) {
        p_.stats_.mac_checks.add();
        return p_.mac1_.verify(key, message, mac1_at);
    }

    const SessionCold& cold(uint32_t slot) const { return p_.sessions_.cold(slot); }
    WorkerStats& stats() { return p_.stats_; }
    uint64_t ms_to_tsc(uint64_t ms) const { return ms * (p_.tsc_hz_ / 1000); }

  private:
    PacketProcessor& p_;
};

template <typename P>
concept LatchRules = requires(const Datagram& cd, LatchContext& ctx, Session& s, uint32_t slot,
                              Datagram& d, int from, uint64_t now) {
    { P::classify(cd) } -> std::same_as<PayloadKind>;
    { P::on_latch_message(ctx, s, slot, d, from, now) } -> std::same_as<Verdict>;
};

}  // namespace relay::dp
