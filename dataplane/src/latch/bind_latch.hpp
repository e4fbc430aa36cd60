// Latch policy `bind` (BRIEF §2, docs/PROTOCOL.md "Latch policy bind"): for
// generic UDP applications; a side latches with a bind packet MACed under the
// session secret, answered in place and never forwarded.  Fixture table:
// tests/fixtures/bind_latch_test.cpp.
#pragma once

#include <cstring>

#include "latch_context.hpp"
#include "relay/wire/bind.hpp"
#include "relay/wire/headers.hpp"

namespace relay::dp {

struct BindLatch {
    // A 40-byte payload starting with "RLYB" is a bind; everything else is data.
    static PayloadKind classify(const Datagram& d) {
        return d.payload_len == wire::bind::kLen &&
                       std::memcmp(d.payload, wire::bind::kRequestMagic.data(), 4) == 0
                   ? PayloadKind::latch
                   : PayloadKind::data;
    }

    static Verdict on_latch_message(LatchContext& ctx, Session& s, uint32_t slot, Datagram& d,
                                    int from, uint64_t now);
};

static_assert(LatchRules<BindLatch>);

}  // namespace relay::dp
