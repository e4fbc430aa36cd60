#include "wireguard_latch.hpp"

#include <span>

namespace relay::dp {

using wire::load_le32;
namespace wg = wire::wg;

Verdict WireGuardLatch::on_latch_message(LatchContext& ctx, Session& s, uint32_t slot, Datagram& d,
                                         int from, uint64_t now) {
    uint8_t* payload = d.payload;
    const uint32_t plen = d.payload_len;
    if (plen < 4 || payload[1] != 0 || payload[2] != 0 || payload[3] != 0)
        return ctx.drop(DropReason::malformed_handshake);
    const uint8_t type = payload[0];

    if (type == wg::kTypeInitiation || type == wg::kTypeResponse) {
        const size_t expect_len =
            type == wg::kTypeInitiation ? wg::kInitiationLen : wg::kResponseLen;
        if (plen != expect_len) return ctx.drop(DropReason::malformed_handshake);
        if (!s.handshakes.take(now, 1)) return ctx.drop(DropReason::rate_limited);
        const size_t mac1_at =
            type == wg::kTypeInitiation ? wg::kInitiationMac1 : wg::kResponseMac1;
        const std::span<const uint8_t> msg(payload, plen);
        const SessionCold& cold = ctx.cold(slot);
        // mac1 is keyed with the receiver's public key: it tells who the sender is.
        // Try the side this source is latched to first.
        int sender = -1;
        const int first_receiver = from >= 0 ? 1 - from : 0;
        for (int k = 0; k < 2 && sender < 0; ++k) {
            const int receiver = k == 0 ? first_receiver : 1 - first_receiver;
            if (ctx.mac1().verify(cold.mac1_key[receiver], msg, mac1_at)) sender = 1 - receiver;
        }
        if (sender < 0) {
            ctx.stats().latch_refused.add();
            return ctx.drop(DropReason::latch_refused);
        }
        SideLatch& me = s.side[sender];
        SideLatch& peer = s.side[1 - sender];
        const Endpoint& peer_ep = s.ep[1 - sender];
        // A latched source cannot speak for the other side.
        if (!me.allowed.contains(d.src.ip) || (from >= 0 && from != sender))
            return ctx.refuse(s, sender);
        if (!ctx.within_limits(s, sender, d.ip_len, now)) return ctx.drop(DropReason::rate_limited);

        if (type == wg::kTypeInitiation) {
            // A candidate until the other side answers this very initiation.
            me.has_candidate = true;
            me.cand_ip = d.src.ip;
            me.cand_port = d.src.port;
            me.cand_sender_index = load_le32(payload + wg::kSenderIndex);
            me.cand_forwarded = false;
            SocketAddress to;
            if (peer_ep.latched)
                to = {peer_ep.ip, peer_ep.port};
            else if (peer.has_candidate)
                to = {peer.cand_ip, peer.cand_port};
            else {
                s.dropped[sender]++;
                return ctx.drop(DropReason::not_latched);
            }
            const Verdict v = ctx.forward(s, sender, d, to, now);
            if (v.action == Action::transmit || v.action == Action::hold) {
                me.cand_forwarded = true;
                me.cand_forwarded_ip = to.ip;
                me.cand_forwarded_port = to.port;
            }
            return v;
        }

        // A response confirms the candidate whose initiation it answers, and
        // latches the responder where it answered from.  It must come from
        // where that initiation was forwarded: the real peer there rejects a
        // replayed initiation, and a replayed response from anywhere else is
        // refused, so replays never move a latch.
        const uint32_t answered = load_le32(payload + wg::kResponseReceiverIndex);
        if (!peer.has_candidate || peer.cand_sender_index != answered || !peer.cand_forwarded ||
            peer.cand_forwarded_ip != d.src.ip || peer.cand_forwarded_port != d.src.port)
            return ctx.refuse(s, sender);
        ctx.latch(s, 1 - sender, {peer.cand_ip, peer.cand_port}, d.port);
        peer.has_candidate = false;
        ctx.latch(s, sender, d.src, d.port);
        me.has_candidate = false;
        return ctx.forward_to_endpoint(s, sender, d, 1 - sender, now);
    }

    if (type == wg::kTypeCookieReply) {
        if (plen != wg::kCookieReplyLen) return ctx.drop(DropReason::malformed_handshake);
        // Sent by a known endpoint (confirmed or candidate) in answer to the
        // other side's initiation, so it goes where that initiation came from.
        int sender = from;
        for (int i = 0; i < 2 && sender < 0; ++i)
            if (s.side[i].has_candidate && s.side[i].cand_ip == d.src.ip &&
                s.side[i].cand_port == d.src.port)
                sender = i;
        if (sender < 0) return ctx.drop(DropReason::not_latched);
        const SideLatch& peer = s.side[1 - sender];
        const Endpoint& peer_ep = s.ep[1 - sender];
        if (!ctx.within_limits(s, sender, d.ip_len, now)) return ctx.drop(DropReason::rate_limited);
        if (peer.has_candidate)
            return ctx.forward(s, sender, d, {peer.cand_ip, peer.cand_port}, now);
        if (peer_ep.latched) return ctx.forward_to_endpoint(s, sender, d, 1 - sender, now);
        s.dropped[sender]++;
        return ctx.drop(DropReason::not_latched);
    }
    return ctx.drop(DropReason::malformed_handshake);
}

}  // namespace relay::dp
