#include "nat_policy.hpp"

#include <algorithm>

namespace relay::control {

NatClass classify(const NatObservation& o) {
    if (!o.seen_on_port[0] || !o.seen_on_port[1]) return NatClass::unknown;
    if (!(*o.seen_on_port[0] == *o.seen_on_port[1])) return NatClass::symmetric;
    if (o.reflexive_is_local) return NatClass::open;
    if (o.filtering_probed && o.other_port_reply_seen) return NatClass::cone;
    return NatClass::port_restricted;
}

bool can_punch(NatClass a, NatClass b) {
    auto hard = [](NatClass c) { return c == NatClass::port_restricted || c == NatClass::unknown; };
    if (a == NatClass::symmetric) return !(b == NatClass::symmetric || hard(b));
    if (b == NatClass::symmetric) return !hard(a);
    return true;
}

FireDelays fire_delays(uint32_t rtt_a_us, uint32_t rtt_b_us, uint32_t lead_ms) {
    // Round trips above 10 s are not believable; clamping keeps the sum in range.
    const uint64_t a = std::min<uint32_t>(rtt_a_us, 10'000'000);
    const uint64_t b = std::min<uint32_t>(rtt_b_us, 10'000'000);
    const uint64_t instant_us = uint64_t{lead_ms} * 1000 + std::max(a, b) / 2;
    // Rounded to the nearest millisecond.
    return FireDelays{static_cast<uint32_t>((instant_us - a / 2 + 500) / 1000),
                      static_cast<uint32_t>((instant_us - b / 2 + 500) / 1000)};
}

}  // namespace relay::control
