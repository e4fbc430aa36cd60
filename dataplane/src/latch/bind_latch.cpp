#include "bind_latch.hpp"

namespace relay::dp {

using wire::load_le64;
namespace bind = wire::bind;

Verdict BindLatch::on_latch_message(LatchContext& ctx, Session& s, uint32_t slot, Datagram& d,
                                    int from, uint64_t now) {
    uint8_t* payload = d.payload;
    if (payload[4] != bind::kVersion || payload[5] > 1 || payload[6] != 0 || payload[7] != 0)
        return ctx.drop(DropReason::malformed_handshake);
    const int side = payload[5];
    SideLatch& me = s.side[side];
    // Cheap checks before the MAC: a bound source cannot speak for the other
    // side; the side must expect this source; the source must have budget.
    if (from >= 0 && from != side) return ctx.refuse(s, side);
    if (!me.expects(d.src)) return ctx.drop(DropReason::unexpected_source);
    if (!ctx.admit_source(slot, d.src.ip, now)) return ctx.drop(DropReason::rate_limited);
    const BindSecret& secret = ctx.cold(slot).spec.bind_secret;
    ctx.stats().mac_checks.add();
    if (load_le64(payload + 8) != s.id || !bind::verify_mac(secret, payload, d.src))
        return ctx.refuse(s, side);
    // The session's budget is spent on verified binds only.
    if (!s.handshakes.take(now, 1)) return ctx.drop(DropReason::rate_limited);

    // Authenticated from here on, and the ack is no larger than the request.
    const uint64_t counter = load_le64(payload + 16);
    const Endpoint& ep = s.ep[side];
    uint8_t status = bind::kStatusLatched;
    if (counter > me.bind_counter) {
        ctx.latch(s, side, d.src, d.port);
        me.bind_counter = counter;
        s.last_activity = now;
    } else if (!(counter == me.bind_counter && ep.latched && ep.ip == d.src.ip &&
                 ep.port == d.src.port)) {
        // An older bind (a replay, or a reordered retry) must not move the latch.
        status = bind::kStatusStale;
        me.latch_refused++;
        ctx.stats().latch_refused.add();
    }
    bind::make_ack(payload, secret, status, d.src);
    ctx.stats().bind_acks.add();
    return ctx.reply(d);
}

}  // namespace relay::dp
