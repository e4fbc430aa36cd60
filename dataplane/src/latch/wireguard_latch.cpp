#include "wireguard_latch.hpp"

#include <span>

namespace relay::dp {

using wire::load_le32;
namespace wg = wire::wg;

namespace {

// The sides a handshake from `src` may speak for (bit i = side i): those that
// expect it, and of those only its own side when it is a confirmed endpoint.
unsigned speakers(const Session& s, SocketAddress src, int from) {
    unsigned mask = (s.side[0].expects(src) ? 1u : 0u) | (s.side[1].expects(src) ? 2u : 0u);
    if (from >= 0) mask &= 1u << from;
    return mask;
}

// The candidate slot a verified initiation `index` from `src` takes, or
// nullptr.  The same initiation again takes its own slot.  Otherwise a free
// slot, else the oldest one that awaits nothing (never forwarded, or
// forwarded at least `hold` ago); else the oldest of the same source (a peer
// may replace its own pending initiation); else, only for the side's
// confirmed endpoint (a rekey), the oldest slot of all.  An initiation
// forwarded less than `hold` ago is never replaced by another source.
Candidate* slot_for(SideLatch& me, SocketAddress src, uint32_t index, bool from_endpoint,
                    uint64_t now, uint64_t hold) {
    Candidate* releasable = nullptr;
    Candidate* own = nullptr;
    Candidate* oldest = nullptr;
    for (Candidate& c : me.cand) {
        if (!c.used()) {
            if (!releasable || releasable->used()) releasable = &c;
            continue;
        }
        if (c.at(src) && c.sender_index == index) return &c;
        const bool awaits = c.forwarded && now < c.seen + hold;
        if (!awaits && (!releasable || (releasable->used() && c.seen < releasable->seen)))
            releasable = &c;
        if (c.at(src) && (!own || c.seen < own->seen)) own = &c;
        if (!oldest || c.seen < oldest->seen) oldest = &c;
    }
    if (releasable) return releasable;
    if (own) return own;
    return from_endpoint ? oldest : nullptr;
}

const Candidate* latest(const SideLatch& side) {
    const Candidate* found = nullptr;
    for (const Candidate& c : side.cand)
        if (c.used() && (!found || c.seen > found->seen)) found = &c;
    return found;
}

void forget_candidates_at(SideLatch& side, SocketAddress at) {
    for (Candidate& c : side.cand)
        if (c.at(at)) c = Candidate{};
}

Verdict on_initiation(LatchContext& ctx, Session& s, Datagram& d, int sender, int from,
                      uint64_t now) {
    SideLatch& me = s.side[sender];
    const SideLatch& peer = s.side[1 - sender];
    const Endpoint& peer_ep = s.ep[1 - sender];
    const uint32_t index = load_le32(d.payload + wg::kSenderIndex);
    // The initiation that established the latch, again: a replay (WireGuard
    // makes a new index for every initiation).  The real peer would not
    // answer it, so it would only hold a slot.
    if (me.has_confirmed_index && me.confirmed_index == index) return ctx.refuse(s, sender);
    // Nor can the other side's candidate speak for this side: one address is
    // never both sides (it would be sent its own initiation).
    for (const Candidate& other : peer.cand)
        if (other.used() && other.at(d.src)) return ctx.refuse(s, sender);

    // A candidate until the other side answers this very initiation.
    Candidate* c = slot_for(me, d.src, index, from == sender, now, ctx.ms_to_tsc(kCandidateHoldMs));
    if (!c) {
        s.dropped[sender]++;
        return ctx.drop(DropReason::candidates_busy);
    }
    *c = Candidate{};
    c->seen = now;
    c->ip = d.src.ip;
    c->port = d.src.port;
    c->sender_index = index;

    SocketAddress to;
    if (peer_ep.latched) {
        to = {peer_ep.ip, peer_ep.port};
    } else if (const Candidate* other = latest(peer)) {
        to = {other->ip, other->port};
    } else {
        s.dropped[sender]++;
        return ctx.drop(DropReason::not_latched);
    }
    const Verdict v = peer_ep.latched ? ctx.forward_to_endpoint(s, sender, d, 1 - sender, now)
                                      : ctx.forward(s, sender, d, to, now);
    if (v.action == Action::transmit || v.action == Action::hold) {
        c->forwarded = true;
        c->forwarded_ip = to.ip;
        c->forwarded_port = to.port;
    }
    return v;
}

// A response confirms the candidate whose initiation it answers, and latches
// the responder where it answered from.  It must come from where that
// initiation was forwarded: the real peer there rejects a replayed
// initiation, and a replayed response from anywhere else is refused, so
// replays never move a latch.
Verdict on_response(LatchContext& ctx, Session& s, Datagram& d, int sender, uint64_t now) {
    SideLatch& me = s.side[sender];
    SideLatch& peer = s.side[1 - sender];
    const uint32_t answered = load_le32(d.payload + wg::kResponseReceiverIndex);
    Candidate* match = nullptr;
    for (Candidate& c : peer.cand)
        if (c.used() && c.forwarded && c.sender_index == answered && c.forwarded_ip == d.src.ip &&
            c.forwarded_port == d.src.port)
            match = &c;
    // update() forgets candidates outside a new expectation; checked here too,
    // so that nothing outside it is ever confirmed.
    if (!match || !peer.expects({match->ip, match->port})) return ctx.refuse(s, sender);
    const SocketAddress initiator{match->ip, match->port};
    peer.has_confirmed_index = true;
    peer.confirmed_index = match->sender_index;
    forget_candidates_at(peer, initiator);
    forget_candidates_at(me, d.src);
    ctx.latch(s, 1 - sender, initiator, d.port);
    ctx.latch(s, sender, d.src, d.port);
    return ctx.forward_to_endpoint(s, sender, d, 1 - sender, now);
}

// Sent by a known endpoint (confirmed or candidate) in answer to the other
// side's initiation, so it goes where that initiation came from.  It carries
// no MAC the relay could check.
Verdict on_cookie_reply(LatchContext& ctx, Session& s, Datagram& d, int from, uint64_t now) {
    int sender = from;
    for (int i = 0; i < 2 && sender < 0; ++i)
        for (const Candidate& c : s.side[i].cand)
            if (c.used() && c.at(d.src)) sender = i;
    if (sender < 0) return ctx.drop(DropReason::not_latched);
    const SideLatch& peer = s.side[1 - sender];
    if (!ctx.within_limits(s, sender, d.ip_len, now)) return ctx.drop(DropReason::rate_limited);
    const Candidate* to = nullptr;
    for (const Candidate& c : peer.cand)
        if (c.used() && c.forwarded && c.forwarded_ip == d.src.ip && c.forwarded_port == d.src.port)
            to = &c;
    if (!to) to = latest(peer);
    if (to) return ctx.forward(s, sender, d, {to->ip, to->port}, now);
    if (s.ep[1 - sender].latched) return ctx.forward_to_endpoint(s, sender, d, 1 - sender, now);
    s.dropped[sender]++;
    return ctx.drop(DropReason::not_latched);
}

}  // namespace

Verdict WireGuardLatch::on_latch_message(LatchContext& ctx, Session& s, uint32_t slot, Datagram& d,
                                         int from, uint64_t now) {
    uint8_t* payload = d.payload;
    const uint32_t plen = d.payload_len;
    if (plen < 4 || payload[1] != 0 || payload[2] != 0 || payload[3] != 0)
        return ctx.drop(DropReason::malformed_handshake);
    const uint8_t type = payload[0];
    if (type == wg::kTypeCookieReply) {
        if (plen != wg::kCookieReplyLen) return ctx.drop(DropReason::malformed_handshake);
        return on_cookie_reply(ctx, s, d, from, now);
    }
    if (type != wg::kTypeInitiation && type != wg::kTypeResponse)
        return ctx.drop(DropReason::malformed_handshake);
    const bool initiation = type == wg::kTypeInitiation;
    if (plen != (initiation ? wg::kInitiationLen : wg::kResponseLen))
        return ctx.drop(DropReason::malformed_handshake);

    // Cheap checks before any MAC: who may this source speak for, and has it
    // budget left on this session?
    const unsigned may_speak_for = speakers(s, d.src, from);
    if (may_speak_for == 0) return ctx.drop(DropReason::unexpected_source);
    if (!ctx.admit_source(slot, d.src.ip, now)) return ctx.drop(DropReason::rate_limited);

    // mac1 is keyed with the receiver's public key: it tells who the sender
    // is.  Only the sides this source may speak for are tried.
    const size_t mac1_at = initiation ? wg::kInitiationMac1 : wg::kResponseMac1;
    const std::span<const uint8_t> msg(payload, plen);
    const SessionCold& cold = ctx.cold(slot);
    int sender = -1;
    for (int side = 0; side < 2 && sender < 0; ++side)
        if ((may_speak_for >> side & 1u) && ctx.verify_mac1(cold.mac1_key[1 - side], msg, mac1_at))
            sender = side;
    if (sender < 0) {
        ctx.stats().latch_refused.add();
        return ctx.drop(DropReason::latch_refused);
    }
    // The session's budget is spent on verified messages only, so junk
    // cannot use up the real peers' handshakes.
    if (!s.handshakes.take(now, 1)) return ctx.drop(DropReason::rate_limited);
    if (!ctx.within_limits(s, sender, d.ip_len, now)) return ctx.drop(DropReason::rate_limited);
    return initiation ? on_initiation(ctx, s, d, sender, from, now)
                      : on_response(ctx, s, d, sender, now);
}

}  // namespace relay::dp
