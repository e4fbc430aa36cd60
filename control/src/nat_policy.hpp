// What the NAT classes of two peers decide (BRIEF §6), how a peer's class follows
// from what control observed of it, and when each peer fires its punch.
#pragma once

#include <cstdint>
#include <optional>

#include "relay/control/messages.hpp"
#include "relay/net.hpp"

namespace relay::control {

// What control saw of one peer's agent socket.
struct NatObservation {
    std::optional<SocketAddress> seen_on_port[2];  // its source as seen on each control port
    bool reflexive_is_local = false;  // the reflexive IP is one of its own local addresses
    bool filtering_probed = false;    // it reported the other-port probe's result
    bool other_port_reply_seen = false;
};

// unknown until both control ports have seen it.  Endpoint-dependent mapping (different
// sources on the two ports) is symmetric.  Endpoint-independent mapping is cone when a
// reply from the other port got through its NAT, port_restricted otherwise (also while
// the probe is outstanding: the cautious answer).
NatClass classify(const NatObservation& o);

// BRIEF §6: punching works unless one side is symmetric and the other symmetric or
// port-restricted.  open behaves as full cone; unknown is tried as port_restricted.
bool can_punch(NatClass a, NatClass b);

// Delays from receipt so that both first packets leave at the same instant: the punch
// reaches a peer about half its round trip after control sends it, so each delay is the
// common instant (lead + half the larger round trip) less half the peer's own.
struct FireDelays {
    uint32_t a_ms = 0;
    uint32_t b_ms = 0;
};
FireDelays fire_delays(uint32_t rtt_a_us, uint32_t rtt_b_us, uint32_t lead_ms);

}  // namespace relay::control
