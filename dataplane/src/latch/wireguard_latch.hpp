// Latch policy `wireguard` (BRIEF §2, docs/PROTOCOL.md "Latch policy
// wireguard"): a side's endpoint is learnt from WireGuard handshakes whose
// mac1 verifies, confirmed only by the other side's answer.  Fixture table:
// tests/fixtures/wireguard_latch_test.cpp.
#pragma once

#include "latch_context.hpp"
#include "relay/wire/headers.hpp"
#include "relay/wire/wireguard.hpp"

namespace relay::dp {

struct WireGuardLatch {
    // Transport data (type 4 with three zero bytes) is data; a data message
    // shorter than a keepalive is malformed; anything else is the policy's.
    static PayloadKind classify(const Datagram& d) {
        if (d.payload_len < 4 || wire::load_le32(d.payload) != wire::wg::kTypeData)
            return PayloadKind::latch;
        return d.payload_len < wire::wg::kDataMinLen ? PayloadKind::malformed : PayloadKind::data;
    }

    static Verdict on_latch_message(LatchContext& ctx, Session& s, uint32_t slot, Datagram& d,
                                    int from, uint64_t now);
};

static_assert(LatchRules<WireGuardLatch>);

}  // namespace relay::dp
