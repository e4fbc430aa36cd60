// libFuzzer target: the data plane's packet processor, fed a sequence of frames
// against the fixture tables' standard node (tests/fixtures/fixture_harness.hpp:
// two ports, WireGuard sessions open and source-restricted, a bind session, one on the
// VLAN port), and checked after every frame for what an attacker must never get:
//   - a reply (ARP, ICMP echo, bind ack) larger than its request, or a bind ack to
//     a sender whose bind does not verify;
//   - a forwarded frame sent back to its own source, or to an address that never
//     sent anything to its session; WireGuard data from or to an unlatched address;
//   - a latch without a confirming response: a WireGuard side latches (or moves) only
//     on a response whose mac1 verifies, that answers an initiation the relay
//     forwarded to exactly the responder's address, latching the initiation's source
//     and the responder; a bind side only on a bind whose MAC verifies for its source;
//   - checksums broken by the rewrite, verdicts that make no sense.
//
// Input: records, each  ctl:u8 [delta_ms:u32le if ctl & kAdvance] len:u16le frame[len]
// (tests/fuzz/make_seeds.cpp writes the fixture suites' own sequences in this form).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <optional>
#include <set>
#include <vector>

#include "fixture_harness.hpp"
#include "packet_format.hpp"
#include "relay/crypto/mac1.hpp"
#include "relay/wire/bind.hpp"
#include "relay/wire/headers.hpp"
#include "relay/wire/wireguard.hpp"
#include "wireguard_vectors.hpp"

namespace {

using namespace relay;
using namespace relay::fixtures;
using namespace relay::fuzz;
namespace wg = relay::wire::wg;

[[noreturn]] void violated(const char* what, const Bytes& in, uint16_t port) {
    std::fprintf(stderr, "INVARIANT VIOLATED: %s\nport %u, input frame:\n%s\n", what, port,
                 hex(in).c_str());
    std::abort();
}
#define CHECK(cond, what)                      \
    do {                                       \
        if (!(cond)) violated(what, in, port); \
    } while (0)

// One's-complement sum over the pseudo header and the whole datagram, checksum in place:
// 0xffff when the checksum verifies (either representation of zero).
bool udp_sum_verifies(const Bytes& f, const ParsedFrame& p) {
    const size_t udp = p.l3_offset + 20;
    if (udp + p.udp_length > f.size() || p.udp_length < 8) return false;
    uint32_t sum = (p.ip_src >> 16) + (p.ip_src & 0xffff) + (p.ip_dst >> 16) + (p.ip_dst & 0xffff) +
                   17 + p.udp_length;
    for (size_t i = 0; i < p.udp_length; i += 2) {
        const uint16_t hi = f[udp + i];
        const uint16_t lo = i + 1 < p.udp_length ? f[udp + i + 1] : 0;
        sum += static_cast<uint32_t>(hi << 8 | lo);
    }
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return sum == 0xffff;
}

struct ForwardedInitiation {
    int session;  // index in kSessions
    uint32_t sender_index;
    SocketAddress from, to;
};

// The sessions of the standard node, by (port, relay port).
struct Known {
    uint16_t port;
    Ipv4 relay_ip;
    uint16_t relay_port;
    LatchPolicy policy;
};
constexpr Known kSessions[] = {{kPlainPort, kRelayIp, kWgPort, LatchPolicy::wireguard},
                               {kPlainPort, kRelayIp, kBindPort, LatchPolicy::bind},
                               {kPlainPort, kRelayIp, kWgRestrictedPort, LatchPolicy::wireguard},
                               {kVlanPort, kVlanRelayIp, kWgPort, LatchPolicy::wireguard}};

// The fixture tables' standard node (fixture_harness.hpp: same ports, neighbours and
// sessions as fixtures::Harness), built once: a session table's index is large, and
// making one per input would cost more than the input.  Each input gets the sessions
// installed afresh, a new processor and new counters.
struct Node {
    Node() : sessions(64, {kRelayIp, kVlanRelayIp}), neighbours(64) {
        const uint64_t expires = kStart + kNeighbourLifetime;
        neighbours.update(kPlainPort, kGatewayIp, kGatewayMac, expires);
        neighbours.update(kPlainPort, kPeerB.ip, kPeerBMac, expires);
        neighbours.update(kVlanPort, kVlanGatewayIp, kVlanGatewayMac, expires);
        neighbours.update(kVlanPort, kVlanPeerB.ip, kVlanPeerBMac, expires);
    }
    // Removes what the last input left and installs the standard sessions.
    void reset() {
        for (uint32_t slot : slots) {
            if (sessions.at(slot).id != 0) sessions.uninstall(slot);
            sessions.free_slot(slot);
        }
        slots.clear();
        SessionSpec restricted =
            wireguard_spec(kWgRestrictedSessionId, kRelayIp, kWgRestrictedPort);
        restricted.sides[0].allowed_source = {v4(203, 0, 113, 0), 24};
        restricted.sides[1].allowed_source = {v4(198, 51, 100, 0), 24};
        for (const SessionSpec& spec : {wireguard_spec(kWgSessionId, kRelayIp, kWgPort),
                                        bind_spec(kBindSessionId, kRelayIp, kBindPort), restricted,
                                        wireguard_spec(kVlanWgSessionId, kVlanRelayIp, kWgPort)}) {
            const uint32_t slot = sessions.add(spec, kStart, kTscHz);
            if (slot == dp::kNoSlot) std::abort();
            slots.push_back(slot);
        }
    }
    // The session at (relay ip, relay port), or a spec-less one when it expired.
    SessionStats session(uint16_t relay_port, Ipv4 relay_ip, uint64_t now) const {
        const uint32_t slot =
            sessions.find_slot(static_cast<uint8_t>(sessions.address_index(relay_ip)), relay_port);
        return slot == dp::kNoSlot ? SessionStats{} : sessions.stats(slot, now, kTscHz);
    }

    dp::SessionTable sessions;
    dp::NeighbourTable neighbours;
    std::vector<uint32_t> slots;
};

// One input's run: the node, a processor, its counters and the clock.
struct Run {
    explicit Run(Node& n)
        : node(n), processor(n.sessions, n.neighbours, standard_ports(), kTscHz, stats) {
        node.reset();
    }
    Result send_bytes(Bytes frame, uint16_t port) {
        Result r;
        r.verdict = processor.process(frame.data(), static_cast<uint32_t>(frame.size()), port, now);
        r.frame = std::move(frame);
        return r;
    }
    SessionStats session(uint16_t relay_port, Ipv4 relay_ip) const {
        return node.session(relay_port, relay_ip, now);
    }

    Node& node;
    dp::WorkerStats stats;
    dp::PacketProcessor processor;
    uint64_t now = kStart;
};

class Checker {
  public:
    explicit Checker(Run& h) : h_(h) {}

    void one(Bytes in, uint16_t port) {
        std::array<SessionStats, std::size(kSessions)> before;
        for (size_t i = 0; i < std::size(kSessions); ++i)
            before[i] = h_.session(kSessions[i].relay_port, kSessions[i].relay_ip);
        const uint64_t latches_before = h_.stats.latches.get();
        const Result r = h_.send_bytes(in, port);
        std::array<SessionStats, std::size(kSessions)> after;
        for (size_t i = 0; i < std::size(kSessions); ++i)
            after[i] = h_.session(kSessions[i].relay_port, kSessions[i].relay_ip);

        check_verdict(r, in, port);
        const ParsedFrame pin = parse(in);
        const int touched = session_of(pin, port);  // the session this frame was for

        // Nothing but the frame's own session changes its latches.
        for (size_t i = 0; i < std::size(kSessions); ++i) {
            if (static_cast<int>(i) == touched) continue;
            for (int k = 0; k < 2; ++k) {
                CHECK(after[i].sides[k].latched == before[i].sides[k].latched &&
                          after[i].sides[k].endpoint == before[i].sides[k].endpoint &&
                          after[i].sides[k].latches == before[i].sides[k].latches,
                      "a frame changed the latch of a session it was not sent to");
            }
        }
        if (r.verdict.action == Action::transmit || r.verdict.action == Action::hold)
            check_output(r, in, port, pin, touched, touched >= 0 ? &before[touched] : nullptr,
                         touched >= 0 ? &after[touched] : nullptr);
        if (touched >= 0)
            check_latch(r, in, port, pin, touched, before[touched], after[touched]);
        else
            CHECK(h_.stats.latches.get() == latches_before, "a latch outside any session");
    }

    // Stateless checks for frames processed as a burst.
    void burst(std::vector<Bytes> frames, uint16_t port) {
        std::vector<Bytes> work = frames;
        std::vector<uint8_t*> ptrs;
        std::vector<uint32_t> lens;
        for (Bytes& f : work) {
            ptrs.push_back(f.data());
            lens.push_back(static_cast<uint32_t>(f.size()));
        }
        std::vector<dp::Verdict> verdicts(work.size());
        h_.processor.process_burst(ptrs.data(), lens.data(), static_cast<unsigned>(work.size()),
                                   port, h_.now, verdicts.data());
        for (size_t i = 0; i < work.size(); ++i) {
            const Bytes& in = frames[i];
            const Result r{verdicts[i], work[i]};
            check_verdict(r, in, port);
            const ParsedFrame pin = parse(in);
            const int session = session_of(pin, port);
            if (r.verdict.action == Action::transmit || r.verdict.action == Action::hold)
                check_output(r, in, port, pin, session, nullptr, nullptr);
        }
    }

  private:
    void check_verdict(const Result& r, const Bytes& in, uint16_t port) {
        CHECK(r.frame.size() == in.size(), "the frame changed size");
        const Verdict& v = r.verdict;
        CHECK(v.action != Action::handoff, "handoff without a shard map");
        if (v.action == Action::drop) {
            CHECK(v.reason != DropReason::none &&
                      static_cast<unsigned>(v.reason) < dp::kDropReasonCount,
                  "a drop without a valid reason");
        } else {
            CHECK(v.reason == DropReason::none, "a reason on a frame that was not dropped");
        }
        if (v.action == Action::hold) CHECK(v.next_hop != 0, "hold without a next hop");
    }

    static uint64_t key(SocketAddress a) { return uint64_t{a.ip} << 16 | a.port; }

    // The index in kSessions of the session a frame is sent to (-1: none), having noted
    // its source as one the session has heard from.
    int session_of(const ParsedFrame& pin, uint16_t port) {
        if (!pin.has_udp) return -1;
        for (size_t i = 0; i < std::size(kSessions); ++i)
            if (kSessions[i].port == port && kSessions[i].relay_ip == pin.ip_dst &&
                kSessions[i].relay_port == pin.dst_port) {
                heard_[i].insert(key({pin.ip_src, pin.src_port}));
                return static_cast<int>(i);
            }
        return -1;
    }

    // `session`: index in kSessions; `before`/`after` its state (nullptr in bursts).
    void check_output(const Result& r, const Bytes& in, uint16_t port, const ParsedFrame& pin,
                      int session, const SessionStats* before, const SessionStats* after) {
        const ParsedFrame out = parse(r.frame);
        const MacAddr port_mac = port == kVlanPort ? kVlanPortMac : kPortMac;
        CHECK(out.eth_src == port_mac, "output not from the port's MAC");
        if (port == kVlanPort) CHECK(out.vlan && *out.vlan == kVlanId, "output lost its VLAN");

        if (out.has_arp) {
            CHECK(pin.has_arp && pin.arp_op == wire::kArpOpRequest, "ARP output not for a request");
            CHECK(out.arp_op == wire::kArpOpReply, "ARP output is not a reply");
            CHECK(out.arp_spa == (port == kVlanPort ? kVlanRelayIp : kRelayIp),
                  "ARP reply for an address that is not ours");
            CHECK(out.arp_tpa == pin.arp_spa && out.arp_tha == pin.arp_sha &&
                      out.eth_dst == pin.arp_sha,
                  "ARP reply not to the asker");
            return;
        }
        CHECK(out.has_ipv4 && pin.has_ipv4 && out.ihl == 5, "IPv4 output from a non-IPv4 input");
        CHECK(out.total_length <= pin.total_length, "output larger than its input");
        CHECK(ipv4_checksum_valid(r.frame), "output with a bad IPv4 header checksum");
        CHECK(out.ip_src == pin.ip_dst, "output not from the address it was sent to");

        if (out.protocol == wire::kIpProtoIcmp) {
            CHECK(pin.protocol == wire::kIpProtoIcmp && out.ip_dst == pin.ip_src,
                  "ICMP echo reply not to its sender");
            CHECK(icmp_checksum_valid(r.frame), "ICMP reply with a bad checksum");
            return;
        }
        CHECK(out.has_udp && pin.has_udp, "output neither ARP, ICMP nor UDP");
        CHECK(out.src_port == pin.dst_port, "UDP output not from the relay port");
        const SocketAddress src{pin.ip_src, pin.src_port}, dst{out.ip_dst, out.dst_port};
        // A bind request is never forwarded: it is answered to its sender, with an ack of
        // the same size, and only when it verifies.  (Anything else, an ack lookalike
        // included, is data between bound endpoints.)
        const bool bind_request =
            session >= 0 && kSessions[session].policy == LatchPolicy::bind &&
            pin.l4_payload.size() == wire::bind::kLen &&
            std::memcmp(pin.l4_payload.data(), wire::bind::kRequestMagic.data(), 4) == 0;
        if (bind_request) {
            CHECK(dst == src, "a bind request was not answered to its sender");
            CHECK(out.l4_payload.size() == wire::bind::kLen &&
                      std::memcmp(out.l4_payload.data(), wire::bind::kAckMagic.data(), 4) == 0,
                  "a bind request answered with something other than an ack");
            CHECK(wire::bind::verify_mac(bind_secret(), pin.l4_payload.data(), src),
                  "bind ack to a request that does not verify");
            CHECK(udp_sum_verifies(r.frame, out), "bind ack with a bad UDP checksum");
            return;
        }
        CHECK(!(dst == src), "a frame forwarded back to its own source");
        if (pin.udp_checksum == 0)
            CHECK(out.udp_checksum == 0, "a forwarded frame without checksum gained one");
        else if (udp_sum_verifies(in, pin))
            CHECK(udp_sum_verifies(r.frame, out), "the rewrite broke a valid UDP checksum");
        CHECK(session >= 0, "a UDP frame forwarded for no session");
        // Only to an address this session has heard from (a candidate or endpoint was
        // one), never to an address named only inside a packet.
        CHECK(heard_[session].count(key(dst)) != 0,
              "forwarded to an address that never sent to the session");
        if (pin.l4_payload.size() == wg::kInitiationLen &&
            pin.l4_payload[0] == wg::kTypeInitiation) {
            forwarded_.push_back(
                {session, wire::load_le32(pin.l4_payload.data() + wg::kSenderIndex), src, dst});
            if (forwarded_.size() > 256) forwarded_.pop_front();
        }
        if (!before) return;  // burst: no session state to compare

        if (before->spec.policy == LatchPolicy::wireguard && pin.l4_payload.size() >= 4 &&
            pin.l4_payload[0] == wg::kTypeData) {
            bool from_latched = false;
            for (int k = 0; k < 2; ++k)
                from_latched |= before->sides[k].latched && before->sides[k].endpoint == src &&
                                before->sides[1 - k].latched &&
                                before->sides[1 - k].endpoint == dst;
            CHECK(from_latched, "WireGuard data relayed other than between latched endpoints");
        }
    }

    void check_latch(const Result& r, const Bytes& in, uint16_t port, const ParsedFrame& pin,
                     int session, const SessionStats& before, const SessionStats& after) {
        bool moved[2];
        for (int k = 0; k < 2; ++k) {
            moved[k] = after.sides[k].latches != before.sides[k].latches ||
                       (after.sides[k].latched &&
                        (!before.sides[k].latched ||
                         !(after.sides[k].endpoint == before.sides[k].endpoint)));
        }
        if (!moved[0] && !moved[1]) return;
        const SocketAddress src{pin.ip_src, pin.src_port};
        const bool sent = r.verdict.action == Action::transmit || r.verdict.action == Action::hold;
        const Bytes& payload = pin.l4_payload;

        if (before.spec.policy == LatchPolicy::bind) {
            CHECK(sent && payload.size() == wire::bind::kLen &&
                      std::memcmp(payload.data(), wire::bind::kRequestMagic.data(), 4) == 0 &&
                      wire::bind::verify_mac(before.spec.bind_secret, payload.data(), src),
                  "a bind side latched without a verified bind");
            const int side = payload[5];
            CHECK(side < 2 && moved[side] && !moved[1 - side],
                  "a bind latched a side other than its own");
            CHECK(after.sides[side].endpoint == src, "a bind latched an address not its source");
            return;
        }

        CHECK(sent && payload.size() == wg::kResponseLen && payload[0] == wg::kTypeResponse,
              "a WireGuard side latched on something other than a forwarded response");
        int responder = -1;
        for (int receiver = 0; receiver < 2 && responder < 0; ++receiver)
            if (mac1_.verify(crypto::mac1_key_for(before.spec.sides[receiver].public_key), payload,
                             wg::kResponseMac1))
                responder = 1 - receiver;
        CHECK(responder >= 0, "a latch on a response whose mac1 verifies for neither side");
        const uint32_t answered = wire::load_le32(payload.data() + wg::kResponseReceiverIndex);
        const ForwardedInitiation* confirmed = nullptr;
        for (const ForwardedInitiation& f : forwarded_)
            if (f.session == session && f.sender_index == answered && f.to == src) confirmed = &f;
        CHECK(confirmed, "a latch on a response to no initiation forwarded to the responder");
        CHECK(after.sides[responder].latched && after.sides[responder].endpoint == src,
              "the responder was not latched where it answered from");
        CHECK(after.sides[1 - responder].latched,
              "the initiator side was not latched by the confirming response");
        bool from_initiator = false;
        for (const ForwardedInitiation& f : forwarded_)
            from_initiator |= f.session == session && f.sender_index == answered && f.to == src &&
                              f.from == after.sides[1 - responder].endpoint;
        CHECK(from_initiator,
              "the initiator side was latched somewhere its initiation did not "
              "come from");
    }

    Run& h_;
    crypto::Mac1 mac1_;
    std::deque<ForwardedInitiation> forwarded_;
    std::array<std::set<uint64_t>, std::size(kSessions)> heard_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static Node node;
    Run h(node);
    Checker check(h);
    crypto::Mac1 mac1;
    static const std::array<crypto::Mac1Key, 2> to = {
        crypto::mac1_key_for(wg_vectors::kPeerAPublicKey),
        crypto::mac1_key_for(wg_vectors::kPeerBPublicKey)};

    std::vector<Bytes> burst;
    uint16_t burst_port = 0;
    auto flush = [&] {
        if (!burst.empty()) check.burst(std::move(burst), burst_port);
        burst.clear();
    };
    for (Record rec : split_records(data, size)) {
        h.now += rec.delta_ms * kMs;
        if (rec.ctl & kFixMac1)
            set_wireguard_mac1(rec.frame, mac1, to[(rec.ctl & kMac1ToB) ? 1 : 0]);
        if (rec.ctl & kFixUp) fix_lengths_and_checksums(rec.frame);
        const uint16_t port = (rec.ctl & kVlanPortBit) ? kVlanPort : kPlainPort;
        if (rec.ctl & kBurst) {
            if (!burst.empty() && port != burst_port) flush();
            burst_port = port;
            burst.push_back(std::move(rec.frame));
            if (burst.size() == 32) flush();
            continue;
        }
        flush();
        check.one(std::move(rec.frame), port);
        if (rec.ctl & kExpire) h.processor.expire_idle(h.now, 64, [](uint32_t, uint64_t) {});
    }
    flush();
    return 0;
}
