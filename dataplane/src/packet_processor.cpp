#include "packet_processor.hpp"

#include <rte_prefetch.h>

#include <cstring>

#include "checksum.hpp"
#include "relay/wire/bind.hpp"
#include "relay/wire/headers.hpp"
#include "relay/wire/wireguard.hpp"

namespace relay::dp {

using namespace relay::wire;

namespace {

bool is_bad_source(Ipv4 ip) {
    const uint8_t first = static_cast<uint8_t>(ip >> 24);
    return ip == 0 || first == 127 || first >= 224;  // zero, loopback, multicast, class E/broadcast
}

void store_mac(uint8_t* p, const MacAddr& mac) {
    std::memcpy(p, mac.bytes.data(), 6);
}

// Recomputes the IPv4 header checksum (20 bytes: cheaper than tracking deltas).
void set_ipv4_checksum(uint8_t* ip) {
    store_be16(ip + kIpChecksum, 0);
    store_be16(ip + kIpChecksum, checksum_finish(checksum_partial(ip, kIpv4HeaderLen)));
}

// Turns an IPv4 header around for a reply that we originate: addresses
// swapped, a fresh TTL, the checksum recomputed.
void reflect_ipv4(uint8_t* ip) {
    uint8_t tmp[4];
    std::memcpy(tmp, ip + kIpSrc, 4);
    std::memcpy(ip + kIpSrc, ip + kIpDst, 4);
    std::memcpy(ip + kIpDst, tmp, 4);
    ip[kIpTtl] = PacketProcessor::kOutputTtl;
    set_ipv4_checksum(ip);
}

// Full UDP checksum with the IPv4 pseudo header (small replies only).
void set_udp_checksum(uint8_t* ip, uint8_t* udp, uint16_t udp_len) {
    store_be16(udp + kUdpChecksum, 0);
    uint32_t sum = checksum_partial(ip + kIpSrc, 8);
    sum += kIpProtoUdp;
    sum += udp_len;
    sum = checksum_partial(udp, udp_len, sum);
    uint16_t c = checksum_finish(sum);
    store_be16(udp + kUdpChecksum, c == 0 ? 0xffff : c);
}

}  // namespace

PacketProcessor::PacketProcessor(SessionTable& sessions, const NeighbourTable& neighbours,
                                 std::vector<PortContext> ports, uint64_t tsc_hz,
                                 WorkerStats& stats, uint8_t shard, const uint8_t* shard_map)
    : sessions_(sessions),
      neighbours_(neighbours),
      ports_(std::move(ports)),
      tsc_hz_(tsc_hz),
      stats_(stats),
      shard_(shard),
      shard_map_(shard_map) {
    icmp_budget_.configure(kIcmpPerSecond, kIcmpBurst, tsc_hz_);
}

void PacketProcessor::emit(SlowPathEvent::Kind kind, uint16_t port, Ipv4 ip, const MacAddr& mac) {
    if (event_count_ < kMaxEvents) events_[event_count_++] = {kind, port, ip, mac};
}

void PacketProcessor::reflect_ethernet(uint8_t* frame, uint16_t port) {
    std::memcpy(frame + kEthDst, frame + kEthSrc, 6);
    store_mac(frame + kEthSrc, ports_[port].mac);
}

Verdict PacketProcessor::process(uint8_t* frame, uint32_t len, uint16_t port, uint64_t now) {
    if (port >= ports_.size()) return drop(DropReason::not_ours);
    const PortContext& pc = ports_[port];
    if (len < kEthHeaderLen) return drop(DropReason::malformed_ethernet);

    uint32_t l2_len = kEthHeaderLen;
    uint16_t ether_type = load_be16(frame + kEthType);
    if (ether_type == kEtherTypeVlan) {
        if (len < kEthHeaderLen + kVlanTagLen) return drop(DropReason::malformed_ethernet);
        const uint16_t vid = load_be16(frame + kEthHeaderLen) & 0x0fff;
        if (pc.vlan == 0 || vid != pc.vlan) return drop(DropReason::vlan_mismatch);
        ether_type = load_be16(frame + kEthHeaderLen + 2);
        l2_len += kVlanTagLen;
    } else if (pc.vlan != 0) {
        return drop(DropReason::vlan_mismatch);
    }

    if (ether_type == kEtherTypeArp) return handle_arp(frame, frame + l2_len, len - l2_len, port);
    if (ether_type != kEtherTypeIpv4) return drop(DropReason::unsupported_ethertype);

    uint8_t* ip = frame + l2_len;
    const uint32_t avail = len - l2_len;
    if (avail < kIpv4HeaderLen) return drop(DropReason::malformed_ipv4);
    const uint8_t ver_ihl = ip[kIpVerIhl];
    if ((ver_ihl >> 4) != 4 || (ver_ihl & 0x0f) < 5) return drop(DropReason::malformed_ipv4);
    if ((ver_ihl & 0x0f) != 5) return drop(DropReason::ip_options);
    const uint16_t total_len = load_be16(ip + kIpTotalLen);
    if (total_len < kIpv4HeaderLen || total_len > avail) return drop(DropReason::malformed_ipv4);
    if (!ipv4_header_checksum_ok(ip)) return drop(DropReason::malformed_ipv4);
    if (load_be16(ip + kIpFragOff) & (kIpFlagMoreFragments | kIpFragOffsetMask))
        return drop(DropReason::fragment);

    const Ipv4 dst = load_be32(ip + kIpDst);
    int addr = -1;
    for (unsigned i = 0; i < pc.address_count; ++i) {
        if (pc.addresses[i].addr == dst) {
            addr = i;
            break;
        }
    }
    if (addr < 0) return drop(DropReason::not_ours);
    if (is_bad_source(load_be32(ip + kIpSrc))) return drop(DropReason::bad_source);
    if (ip[kIpTtl] == 0) return drop(DropReason::ttl_expired);

    switch (ip[kIpProto]) {
        case kIpProtoUdp:
            return handle_udp(frame, ip, total_len, port, pc.table_index[addr], now);
        case kIpProtoIcmp:
            return handle_icmp(frame, ip, total_len, port, now);
        default:
            return drop(DropReason::unsupported_protocol);
    }
}

Verdict PacketProcessor::handle_arp(uint8_t* frame, uint8_t* arp, uint32_t avail, uint16_t port) {
    if (avail < kArpLen || load_be16(arp + kArpHtype) != kArpHtypeEthernet ||
        load_be16(arp + kArpPtype) != kEtherTypeIpv4 || arp[kArpHlen] != 6 || arp[kArpPlen] != 4)
        return drop(DropReason::malformed_arp);
    const uint16_t op = load_be16(arp + kArpOp);
    if (op != kArpOpRequest && op != kArpOpReply) return drop(DropReason::malformed_arp);

    const PortContext& pc = ports_[port];
    const Ipv4 sender_ip = load_be32(arp + kArpSpa);
    const Ipv4 target_ip = load_be32(arp + kArpTpa);
    MacAddr sender_mac;
    std::memcpy(sender_mac.bytes.data(), arp + kArpSha, 6);

    bool target_is_ours = false;
    for (unsigned i = 0; i < pc.address_count; ++i)
        target_is_ours |= pc.addresses[i].addr == target_ip;

    if (op == kArpOpReply) {
        // The service thread only takes answers to its own requests (and
        // refreshes of neighbours it knows), so a forged reply cannot plant
        // an entry for an address we never asked about.
        if (target_is_ours && !is_bad_source(sender_ip))
            emit(SlowPathEvent::Kind::learn, port, sender_ip, sender_mac);
        return drop(DropReason::arp_consumed);
    }
    if (!target_is_ours) return drop(DropReason::arp_not_ours);

    // A request for one of our addresses: the asker is on-link and wants to
    // talk to us, so learn it (RFC 826) and answer in place.
    if (!is_bad_source(sender_ip)) emit(SlowPathEvent::Kind::learn, port, sender_ip, sender_mac);
    store_be16(arp + kArpOp, kArpOpReply);
    std::memcpy(arp + kArpTha, arp + kArpSha, 6);
    store_be32(arp + kArpTpa, sender_ip);
    store_mac(arp + kArpSha, pc.mac);
    store_be32(arp + kArpSpa, target_ip);
    std::memcpy(frame + kEthDst, sender_mac.bytes.data(), 6);
    store_mac(frame + kEthSrc, pc.mac);
    stats_.arp_replies.add();
    return {Action::transmit, DropReason::none};
}

Verdict PacketProcessor::handle_icmp(uint8_t* frame, uint8_t* ip, uint32_t total_len, uint16_t port,
                                     uint64_t now) {
    if (total_len < kIpv4HeaderLen + kIcmpHeaderLen) return drop(DropReason::malformed_icmp);
    uint8_t* icmp = ip + kIpv4HeaderLen;
    const uint32_t icmp_len = total_len - kIpv4HeaderLen;
    if (icmp[kIcmpType] != kIcmpEchoRequest || icmp[kIcmpCode] != 0)
        return drop(DropReason::unsupported_icmp);
    if (checksum_fold(checksum_partial(icmp, icmp_len)) != 0xffff)
        return drop(DropReason::malformed_icmp);
    if (!icmp_budget_.take(now, 1)) return drop(DropReason::rate_limited);

    // Echo reply of the same size: type 8 -> 0 changes one 16-bit word.
    const uint16_t old_word = load_be16(icmp + kIcmpType);
    icmp[kIcmpType] = kIcmpEchoReply;
    const uint16_t new_word = load_be16(icmp + kIcmpType);
    store_be16(icmp + kIcmpChecksum, checksum_adjust(load_be16(icmp + kIcmpChecksum),
                                                     checksum_delta16(old_word, new_word)));
    reflect_ipv4(ip);
    reflect_ethernet(frame, port);  // back to whoever handed it to us on the link
    stats_.icmp_replies.add();
    return {Action::transmit, DropReason::none};
}

Verdict PacketProcessor::refuse_latch(Session& s, int side) {
    s.side[side].latch_refused++;
    s.dropped[side]++;
    stats_.latch_refused.add();
    return drop(DropReason::latch_refused);
}

bool PacketProcessor::on_link(uint16_t port, Ipv4 ip) const {
    const PortContext& pc = ports_[port];
    for (unsigned i = 0; i < pc.address_count; ++i)
        if (pc.addresses[i].contains(ip)) return true;
    return false;
}

void PacketProcessor::latch(Session& s, int side, SocketAddress at, uint16_t port) {
    Endpoint& ep = s.ep[side];
    if (ep.latched && ep.ip == at.ip && ep.port == at.port) return;
    ep.ip = at.ip;
    ep.port = at.port;
    ep.on_link = on_link(port, at.ip);  // decided once, not per packet
    ep.latched = true;
    s.side[side].latches++;
    stats_.latches.add();
}

Verdict PacketProcessor::handle_udp(uint8_t* frame, uint8_t* ip, uint32_t total_len, uint16_t port,
                                    uint8_t addr_index, uint64_t now) {
    if (total_len < kIpv4HeaderLen + kUdpHeaderLen) return drop(DropReason::malformed_udp);
    uint8_t* udp = ip + kIpv4HeaderLen;
    const uint16_t udp_len = load_be16(udp + kUdpLen);
    if (udp_len != total_len - kIpv4HeaderLen) return drop(DropReason::malformed_udp);
    Datagram d{frame,
               ip,
               udp + kUdpHeaderLen,
               static_cast<uint32_t>(udp_len - kUdpHeaderLen),
               total_len,
               {load_be32(ip + kIpSrc), load_be16(udp + kUdpSrcPort)},
               port};
    if (d.src.port == 0) return drop(DropReason::bad_source);
    const uint16_t relay_port = load_be16(udp + kUdpDstPort);

    if (!owns(relay_port)) {
        stats_.handoffs.add();
        return {Action::handoff, DropReason::none, shard_map_[relay_port]};
    }
    const uint32_t slot = sessions_.find_slot(addr_index, relay_port);
    if (slot == kNoSlot) return drop(DropReason::no_session);
    Session& s = sessions_.at(slot);
    if (now > s.last_activity && now - s.last_activity > s.idle_timeout)
        return drop(DropReason::session_expired);

    int from = -1;
    if (s.ep[0].latched && s.ep[0].ip == d.src.ip && s.ep[0].port == d.src.port)
        from = 0;
    else if (s.ep[1].latched && s.ep[1].ip == d.src.ip && s.ep[1].port == d.src.port)
        from = 1;

    // Fast path: data between latched endpoints (all that line 0 and 1 of
    // the session hold).  WireGuard data is type 4 with three zero bytes.
    const bool is_data = s.policy == LatchPolicy::wireguard
                             ? d.payload_len >= 4 && load_le32(d.payload) == wg::kTypeData
                             : !(d.payload_len == bind::kLen &&
                                 std::memcmp(d.payload, bind::kRequestMagic.data(), 4) == 0);
    if (is_data) {
        if (s.policy == LatchPolicy::wireguard && d.payload_len < wg::kDataMinLen)
            return drop(DropReason::malformed_handshake);
        if (from < 0) return drop(DropReason::not_latched);
        const Endpoint& to = s.ep[1 - from];
        if (!to.latched) {
            s.dropped[from]++;
            return drop(DropReason::not_latched);
        }
        if (s.limited && !within_limits(s, from, d.ip_len, now))
            return drop(DropReason::rate_limited);
        return forward(s, from, d, {to.ip, to.port}, to.on_link, now);
    }
    if (s.policy == LatchPolicy::wireguard)
        return handle_wireguard_handshake(s, slot, d, from, now);
    return handle_bind(s, slot, d, from, now);
}

bool PacketProcessor::within_limits(Session& s, int from, uint32_t bytes, uint64_t now) {
    // Check both buckets before taking from either, so a packet refused for
    // bytes does not consume a packet token.
    if (!s.packet_limit.conforms(s.packet_tat[from], now, 1) ||
        !s.byte_limit.conforms(s.byte_tat[from], now, bytes)) {
        s.rate_limited[from]++;
        s.dropped[from]++;
        return false;
    }
    s.packet_limit.take(s.packet_tat[from], now, 1);
    s.byte_limit.take(s.byte_tat[from], now, bytes);
    return true;
}

Verdict PacketProcessor::handle_wireguard_handshake(Session& s, uint32_t slot, Datagram& d,
                                                    int from, uint64_t now) {
    uint8_t* payload = d.payload;
    const uint32_t plen = d.payload_len;
    if (plen < 4 || payload[1] != 0 || payload[2] != 0 || payload[3] != 0)
        return drop(DropReason::malformed_handshake);
    const uint8_t type = payload[0];

    if (type == wg::kTypeInitiation || type == wg::kTypeResponse) {
        const size_t expect_len =
            type == wg::kTypeInitiation ? wg::kInitiationLen : wg::kResponseLen;
        if (plen != expect_len) return drop(DropReason::malformed_handshake);
        if (!s.handshakes.take(now, 1)) return drop(DropReason::rate_limited);
        const size_t mac1_at =
            type == wg::kTypeInitiation ? wg::kInitiationMac1 : wg::kResponseMac1;
        const std::span<const uint8_t> msg(payload, plen);
        const SessionCold& cold = sessions_.cold(slot);
        // mac1 is keyed with the receiver's public key: it tells who the sender is.
        // Try the side this source is latched to first.
        int sender = -1;
        const int first_receiver = from >= 0 ? 1 - from : 0;
        for (int k = 0; k < 2 && sender < 0; ++k) {
            const int receiver = k == 0 ? first_receiver : 1 - first_receiver;
            if (mac1_.verify(cold.mac1_key[receiver], msg, mac1_at)) sender = 1 - receiver;
        }
        if (sender < 0) {
            stats_.latch_refused.add();
            return drop(DropReason::latch_refused);
        }
        SideLatch& me = s.side[sender];
        SideLatch& peer = s.side[1 - sender];
        const Endpoint& peer_ep = s.ep[1 - sender];
        // A latched source cannot speak for the other side, nor can the other side's
        // candidate (one address is never both sides: it would be sent its own initiation).
        if (!me.allowed.contains(d.src.ip) || (from >= 0 && from != sender) ||
            (peer.has_candidate && peer.cand_ip == d.src.ip && peer.cand_port == d.src.port))
            return refuse_latch(s, sender);
        if (s.limited && !within_limits(s, sender, d.ip_len, now))
            return drop(DropReason::rate_limited);

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
                return drop(DropReason::not_latched);
            }
            const Verdict v = forward(s, sender, d, to, on_link(d.port, to.ip), now);
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
            return refuse_latch(s, sender);
        latch(s, 1 - sender, {peer.cand_ip, peer.cand_port}, d.port);
        peer.has_candidate = false;
        latch(s, sender, d.src, d.port);
        me.has_candidate = false;
        return forward(s, sender, d, {peer_ep.ip, peer_ep.port}, peer_ep.on_link, now);
    }

    if (type == wg::kTypeCookieReply) {
        if (plen != wg::kCookieReplyLen) return drop(DropReason::malformed_handshake);
        // Sent by a known endpoint (confirmed or candidate) in answer to the
        // other side's initiation, so it goes where that initiation came from.
        int sender = from;
        for (int i = 0; i < 2 && sender < 0; ++i)
            if (s.side[i].has_candidate && s.side[i].cand_ip == d.src.ip &&
                s.side[i].cand_port == d.src.port)
                sender = i;
        if (sender < 0) return drop(DropReason::not_latched);
        const SideLatch& peer = s.side[1 - sender];
        const Endpoint& peer_ep = s.ep[1 - sender];
        if (s.limited && !within_limits(s, sender, d.ip_len, now))
            return drop(DropReason::rate_limited);
        if (peer.has_candidate) {
            const SocketAddress to{peer.cand_ip, peer.cand_port};
            return forward(s, sender, d, to, on_link(d.port, to.ip), now);
        }
        if (peer_ep.latched)
            return forward(s, sender, d, {peer_ep.ip, peer_ep.port}, peer_ep.on_link, now);
        s.dropped[sender]++;
        return drop(DropReason::not_latched);
    }
    return drop(DropReason::malformed_handshake);
}

Verdict PacketProcessor::handle_bind(Session& s, uint32_t slot, Datagram& d, int from,
                                     uint64_t now) {
    uint8_t* payload = d.payload;
    if (payload[4] != bind::kVersion || payload[5] > 1 || payload[6] != 0 || payload[7] != 0)
        return drop(DropReason::malformed_handshake);
    if (!s.handshakes.take(now, 1)) return drop(DropReason::rate_limited);
    const BindSecret& secret = sessions_.cold(slot).spec.bind_secret;
    const int side = payload[5];
    SideLatch& me = s.side[side];
    if (load_le64(payload + 8) != s.id || !bind::verify_mac(secret, payload, d.src) ||
        (from >= 0 && from != side) || !me.allowed.contains(d.src.ip))
        return refuse_latch(s, side);

    // Authenticated from here on, and the ack is no larger than the request.
    const uint64_t counter = load_le64(payload + 16);
    const Endpoint& ep = s.ep[side];
    uint8_t status = bind::kStatusLatched;
    if (counter > me.bind_counter) {
        latch(s, side, d.src, d.port);
        me.bind_counter = counter;
        s.last_activity = now;
    } else if (!(counter == me.bind_counter && ep.latched && ep.ip == d.src.ip &&
                 ep.port == d.src.port)) {
        // An older bind (a replay, or a reordered retry) must not move the latch.
        status = bind::kStatusStale;
        me.latch_refused++;
        stats_.latch_refused.add();
    }
    bind::make_ack(payload, secret, status, d.src);

    uint8_t* ip = d.ip;
    uint8_t* udp = ip + kIpv4HeaderLen;
    reflect_ipv4(ip);
    uint8_t tmp[2];
    std::memcpy(tmp, udp + kUdpSrcPort, 2);
    std::memcpy(udp + kUdpSrcPort, udp + kUdpDstPort, 2);
    std::memcpy(udp + kUdpDstPort, tmp, 2);
    set_udp_checksum(ip, udp, static_cast<uint16_t>(d.payload_len + kUdpHeaderLen));
    reflect_ethernet(d.frame, d.port);
    stats_.bind_acks.add();
    return {Action::transmit, DropReason::none};
}

Verdict PacketProcessor::forward(Session& s, int from, Datagram& d, SocketAddress dst,
                                 bool dst_on_link, uint64_t now) {
    const uint16_t port = d.port;
    MacAddr next_hop_mac{};
    // The next hop whose MAC is unknown yet (0: resolved).  The packet is then
    // held, not dropped: the first packet to a neighbour is often a handshake
    // initiation, which its sender would repeat only seconds later.
    Ipv4 unresolved = 0;
    if (dst_on_link) {
        if (!neighbours_.lookup(port, dst.ip, now, next_hop_mac)) unresolved = dst.ip;
    } else {
        // The gateway's MAC, looked up at most once a millisecond per port
        // (never past the entry's own expiry).
        GatewayCache& gw = gateway_cache_[port];
        if (now >= gw.valid_until) {
            const Ipv4 gateway = ports_[port].gateway;
            uint64_t expires = 0;
            if (gateway == 0) {  // off-link with no gateway: no way there
                s.dropped[from]++;
                return drop(DropReason::no_neighbour);
            }
            if (neighbours_.lookup(port, gateway, now, gw.mac, &expires)) {
                const uint64_t soon = now + tsc_hz_ / 1000;
                gw.valid_until = expires < soon ? expires : soon;
            } else {
                gw.valid_until = 0;
                unresolved = gateway;
            }
        }
        next_hop_mac = gw.mac;
    }

    // (peer, relay) -> (relay, other peer): the relay's address and port only
    // move from destination to source, so the checksums change by the peer's
    // address and port alone (plus TTL in the IP header).
    uint8_t* ip = d.ip;
    uint8_t* udp = ip + kIpv4HeaderLen;
    const uint16_t old_ttl_proto = load_be16(ip + kIpTtl);
    std::memcpy(ip + kIpSrc, ip + kIpDst, 4);
    store_be32(ip + kIpDst, dst.ip);
    ip[kIpTtl] = kOutputTtl;
    const uint32_t addr_delta = checksum_delta32(d.src.ip, dst.ip);
    store_be16(
        ip + kIpChecksum,
        checksum_adjust(load_be16(ip + kIpChecksum),
                        addr_delta + checksum_delta16(old_ttl_proto, load_be16(ip + kIpTtl))));
    std::memcpy(udp + kUdpSrcPort, udp + kUdpDstPort, 2);
    store_be16(udp + kUdpDstPort, dst.port);
    const uint16_t udp_sum = load_be16(udp + kUdpChecksum);
    if (udp_sum != 0) {  // 0: the sender did not use a checksum, keep it that way
        uint16_t c = checksum_adjust(udp_sum, addr_delta + checksum_delta16(d.src.port, dst.port));
        store_be16(udp + kUdpChecksum, c == 0 ? 0xffff : c);
    }
    store_mac(d.frame + kEthDst, unresolved ? MacAddr{} : next_hop_mac);
    store_mac(d.frame + kEthSrc, ports_[port].mac);

    // A held packet counts as forwarded now, in the session and in the
    // totals: the relay has accepted it and will send it once ARP answers.
    // If it never can, it is counted again, as a no_neighbour drop, by
    // whoever drops it (the worker or the service thread).
    s.rx_packets[from]++;
    s.rx_bytes[from] += d.ip_len;
    s.last_activity = now;
    stats_.forwarded_packets.add();
    stats_.forwarded_bytes.add(d.ip_len);
    if (unresolved) {
        emit(SlowPathEvent::Kind::resolve, port, unresolved, {});
        stats_.neighbour_held.add();
        return {Action::hold, DropReason::none, 0, unresolved};
    }
    return {Action::transmit, DropReason::none};
}

// Where the session of a frame would be, read without validation (the frame
// is validated when it is processed): used only to prefetch.
const uint32_t* PacketProcessor::peek_index(const uint8_t* frame, uint32_t len,
                                            uint16_t port) const {
    uint32_t l2 = kEthHeaderLen;
    if (len < kEthHeaderLen + kVlanTagLen + kIpv4HeaderLen + kUdpHeaderLen) return nullptr;
    uint16_t type = load_be16(frame + kEthType);
    if (type == kEtherTypeVlan) {
        type = load_be16(frame + kEthHeaderLen + 2);
        l2 += kVlanTagLen;
    }
    if (type != kEtherTypeIpv4 || port >= ports_.size()) return nullptr;
    const uint8_t* ip = frame + l2;
    const Ipv4 dst = load_be32(ip + kIpDst);
    const PortContext& pc = ports_[port];
    for (unsigned i = 0; i < pc.address_count; ++i)
        if (pc.addresses[i].addr == dst)
            return sessions_.index_entry(pc.table_index[i],
                                         load_be16(ip + kIpv4HeaderLen + kUdpDstPort));
    return nullptr;
}

void PacketProcessor::process_burst(uint8_t* const* frames, const uint32_t* lens, unsigned n,
                                    uint16_t port, uint64_t now, Verdict* verdicts) {
    // Whole-burst stages, so that every load has a burst's worth of work to
    // hide behind: the frames, then their index entries, then the two session
    // lines forwarding touches, then the processing itself.
    constexpr unsigned kChunk = 64;
    const uint32_t* index[kChunk];
    for (unsigned base = 0; base < n; base += kChunk) {
        const unsigned m = n - base < kChunk ? n - base : kChunk;
        for (unsigned i = 0; i < m; ++i) rte_prefetch0(frames[base + i]);
        for (unsigned i = 0; i < m; ++i) {
            index[i] = peek_index(frames[base + i], lens[base + i], port);
            if (index[i]) rte_prefetch0(index[i]);
        }
        // Sessions are prefetched a fixed distance ahead rather than all at
        // once, so that the misses in flight stay within what the core can track.
        auto prefetch_session = [&](unsigned i) {
            if (!index[i]) return;
            const uint32_t slot = *index[i];
            if (slot >= sessions_.capacity()) return;
            const uint8_t* hot = reinterpret_cast<const uint8_t*>(&sessions_.at(slot));
            rte_prefetch0(hot);
            rte_prefetch0(hot + 64);
        };
        constexpr unsigned kSessionAhead = 8;
        for (unsigned i = 0; i < m && i < kSessionAhead; ++i) prefetch_session(i);
        for (unsigned i = 0; i < m; ++i) {
            if (i + kSessionAhead < m) prefetch_session(i + kSessionAhead);
            verdicts[base + i] = process(frames[base + i], lens[base + i], port, now);
        }
    }
}

}  // namespace relay::dp
