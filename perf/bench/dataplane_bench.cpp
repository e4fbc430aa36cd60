// relay-bench dataplane.
//
// Harness: two SP/SC rte_rings made into one ethdev with rte_eth_from_rings
// (RX queue = generator -> worker, TX queue = worker -> generator).  The
// worker lcore polls it exactly as relay-dataplane polls a NIC: rx_burst(32),
// process, tx_burst, free what is dropped or unsent.  The generator on the
// main lcore keeps a fixed set of mbufs circulating: it takes back what the
// worker transmitted, re-writes only the 42 header bytes from the next
// session's template and hands the frame to the worker again, so payload
// bytes are never copied and the generator stays cheaper than the worker.
//
// Each scenario (sessions x frame size) runs twice on the same harness with
// the same traffic: once with a bare forwarding loop (swap MACs, transmit)
// and once through dp::PacketProcessor::process_burst.  Cycles are TSC cycles
// measured on the worker around each non-empty burst (rx + work + tx), so
// the difference between the two is what the relay itself costs per packet.
#include "dataplane_bench.hpp"

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_prefetch.h>
#include <rte_ring.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "checksum.hpp"
#include "json_line.hpp"
#include "neighbour_table.hpp"
#include "packet_processor.hpp"
#include "relay/crypto/mac1.hpp"
#include "relay/net.hpp"
#include "relay/session.hpp"
#include "relay/wire/bind.hpp"
#include "relay/wire/headers.hpp"
#include "relay/wire/wireguard.hpp"
#include "session_table.hpp"
#include "worker_stats.hpp"

namespace relay::bench {
namespace {

namespace wire = relay::wire;

// ---------------------------------------------------------------------------
// Addresses and frame layout
// ---------------------------------------------------------------------------

constexpr unsigned kBurst = 32;  // what relay-dataplane's workers use (BRIEF §4)

// One relay address has room for 55 536 sessions on ports 10000..65535, so
// 100 000 sessions take two addresses (198.51.100.10 and .11).
constexpr uint16_t kFirstRelayPort = 10000;
constexpr uint32_t kPortsPerRelayAddress = 65536 - kFirstRelayPort;
constexpr Ipv4 kFirstRelayAddress = 0xc633640a;  // 198.51.100.10
constexpr Ipv4 kGatewayAddress = 0xc6336401;     // 198.51.100.1
constexpr uint8_t kRelayPrefixLen = 24;          // peers are all off-link
constexpr Ipv4 kSideANetwork = 0xcb007100;       // 203.0.113.0/24
constexpr Ipv4 kSideBNetwork = 0xc0000200;       // 192.0.2.0/24
constexpr uint32_t kHostsPerPeerNetwork = 250;
constexpr uint16_t kFirstSideAPort = 20000;
constexpr uint16_t kFirstSideBPort = 40000;
constexpr uint32_t kMaxSessions = 1'000'000;  // 19 relay addresses, within kMaxAddressesPerPort
constexpr uint16_t kPortIndex = 0;            // the processor's only port

const MacAddr kRelayMac{{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}};
const MacAddr kGatewayMac{{0x02, 0x00, 0x00, 0x00, 0x00, 0xfe}};

constexpr uint32_t kIpOffset = wire::kEthHeaderLen;
constexpr uint32_t kUdpOffset = kIpOffset + wire::kIpv4HeaderLen;
constexpr uint32_t kHeaderBytes = kUdpOffset + wire::kUdpHeaderLen;  // 42
// Bytes [24, 42): IPv4 checksum, addresses, UDP ports, length and checksum:
// everything that differs between two sessions' frames of one size.
constexpr uint32_t kSessionTailOffset = kIpOffset + wire::kIpChecksum;
constexpr uint32_t kSessionTailBytes = kHeaderBytes - kSessionTailOffset;

// Junk handshakes (the junk scenario): WireGuard initiations, each kind's
// number at this offset of the payload (an opaque byte under mac1).
constexpr uint32_t kJunkFrameBytes = kHeaderBytes + wire::wg::kInitiationLen;  // 190
constexpr uint32_t kJunkKindOffset = 20;

constexpr uint32_t kMinFrameBytes = 60;    // Ethernet minimum without FCS
constexpr uint32_t kMaxFrameBytes = 1514;  // 1500-byte MTU without FCS

// NaN (printed as null) when nothing was measured.
double ratio_or_nan(uint64_t numerator, uint64_t denominator) {
    return denominator > 0 ? static_cast<double>(numerator) / static_cast<double>(denominator)
                           : std::numeric_limits<double>::quiet_NaN();
}

constexpr uint32_t relay_address_count(uint32_t sessions) {
    return (sessions + kPortsPerRelayAddress - 1) / kPortsPerRelayAddress;
}

struct SessionEndpoints {
    SocketAddress relay;
    SocketAddress side_a;
    SocketAddress side_b;
};

SessionEndpoints endpoints_of(uint32_t session) {
    const uint32_t host = 1 + session % kHostsPerPeerNetwork;
    const uint32_t port_step = session / kHostsPerPeerNetwork;
    return {
        {kFirstRelayAddress + session / kPortsPerRelayAddress,
         static_cast<uint16_t>(kFirstRelayPort + session % kPortsPerRelayAddress)},
        {kSideANetwork + host, static_cast<uint16_t>(kFirstSideAPort + port_step)},
        {kSideBNetwork + host, static_cast<uint16_t>(kFirstSideBPort + port_step)},
    };
}

// Inverse of endpoints_of(...).relay; nullopt when `relay` is no session's.
std::optional<uint32_t> session_of_relay_address(SocketAddress relay, uint32_t sessions) {
    if (relay.ip < kFirstRelayAddress || relay.port < kFirstRelayPort) return std::nullopt;
    const uint64_t session = uint64_t{relay.ip - kFirstRelayAddress} * kPortsPerRelayAddress +
                             (relay.port - kFirstRelayPort);
    if (session >= sessions) return std::nullopt;
    return static_cast<uint32_t>(session);
}

BindSecret bind_secret_of(uint32_t session) {
    BindSecret secret{};
    for (size_t i = 0; i < secret.size(); ++i)
        secret[i] = static_cast<uint8_t>(session >> (8 * (i % 4))) ^ static_cast<uint8_t>(i * 37);
    return secret;
}

// UDP checksum of a datagram whose payload sums (unfolded) to `payload_sum`.
uint16_t udp_checksum(SocketAddress src, SocketAddress dst, uint16_t udp_len,
                      uint32_t payload_sum) {
    uint32_t sum = payload_sum;
    sum += (src.ip >> 16) + (src.ip & 0xffff) + (dst.ip >> 16) + (dst.ip & 0xffff);
    sum += wire::kIpProtoUdp + udp_len;    // pseudo header
    sum += src.port + dst.port + udp_len;  // UDP header with a zero checksum field
    const uint16_t checksum = dp::checksum_finish(sum);
    return checksum == 0 ? 0xffff : checksum;
}

// Writes the 42 header bytes of an untagged IPv4/UDP frame of `frame_bytes`
// whose payload sums to `payload_sum`, with both checksums valid.
void write_headers(uint8_t* frame, uint32_t frame_bytes, const MacAddr& dst_mac,
                   const MacAddr& src_mac, SocketAddress src, SocketAddress dst,
                   uint32_t payload_sum) {
    std::memcpy(frame + wire::kEthDst, dst_mac.bytes.data(), 6);
    std::memcpy(frame + wire::kEthSrc, src_mac.bytes.data(), 6);
    wire::store_be16(frame + wire::kEthType, wire::kEtherTypeIpv4);

    uint8_t* ip = frame + kIpOffset;
    ip[wire::kIpVerIhl] = 0x45;
    ip[wire::kIpTos] = 0;
    wire::store_be16(ip + wire::kIpTotalLen, static_cast<uint16_t>(frame_bytes - kIpOffset));
    wire::store_be16(ip + wire::kIpId, 0);
    wire::store_be16(ip + wire::kIpFragOff, wire::kIpFlagDontFragment);
    ip[wire::kIpTtl] = 64;
    ip[wire::kIpProto] = wire::kIpProtoUdp;
    wire::store_be16(ip + wire::kIpChecksum, 0);
    wire::store_be32(ip + wire::kIpSrc, src.ip);
    wire::store_be32(ip + wire::kIpDst, dst.ip);
    wire::store_be16(ip + wire::kIpChecksum,
                     dp::checksum_finish(dp::checksum_partial(ip, wire::kIpv4HeaderLen)));

    uint8_t* udp = frame + kUdpOffset;
    const auto udp_len = static_cast<uint16_t>(frame_bytes - kUdpOffset);
    wire::store_be16(udp + wire::kUdpSrcPort, src.port);
    wire::store_be16(udp + wire::kUdpDstPort, dst.port);
    wire::store_be16(udp + wire::kUdpLen, udp_len);
    wire::store_be16(udp + wire::kUdpChecksum, udp_checksum(src, dst, udp_len, payload_sum));
}

// ---------------------------------------------------------------------------
// Traffic: what the generator sends in one scenario
// ---------------------------------------------------------------------------

struct SessionHeaderTail {
    std::array<uint8_t, kSessionTailBytes> bytes;
};

// Frames of one kind: one size and payload, a header per entry of `sequence`.
struct Stream {
    uint32_t frame_bytes = 0;
    std::array<uint8_t, kSessionTailOffset> shared_header{};  // bytes [0, 24) of every frame
    std::vector<uint8_t> payload;                             // identical in every frame
    // One entry per session in a shuffled order, replayed cyclically: every
    // session gets the same share of packets, and consecutive packets hit
    // unrelated sessions (so 100 000 sessions really miss the caches).
    std::vector<SessionHeaderTail> sequence;
};

struct Traffic {
    uint32_t sessions = 0;
    // [0]: legitimate data from side A.  With junk, [1..]: one stream per
    // junk kind, and every other frame in flight is junk (50 % of the load).
    std::vector<Stream> streams;
    bool junk = false;
    bool return_dropped = false;  // the worker hands dropped frames back (junk scenarios)
    double offered_mpps = 0;      // total offered rate; 0 = as fast as the worker goes
    uint32_t frame_bytes() const { return streams[0].frame_bytes; }
};

// The session order every stream follows (fixed: every run sends the same).
std::vector<uint32_t> session_order(uint32_t sessions) {
    std::vector<uint32_t> order(sessions);
    std::iota(order.begin(), order.end(), 0u);
    std::mt19937_64 shuffle_rng(0x5eed'0000u + sessions);
    std::shuffle(order.begin(), order.end(), shuffle_rng);
    return order;
}

// A stream of `frame_bytes` frames carrying `payload`, one per session in
// `order`, from `source_of(session, i)` to the session's relay address.
template <typename SourceOf>
Stream make_stream(uint32_t frame_bytes, std::vector<uint8_t> payload,
                   const std::vector<uint32_t>& order, SourceOf source_of) {
    Stream stream;
    stream.frame_bytes = frame_bytes;
    stream.payload = std::move(payload);
    const uint32_t payload_sum = dp::checksum_partial(stream.payload.data(), stream.payload.size());
    std::array<uint8_t, kHeaderBytes> header{};
    stream.sequence.resize(order.size());
    for (uint32_t i = 0; i < order.size(); ++i) {
        write_headers(header.data(), frame_bytes, kRelayMac, kGatewayMac, source_of(order[i], i),
                      endpoints_of(order[i]).relay, payload_sum);
        if (i == 0) std::memcpy(stream.shared_header.data(), header.data(), kSessionTailOffset);
        std::memcpy(stream.sequence[i].bytes.data(), header.data() + kSessionTailOffset,
                    kSessionTailBytes);
    }
    return stream;
}

// Data from side A of every session.  `wireguard`: WireGuard transport data
// (type 4); else any payload but a 40-byte one starting with "RLYB" is data
// under the bind policy (this one starts with 0xa5).
Stream data_stream(uint32_t sessions, uint32_t frame_bytes, bool wireguard) {
    std::vector<uint8_t> payload(frame_bytes - kHeaderBytes);
    for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(0xa5 ^ i);
    if (wireguard) {
        payload[0] = static_cast<uint8_t>(wire::wg::kTypeData);
        payload[1] = payload[2] = payload[3] = 0;
    }
    return make_stream(frame_bytes, std::move(payload), session_order(sessions),
                       [](uint32_t session, uint32_t) { return endpoints_of(session).side_a; });
}

Traffic make_traffic(uint32_t sessions, uint32_t frame_bytes) {
    Traffic traffic;
    traffic.sessions = sessions;
    traffic.streams.push_back(data_stream(sessions, frame_bytes, false));
    return traffic;
}

// Re-writes the header of a frame that came back from the worker.
inline void write_frame_header(uint8_t* frame, const Stream& stream,
                               const SessionHeaderTail& tail) {
    std::memcpy(frame, stream.shared_header.data(), kSessionTailOffset);
    std::memcpy(frame + kSessionTailOffset, tail.bytes.data(), kSessionTailBytes);
}

// Turns a freshly allocated mbuf into a whole frame of the stream.
bool write_whole_frame(rte_mbuf* mbuf, const Stream& stream, const SessionHeaderTail& tail) {
    auto* frame = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(mbuf, stream.frame_bytes));
    if (frame == nullptr) return false;
    std::memcpy(frame + kHeaderBytes, stream.payload.data(), stream.payload.size());
    write_frame_header(frame, stream, tail);
    return true;
}

// ---------------------------------------------------------------------------
// The relay under test
// ---------------------------------------------------------------------------

struct RelayNode {
    uint32_t sessions = 0;
    uint32_t relay_addresses = 0;
    std::unique_ptr<dp::SessionTable> table;
    std::unique_ptr<dp::NeighbourTable> neighbours;
    std::unique_ptr<dp::WorkerStats> stats;
    std::unique_ptr<dp::PacketProcessor> processor;
    double setup_s = 0;
};

// Sends one bind request from `from` for side `side` through the real path
// and checks that the relay answered it (which latches the side).
bool latch_side(RelayNode& node, uint32_t slot, const SessionSpec& spec, uint8_t side,
                SocketAddress from, uint64_t now) {
    constexpr uint32_t kBindFrameBytes = kHeaderBytes + wire::bind::kLen;
    std::array<uint8_t, kBindFrameBytes> frame{};
    const auto request = wire::bind::make_request(spec.bind_secret, spec.id, side, 1, from);
    std::memcpy(frame.data() + kHeaderBytes, request.data(), request.size());
    write_headers(frame.data(), kBindFrameBytes, kRelayMac, kGatewayMac, from,
                  {spec.relay_ip, spec.relay_port},
                  dp::checksum_partial(request.data(), request.size()));
    const dp::Verdict verdict =
        node.processor->process(frame.data(), kBindFrameBytes, kPortIndex, now);
    const dp::Endpoint& state = node.table->at(slot).ep[side];
    return verdict.action == dp::Action::transmit && state.latched && state.ip == from.ip &&
           state.port == from.port;
}

std::unique_ptr<RelayNode> build_relay_node(uint32_t sessions, std::string& error) {
    const uint64_t tsc_hz = rte_get_tsc_hz();
    const uint64_t setup_start = rte_rdtsc();
    auto node = std::make_unique<RelayNode>();
    node->sessions = sessions;
    node->relay_addresses = relay_address_count(sessions);

    std::vector<Ipv4> relay_ips;
    dp::PortContext port;
    port.mac = kRelayMac;
    port.gateway = kGatewayAddress;
    port.address_count = static_cast<uint8_t>(node->relay_addresses);
    for (uint32_t i = 0; i < node->relay_addresses; ++i) {
        relay_ips.push_back(kFirstRelayAddress + i);
        port.addresses[i] = {kFirstRelayAddress + i, kRelayPrefixLen};
        port.table_index[i] = static_cast<uint8_t>(i);
    }
    node->table = std::make_unique<dp::SessionTable>(sessions, relay_ips);
    node->neighbours = std::make_unique<dp::NeighbourTable>();
    // The gateway stays resolved for the whole run (no ARP traffic in the bench).
    node->neighbours->update(kPortIndex, kGatewayAddress, kGatewayMac, UINT64_MAX);
    node->stats = std::make_unique<dp::WorkerStats>();
    node->processor = std::make_unique<dp::PacketProcessor>(
        *node->table, *node->neighbours, std::vector<dp::PortContext>{port}, tsc_hz, *node->stats);

    const uint64_t now = rte_rdtsc();
    for (uint32_t session = 0; session < sessions; ++session) {
        const SessionEndpoints endpoints = endpoints_of(session);
        SessionSpec spec;
        spec.id = session + 1;
        spec.relay_ip = endpoints.relay.ip;
        spec.relay_port = endpoints.relay.port;
        spec.policy = LatchPolicy::bind;
        spec.bind_secret = bind_secret_of(session);
        // Default limits (0 = unlimited) and the default idle timeout.
        const uint32_t slot = node->table->add(spec, now, tsc_hz);
        if (slot == dp::kNoSlot) {
            error = "could not install session " + std::to_string(session);
            return nullptr;
        }
        if (!latch_side(*node, slot, spec, 0, endpoints.side_a, now) ||
            !latch_side(*node, slot, spec, 1, endpoints.side_b, now)) {
            error = "bind request did not latch session " + std::to_string(session);
            return nullptr;
        }
    }
    node->setup_s = static_cast<double>(rte_rdtsc() - setup_start) / static_cast<double>(tsc_hz);
    return node;
}

// ---------------------------------------------------------------------------
// Harness: mempool, rings, ethdev
// ---------------------------------------------------------------------------

struct Harness {
    rte_mempool* pool = nullptr;
    rte_ring* to_worker = nullptr;     // the ethdev's RX queue
    rte_ring* to_generator = nullptr;  // the ethdev's TX queue
    uint16_t eth_port = 0;
    bool eth_started = false;
    unsigned worker_lcore = 0;
    uint32_t inflight = 0;

    Harness() = default;
    Harness(const Harness&) = delete;
    Harness& operator=(const Harness&) = delete;
    ~Harness() {
        if (eth_started) {
            rte_eth_dev_stop(eth_port);
            rte_eth_dev_close(eth_port);
        }
        rte_ring_free(to_worker);
        rte_ring_free(to_generator);
        rte_mempool_free(pool);
    }
};

bool create_harness(Harness& harness, uint32_t inflight, std::string& error) {
    harness.inflight = inflight;
    const int socket = static_cast<int>(rte_socket_id());
    harness.worker_lcore = rte_get_next_lcore(-1, 1, 0);
    if (harness.worker_lcore >= RTE_MAX_LCORE) {
        error = "needs a worker lcore besides the main one (EAL -l 0,1)";
        return false;
    }
    // No per-lcore cache: the worker frees and the generator allocates, so a
    // cache would strand mbufs on the worker's side.  The pool holds exactly
    // the frames in flight; the rings can hold all of them, so no enqueue
    // ever fails for want of room.
    harness.pool =
        rte_pktmbuf_pool_create("bench_pool", inflight, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, socket);
    const unsigned ring_size = rte_align32pow2(inflight + 1);
    harness.to_worker =
        rte_ring_create("bench_to_worker", ring_size, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
    harness.to_generator =
        rte_ring_create("bench_to_generator", ring_size, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (!harness.pool || !harness.to_worker || !harness.to_generator) {
        error = std::string("mempool or ring creation failed: ") + rte_strerror(rte_errno);
        return false;
    }
    const int port = rte_eth_from_rings("net_ring_bench", &harness.to_worker, 1,
                                        &harness.to_generator, 1, socket);
    if (port < 0) {
        error = std::string("rte_eth_from_rings failed: ") + rte_strerror(rte_errno);
        return false;
    }
    harness.eth_port = static_cast<uint16_t>(port);
    rte_eth_conf conf{};
    const auto descriptors = static_cast<uint16_t>(std::min(ring_size, 32768u));
    int rc = rte_eth_dev_configure(harness.eth_port, 1, 1, &conf);
    if (rc == 0)
        rc =
            rte_eth_rx_queue_setup(harness.eth_port, 0, descriptors, socket, nullptr, harness.pool);
    if (rc == 0) rc = rte_eth_tx_queue_setup(harness.eth_port, 0, descriptors, socket, nullptr);
    if (rc == 0) rc = rte_eth_dev_start(harness.eth_port);
    if (rc != 0) {
        error = std::string("net_ring ethdev set-up failed: ") + rte_strerror(-rc);
        return false;
    }
    harness.eth_started = true;
    return true;
}

// Returns every mbuf in the rings to the pool.
void drain(Harness& harness) {
    rte_mbuf* mbufs[kBurst];
    for (rte_ring* ring : {harness.to_worker, harness.to_generator}) {
        unsigned n;
        while ((n = rte_ring_sc_dequeue_burst(ring, reinterpret_cast<void**>(mbufs), kBurst,
                                              nullptr)) > 0)
            rte_pktmbuf_free_bulk(mbufs, n);
    }
}

// ---------------------------------------------------------------------------
// Worker (lcore 1)
// ---------------------------------------------------------------------------

// A burst (or a gap between two polls) longer than this was interrupted: the
// kernel ran something else on the core.  A burst of 32 takes a few us even
// at 1000 cycles per packet; a preemption lasts a time slice (milliseconds).
constexpr uint64_t kInterruptionThresholdUs = 100;

// The timed window [measure_at, stop_at) cut into slices of 2^shift TSC
// cycles (about a millisecond).  The worker counts its packets per slice and
// both threads mark the slices in which the kernel descheduled them, so that
// throughput can be taken over the slices in which both actually ran: on a
// shared machine the wall-clock rate mostly measures the neighbours.
class Timeline {
  public:
    static constexpr unsigned kMinShift = 21;    // 2^21 cycles = 0.8 ms at 2.6 GHz
    static constexpr size_t kMaxSlices = 16384;  // bounds memory for long runs

    Timeline(uint64_t measure_at, uint64_t stop_at) : measure_at_(measure_at), stop_at_(stop_at) {
        const uint64_t window = stop_at - measure_at;
        shift_ = kMinShift;
        while ((window >> shift_) + 1 > kMaxSlices) ++shift_;
        const size_t slices = (window >> shift_) + 1;
        packets_.assign(slices, 0);
        forwarded_.assign(slices, 0);
        busy_cycles_.assign(slices, 0);
        worker_interrupted_.assign(slices, 0);
        generator_interrupted_.assign(slices, 0);
    }

    uint64_t measure_at() const { return measure_at_; }
    uint64_t stop_at() const { return stop_at_; }

    // A burst of the worker that ended at `at`.
    void count_burst(uint64_t at, uint32_t packets, uint32_t forwarded, uint64_t busy_cycles) {
        const size_t slice = slice_of(at);
        packets_[slice] += packets;
        forwarded_[slice] += forwarded;
        busy_cycles_[slice] += busy_cycles;
    }
    void mark_worker_interrupted(uint64_t from, uint64_t to) {
        mark(worker_interrupted_, from, to);
    }
    void mark_generator_interrupted(uint64_t from, uint64_t to) {
        mark(generator_interrupted_, from, to);
    }

    // Totals over the clean slices (neither thread descheduled).  The first
    // and the last (partial) slice never count.
    struct CleanSlices {
        uint64_t packets = 0;
        uint64_t forwarded = 0;      // of them, forwarded by the relay
        uint64_t busy_cycles = 0;    // of the worker
        uint64_t cycles = 0;         // length of the clean slices
        uint64_t window_cycles = 0;  // length of the whole window
    };
    CleanSlices clean_slices() const {
        CleanSlices clean;
        clean.window_cycles = stop_at_ - measure_at_;
        for (size_t i = 1; i + 1 < packets_.size(); ++i) {
            if (worker_interrupted_[i] || generator_interrupted_[i]) continue;
            clean.packets += packets_[i];
            clean.forwarded += forwarded_[i];
            clean.busy_cycles += busy_cycles_[i];
            clean.cycles += uint64_t{1} << shift_;
        }
        return clean;
    }

  private:
    size_t slice_of(uint64_t tsc) const {
        if (tsc < measure_at_) return 0;
        return std::min<size_t>((tsc - measure_at_) >> shift_, packets_.size() - 1);
    }
    void mark(std::vector<uint8_t>& slices, uint64_t from, uint64_t to) {
        for (size_t i = slice_of(from), last = slice_of(to); i <= last; ++i) slices[i] = 1;
    }

    uint64_t measure_at_;
    uint64_t stop_at_;
    unsigned shift_;
    std::vector<uint64_t> packets_;  // written by the worker
    std::vector<uint64_t> forwarded_;
    std::vector<uint64_t> busy_cycles_;
    std::vector<uint8_t> worker_interrupted_;
    std::vector<uint8_t> generator_interrupted_;
};

enum class Phase : uint32_t { warmup, measure, stop };
enum class ForwardingMode { mac_swap, relay };

// Every TSC cycle of the timed window is one of: busy (inside a non-empty
// burst: rx, processing, tx), idle (empty polls and the loop itself) or
// interrupted (a burst or a gap longer than kInterruptionThresholdUs).
struct WorkerResult {
    uint64_t packets = 0;        // received in the timed window
    uint64_t timed_packets = 0;  // those of bursts that were not interrupted
    uint64_t busy_cycles = 0;    // summed over the bursts of timed_packets
    uint64_t idle_cycles = 0;
    uint64_t interrupted_cycles = 0;
    uint64_t bursts = 0;  // non-empty bursts, not interrupted
    uint64_t interruptions = 0;
    uint64_t window_cycles = 0;  // the timed window as the worker saw it
    uint64_t forwarded = 0;      // received in the timed window and forwarded
    uint64_t drops = 0;          // warm-up included: there should be none (but junk)
    uint64_t tx_unsent = 0;      // warm-up included
};

struct WorkerContext {
    uint16_t eth_port = 0;
    ForwardingMode mode = ForwardingMode::mac_swap;
    dp::PacketProcessor* processor = nullptr;
    bool return_dropped = false;            // junk runs: hand dropped frames back to the generator
    uint64_t interrupted_burst_cycles = 0;  // kInterruptionThresholdUs in TSC cycles
    Timeline* timeline = nullptr;
    alignas(64) std::atomic<Phase> phase{Phase::warmup};  // written by the generator only
    alignas(64) WorkerResult result;                      // read after rte_eal_wait_lcore
};

// The bare forwarding loop: l2fwd-style prefetch of the whole burst, then
// testpmd's macswap.  The prefetch gives it the best memory parallelism the
// harness allows, so the relay's extra cost is not understated.
struct MacSwapBurst {
    uint16_t operator()(rte_mbuf** received, uint16_t count, uint64_t /*now*/, rte_mbuf** to_send,
                        uint64_t& /*drops*/, uint32_t& forwarded) {
        forwarded = count;
        for (uint16_t i = 0; i < count; ++i) rte_prefetch0(rte_pktmbuf_mtod(received[i], void*));
        for (uint16_t i = 0; i < count; ++i) {
            auto* frame = rte_pktmbuf_mtod(received[i], uint8_t*);
            uint8_t saved_dst[6];
            std::memcpy(saved_dst, frame + wire::kEthDst, 6);
            std::memcpy(frame + wire::kEthDst, frame + wire::kEthSrc, 6);
            std::memcpy(frame + wire::kEthSrc, saved_dst, 6);
            to_send[i] = received[i];
        }
        return count;
    }
};

// What relay-dataplane's worker does with a burst of one port.
class RelayBurst {
  public:
    // return_dropped: dropped frames are transmitted back to the generator
    // instead of freed (junk runs: the generator sends them again, so the
    // pipeline stays full; a TX enqueue costs about what a free does).
    RelayBurst(dp::PacketProcessor& processor, bool return_dropped)
        : processor_(processor), return_dropped_(return_dropped) {}

    uint16_t operator()(rte_mbuf** received, uint16_t count, uint64_t now, rte_mbuf** to_send,
                        uint64_t& drops, uint32_t& forwarded) {
        for (uint16_t i = 0; i < count; ++i) {
            frames_[i] = rte_pktmbuf_mtod(received[i], uint8_t*);
            lengths_[i] = rte_pktmbuf_data_len(received[i]);
        }
        processor_.process_burst(frames_.data(), lengths_.data(), count, kPortIndex, now,
                                 verdicts_.data());
        uint16_t send_count = 0;
        forwarded = 0;
        for (uint16_t i = 0; i < count; ++i) {
            if (verdicts_[i].action == dp::Action::transmit) {
                to_send[send_count++] = received[i];
                ++forwarded;
            } else if (return_dropped_) {
                to_send[send_count++] = received[i];
                ++drops;
            } else {
                rte_pktmbuf_free(received[i]);
                ++drops;
            }
        }
        return send_count;
    }

  private:
    dp::PacketProcessor& processor_;
    bool return_dropped_;
    std::array<uint8_t*, kBurst> frames_{};
    std::array<uint32_t, kBurst> lengths_{};
    std::array<dp::Verdict, kBurst> verdicts_{};
};

// The same loop for both modes, so that the only difference between the
// baseline and the relay is `forward_burst`.
template <typename ForwardBurst>
WorkerResult worker_loop(WorkerContext& context, ForwardBurst forward_burst) {
    WorkerResult result;
    std::array<rte_mbuf*, kBurst> received;
    std::array<rte_mbuf*, kBurst> to_send;
    bool measuring = false;
    uint64_t window_start = 0;
    uint64_t accounted_until = 0;  // end of the last interval put into `result`
    // Puts [from, to) into `uninterrupted_cycles`, or into the interrupted
    // time when it is too long to be anything but a preemption.
    auto account = [&](uint64_t from, uint64_t to, uint64_t& uninterrupted_cycles) {
        if (to - from > context.interrupted_burst_cycles) {
            result.interrupted_cycles += to - from;
            ++result.interruptions;
            context.timeline->mark_worker_interrupted(from, to);
            return false;
        }
        uninterrupted_cycles += to - from;
        return true;
    };
    for (;;) {
        const Phase phase = context.phase.load(std::memory_order_acquire);
        if (phase == Phase::stop) break;
        const uint64_t burst_start = rte_rdtsc();
        if (phase == Phase::measure && !measuring) {
            measuring = true;
            window_start = accounted_until = burst_start;
        }
        if (measuring) account(accounted_until, burst_start, result.idle_cycles);
        accounted_until = burst_start;
        const uint16_t received_count =
            rte_eth_rx_burst(context.eth_port, 0, received.data(), kBurst);
        if (received_count == 0) continue;
        uint32_t forwarded = 0;
        const uint16_t send_count = forward_burst(received.data(), received_count, burst_start,
                                                  to_send.data(), result.drops, forwarded);
        const uint16_t sent = rte_eth_tx_burst(context.eth_port, 0, to_send.data(), send_count);
        if (sent < send_count) {
            rte_pktmbuf_free_bulk(to_send.data() + sent, send_count - sent);
            result.tx_unsent += send_count - sent;
        }
        const uint64_t burst_end = rte_rdtsc();
        accounted_until = burst_end;
        if (!measuring) continue;
        result.packets += received_count;
        result.forwarded += forwarded;
        if (account(burst_start, burst_end, result.busy_cycles)) {
            result.timed_packets += received_count;
            ++result.bursts;
            context.timeline->count_burst(burst_end, received_count, forwarded,
                                          burst_end - burst_start);
        } else {
            context.timeline->count_burst(burst_end, received_count, forwarded,
                                          0);  // slice is not clean
        }
    }
    if (measuring) result.window_cycles = rte_rdtsc() - window_start;
    return result;
}

int worker_main(void* argument) {
    auto& context = *static_cast<WorkerContext*>(argument);
    if (context.mode == ForwardingMode::relay)
        context.result =
            worker_loop(context, RelayBurst(*context.processor, context.return_dropped));
    else
        context.result = worker_loop(context, MacSwapBurst{});
    return 0;
}

// ---------------------------------------------------------------------------
// Generator (main lcore) and verification of what comes back
// ---------------------------------------------------------------------------

// Prime, so that the sampled frames do not always sit at the same position
// of a burst.
constexpr uint32_t kVerifyEvery = 251;       // returned frames per header check
constexpr uint32_t kFullChecksumEvery = 16;  // header checks per UDP checksum check

struct GeneratorResult {
    uint64_t busy_cycles = 0;    // non-empty iterations of the window, not interrupted
    uint64_t timed_packets = 0;  // packets of those iterations
    uint64_t verified_samples = 0;
    uint64_t verify_failures = 0;
    uint64_t refilled = 0;       // mbufs re-allocated to replace ones the worker freed
    uint64_t junk_returned = 0;  // junk frames the worker dropped and handed back
    std::string first_failure;
};

// Checks a frame the worker sent back; returns what is wrong with it, or
// nullptr.  Relay: rewritten towards side B of its session, checksums valid.
// MAC swap: MACs swapped, the rest as the generator wrote it.
const char* check_returned_frame(const uint8_t* frame, uint32_t length, const Traffic& traffic,
                                 ForwardingMode mode, bool check_udp_checksum) {
    const uint8_t* ip = frame + kIpOffset;
    const uint8_t* udp = frame + kUdpOffset;
    if (length != traffic.frame_bytes()) return "length changed";
    if (std::memcmp(frame + wire::kEthDst, kGatewayMac.bytes.data(), 6) != 0 ||
        std::memcmp(frame + wire::kEthSrc, kRelayMac.bytes.data(), 6) != 0)
        return "Ethernet addresses not towards the gateway";
    if (dp::checksum_fold(dp::checksum_partial(ip, wire::kIpv4HeaderLen)) != 0xffff)
        return "bad IPv4 checksum";
    const SocketAddress src{wire::load_be32(ip + wire::kIpSrc),
                            wire::load_be16(udp + wire::kUdpSrcPort)};
    const SocketAddress dst{wire::load_be32(ip + wire::kIpDst),
                            wire::load_be16(udp + wire::kUdpDstPort)};
    if (mode == ForwardingMode::relay) {
        const auto session = session_of_relay_address(src, traffic.sessions);
        if (!session) return "source is not a session's relay address";
        if (dst != endpoints_of(*session).side_b) return "destination is not side B of the session";
    } else {
        const auto session = session_of_relay_address(dst, traffic.sessions);
        if (!session || src != endpoints_of(*session).side_a)
            return "addresses changed by the MAC swap loop";
    }
    if (check_udp_checksum) {
        const uint16_t udp_len = wire::load_be16(udp + wire::kUdpLen);
        uint32_t sum = dp::checksum_partial(ip + wire::kIpSrc, 8);  // pseudo header
        sum += wire::kIpProtoUdp + udp_len;
        sum = dp::checksum_partial(udp, udp_len, sum);
        if (dp::checksum_fold(sum) != 0xffff) return "bad UDP checksum";
    }
    return nullptr;
}

class Generator {
  public:
    Generator(Harness& harness, const Traffic& traffic)
        : harness_(harness),
          traffic_(traffic),
          pace_cycles_(traffic.offered_mpps > 0
                           ? static_cast<double>(rte_get_tsc_hz()) / (traffic.offered_mpps * 1e6)
                           : 0) {}

    // Fills the pipeline: every mbuf of the pool carries a frame to the worker.
    // With junk, every other one carries junk, the junk kinds in turn.
    bool prime(std::string& error) {
        std::vector<rte_mbuf*> mbufs(harness_.inflight);
        if (rte_pktmbuf_alloc_bulk(harness_.pool, mbufs.data(), harness_.inflight) != 0) {
            error = "could not allocate the mbufs in flight";
            return false;
        }
        const size_t junk_kinds = traffic_.streams.size() - 1;
        for (size_t i = 0; i < mbufs.size(); ++i) {
            const size_t stream = traffic_.junk && i % 2 ? 1 + (i / 2) % junk_kinds : 0;
            if (!write_whole_frame(mbufs[i], traffic_.streams[stream], next_tail(stream))) {
                error = "frame does not fit in an mbuf";
                rte_pktmbuf_free_bulk(mbufs.data(), harness_.inflight);
                return false;
            }
        }
        rte_ring_sp_enqueue_bulk(harness_.to_worker, reinterpret_cast<void**>(mbufs.data()),
                                 harness_.inflight, nullptr);
        return true;
    }

    // Recycles frames until the timed window is over, moving the worker
    // through the phases.  Also measures its own cost per packet, to show
    // whether it, rather than the worker, limits the rate.
    GeneratorResult run(WorkerContext& worker, Timeline& timeline,
                        uint64_t interrupted_iteration_cycles) {
        bool measuring = false;
        uint64_t iteration = 0;
        uint64_t previous_start = rte_rdtsc();
        unsigned previous_count = 0;
        std::array<rte_mbuf*, kBurst> returned;
        for (;;) {
            const uint64_t start = rte_rdtsc();
            if (start - previous_start > interrupted_iteration_cycles) {
                timeline.mark_generator_interrupted(previous_start, start);
            } else if (measuring && previous_count > 0) {
                result_.busy_cycles += start - previous_start;
                result_.timed_packets += previous_count;
            }
            previous_start = start;
            previous_count = 0;
            if (start >= timeline.stop_at()) break;
            if (!measuring && start >= timeline.measure_at()) {
                worker.phase.store(Phase::measure, std::memory_order_release);
                measuring = true;
            }
            if ((++iteration & 1023) == 0) refill();
            const unsigned count = rte_ring_sc_dequeue_burst(
                harness_.to_generator, reinterpret_cast<void**>(returned.data()), kBurst, nullptr);
            if (count == 0) continue;
            for (unsigned i = 0; i < count; ++i)
                rte_prefetch0(rte_pktmbuf_mtod(returned[i], void*));
            for (unsigned i = 0; i < count; ++i) {
                auto* frame = rte_pktmbuf_mtod(returned[i], uint8_t*);
                const uint32_t length = rte_pktmbuf_data_len(returned[i]);
                const size_t stream = stream_of(frame, length);
                if (stream != 0) {
                    // Junk comes back only because the worker returns what it
                    // drops: it must be exactly as sent.
                    check_junk(frame, length);
                } else if (--until_verify_ == 0) {
                    until_verify_ = kVerifyEvery;
                    verify(frame, length, worker.mode);
                }
                write_frame_header(frame, traffic_.streams[stream], next_tail(stream));
            }
            if (pace_cycles_ > 0) pace(count);
            const unsigned queued = rte_ring_sp_enqueue_burst(
                harness_.to_worker, reinterpret_cast<void**>(returned.data()), count, nullptr);
            if (queued < count)  // cannot happen: the ring holds every mbuf of the pool
                rte_pktmbuf_free_bulk(returned.data() + queued, count - queued);
            previous_count = count;
        }
        worker.phase.store(Phase::stop, std::memory_order_release);
        return result_;
    }

  private:
    // Offers at most traffic_.offered_mpps: waits until `count` more frames
    // are due.  After a stall (more than 100 us behind) it does not catch up.
    void pace(unsigned count) {
        const uint64_t now = rte_rdtsc();
        if (next_send_ == 0 || now > next_send_ + rte_get_tsc_hz() / 10000) next_send_ = now;
        next_send_ += static_cast<uint64_t>(pace_cycles_ * count);
        while (rte_rdtsc() < next_send_) rte_pause();
    }

    const SessionHeaderTail& next_tail(size_t stream) {
        const std::vector<SessionHeaderTail>& sequence = traffic_.streams[stream].sequence;
        size_t& cursor = cursors_[stream];
        const SessionHeaderTail& tail = sequence[cursor];
        cursor = cursor + 1 == sequence.size() ? 0 : cursor + 1;
        return tail;
    }

    // Which stream a returned frame belongs to: junk frames have their own
    // size and carry their kind in the payload (kJunkKindOffset).
    size_t stream_of(const uint8_t* frame, uint32_t length) const {
        if (!traffic_.junk || length == traffic_.frame_bytes()) return 0;
        const size_t kind = frame[kHeaderBytes + kJunkKindOffset];
        return kind + 1 < traffic_.streams.size() ? kind + 1 : 0;
    }

    // A junk frame the worker returned: still addressed to the relay (never
    // rewritten, which would mean it was forwarded).
    void check_junk(const uint8_t* frame, uint32_t length) {
        ++result_.junk_returned;
        const uint8_t* ip = frame + kIpOffset;
        const SocketAddress dst{wire::load_be32(ip + wire::kIpDst),
                                wire::load_be16(frame + kUdpOffset + wire::kUdpDstPort)};
        if (length != kJunkFrameBytes || !session_of_relay_address(dst, traffic_.sessions)) {
            if (result_.verify_failures++ == 0)
                result_.first_failure = "a junk frame was forwarded";
        }
    }

    void verify(const uint8_t* frame, uint32_t length, ForwardingMode mode) {
        const bool full = ++verifications_ % kFullChecksumEvery == 0;
        ++result_.verified_samples;
        if (const char* failure = check_returned_frame(frame, length, traffic_, mode, full)) {
            if (result_.verify_failures++ == 0) result_.first_failure = failure;
        }
    }

    // Replaces mbufs the worker freed (drops, unsent) so the pipeline stays full.
    void refill() {
        const unsigned available = rte_mempool_avail_count(harness_.pool);
        if (available == 0) return;
        std::array<rte_mbuf*, kBurst> fresh;
        const unsigned count = std::min(available, kBurst);
        if (rte_pktmbuf_alloc_bulk(harness_.pool, fresh.data(), count) != 0) return;
        for (unsigned i = 0; i < count; ++i)
            write_whole_frame(fresh[i], traffic_.streams[0], next_tail(0));
        const unsigned queued = rte_ring_sp_enqueue_burst(
            harness_.to_worker, reinterpret_cast<void**>(fresh.data()), count, nullptr);
        if (queued < count) rte_pktmbuf_free_bulk(fresh.data() + queued, count - queued);
        result_.refilled += queued;
    }

    Harness& harness_;
    const Traffic& traffic_;
    double pace_cycles_;  // TSC cycles per frame offered; 0 = as fast as the worker takes them
    uint64_t next_send_ = 0;
    std::array<size_t, 8> cursors_{};
    uint32_t until_verify_ = kVerifyEvery;
    uint64_t verifications_ = 0;
    GeneratorResult result_;
};

// ---------------------------------------------------------------------------
// One timed run
// ---------------------------------------------------------------------------

// What one mode (baseline or relay) of one scenario measured, summed over
// its rounds.
struct RunTotals {
    WorkerResult worker;
    GeneratorResult generator;
    Timeline::CleanSlices clean;

    void add(const WorkerResult& w, const GeneratorResult& g, const Timeline::CleanSlices& c) {
        worker.packets += w.packets;
        worker.timed_packets += w.timed_packets;
        worker.busy_cycles += w.busy_cycles;
        worker.idle_cycles += w.idle_cycles;
        worker.interrupted_cycles += w.interrupted_cycles;
        worker.bursts += w.bursts;
        worker.interruptions += w.interruptions;
        worker.window_cycles += w.window_cycles;
        worker.drops += w.drops;
        worker.forwarded += w.forwarded;
        worker.tx_unsent += w.tx_unsent;
        generator.busy_cycles += g.busy_cycles;
        generator.timed_packets += g.timed_packets;
        generator.verified_samples += g.verified_samples;
        if (generator.verify_failures == 0) generator.first_failure = g.first_failure;
        generator.verify_failures += g.verify_failures;
        generator.refilled += g.refilled;
        generator.junk_returned += g.junk_returned;
        clean.packets += c.packets;
        clean.forwarded += c.forwarded;
        clean.busy_cycles += c.busy_cycles;
        clean.cycles += c.cycles;
        clean.window_cycles += c.window_cycles;
    }
};

struct RunFigures {
    double duration_s = 0;           // the timed windows, wall clock
    double interrupted_s = 0;        // of them, the worker was descheduled
    double mpps = 0;                 // over the slices where neither thread was descheduled
    double clean_fraction = 0;       // share of the windows those slices cover
    double wall_mpps = 0;            // all packets / duration_s
    double cycles_per_packet = 0;    // worker: busy cycles / timed packets
    double busy_ratio = 0;           // worker, clean slices: busy share; < 1: it waited for packets
    double forwarded_mpps = 0;       // of mpps, the packets the relay forwarded
    double wall_forwarded_mpps = 0;  // forwarded / duration_s, interruptions included
    double generator_cycles_per_packet = 0;
    bool verified = false;  // samples were checked and all were right
};

RunFigures figures_of(const RunTotals& totals) {
    const auto hz = static_cast<double>(rte_get_tsc_hz());
    const WorkerResult& worker = totals.worker;
    RunFigures figures;
    figures.duration_s = static_cast<double>(worker.window_cycles) / hz;
    figures.interrupted_s = static_cast<double>(worker.interrupted_cycles) / hz;
    figures.mpps = ratio_or_nan(totals.clean.packets, totals.clean.cycles) * hz / 1e6;
    figures.clean_fraction = ratio_or_nan(totals.clean.cycles, totals.clean.window_cycles);
    figures.wall_mpps = ratio_or_nan(worker.packets, worker.window_cycles) * hz / 1e6;
    figures.cycles_per_packet = ratio_or_nan(worker.busy_cycles, worker.timed_packets);
    figures.forwarded_mpps = ratio_or_nan(totals.clean.forwarded, totals.clean.cycles) * hz / 1e6;
    figures.wall_forwarded_mpps = ratio_or_nan(worker.forwarded, worker.window_cycles) * hz / 1e6;
    figures.busy_ratio = ratio_or_nan(totals.clean.busy_cycles, totals.clean.cycles);
    figures.generator_cycles_per_packet =
        ratio_or_nan(totals.generator.busy_cycles, totals.generator.timed_packets);
    figures.verified =
        totals.generator.verified_samples > 0 && totals.generator.verify_failures == 0;
    return figures;
}

struct DataplaneOptions {
    double duration_s = 2.0;
    double warmup_s = 0.2;
    uint32_t rounds = 4;
    std::vector<uint32_t> session_counts{1, 1000, 100000};
    std::vector<uint32_t> frame_sizes{64, 1420};
    uint32_t junk_sessions = 1000;  // 0: no junk scenario
    uint32_t junk_data_bytes = 128;
    bool junk_only = false;
    uint32_t inflight = 4096;
    std::optional<std::string> eal_args;
    bool check = false;
    bool help = false;
};

// One timed window of `duration_s` after `warmup_s`, added to `totals`.
bool run_timed(Harness& harness, const Traffic& traffic, ForwardingMode mode,
               dp::PacketProcessor* processor, double warmup_s, double duration_s,
               RunTotals& totals, std::string& error) {
    Generator generator(harness, traffic);
    if (!generator.prime(error)) return false;
    const uint64_t tsc_hz = rte_get_tsc_hz();
    const uint64_t interrupted_cycles = tsc_hz / 1'000'000 * kInterruptionThresholdUs;
    const uint64_t measure_at =
        rte_rdtsc() + static_cast<uint64_t>(warmup_s * static_cast<double>(tsc_hz));
    Timeline timeline(measure_at,
                      measure_at + static_cast<uint64_t>(duration_s * static_cast<double>(tsc_hz)));
    WorkerContext context;
    context.eth_port = harness.eth_port;
    context.mode = mode;
    context.processor = processor;
    context.return_dropped = traffic.return_dropped;
    context.interrupted_burst_cycles = interrupted_cycles;
    context.timeline = &timeline;
    if (rte_eal_remote_launch(worker_main, &context, harness.worker_lcore) != 0) {
        error = "could not launch the worker lcore";
        drain(harness);
        return false;
    }
    const GeneratorResult generated = generator.run(context, timeline, interrupted_cycles);
    rte_eal_wait_lcore(harness.worker_lcore);
    drain(harness);
    if (rte_mempool_avail_count(harness.pool) != harness.inflight) {
        error = "mbufs lost: " +
                std::to_string(harness.inflight - rte_mempool_avail_count(harness.pool));
        return false;
    }
    totals.add(context.result, generated, timeline.clean_slices());
    return true;
}

// ---------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------

struct MemoryUse {
    long max_rss_kb = 0;  // getrusage: the peak so far
    long rss_kb = 0;      // /proc/self/statm: now
};

MemoryUse memory_use() {
    MemoryUse use;
    rusage usage{};
    if (getrusage(RUSAGE_SELF, &usage) == 0) use.max_rss_kb = usage.ru_maxrss;
    std::ifstream statm("/proc/self/statm");
    long pages_total = 0, pages_resident = 0;
    if (statm >> pages_total >> pages_resident)
        use.rss_kb = pages_resident * (sysconf(_SC_PAGESIZE) / 1024);
    return use;
}

struct ScenarioResult {
    uint32_t sessions = 0;
    uint32_t frame_bytes = 0;
    double mpps = 0;
    double own_cycles_per_packet = 0;
    bool correct = false;  // no drops, nothing unsent, every sample verified
};

std::string drop_reasons_json(const std::array<uint64_t, dp::kDropReasonCount>& before,
                              const dp::WorkerStats& stats) {
    JsonLine reasons;
    for (unsigned r = 1; r < dp::kDropReasonCount; ++r) {
        const uint64_t count = stats.drops[r].get() - before[r];
        if (count > 0) reasons.add(dp::drop_reason_name(static_cast<dp::DropReason>(r)), count);
    }
    return reasons.str();
}

std::optional<ScenarioResult> run_scenario(Harness& harness, RelayNode& node, uint32_t frame_bytes,
                                           const DataplaneOptions& options, std::string& error) {
    const Traffic traffic = make_traffic(node.sessions, frame_bytes);
    std::array<uint64_t, dp::kDropReasonCount> drops_before{};
    for (unsigned r = 0; r < dp::kDropReasonCount; ++r)
        drops_before[r] = node.stats->drops[r].get();

    // The two modes alternate in rounds (baseline, relay, relay, baseline, ...)
    // so that both see the same share of whatever else the machine is doing.
    const MemoryUse memory_before = memory_use();
    RunTotals baseline_totals;
    RunTotals relay_totals;
    const double round_s = options.duration_s / options.rounds;
    for (uint32_t round = 0; round < options.rounds; ++round) {
        for (const bool relay_turn : {round % 2 == 1, round % 2 == 0}) {
            const bool ok =
                relay_turn
                    ? run_timed(harness, traffic, ForwardingMode::relay, node.processor.get(),
                                options.warmup_s, round_s, relay_totals, error)
                    : run_timed(harness, traffic, ForwardingMode::mac_swap, nullptr,
                                options.warmup_s, round_s, baseline_totals, error);
            if (!ok) return std::nullopt;
        }
    }
    const MemoryUse memory_after = memory_use();
    const RunFigures relay = figures_of(relay_totals);
    const RunFigures baseline = figures_of(baseline_totals);
    const WorkerResult& relay_worker = relay_totals.worker;

    ScenarioResult result;
    result.sessions = node.sessions;
    result.frame_bytes = frame_bytes;
    result.mpps = relay.mpps;
    result.own_cycles_per_packet = relay.cycles_per_packet - baseline.cycles_per_packet;
    result.correct = relay.verified && relay_worker.drops == 0 && relay_worker.tx_unsent == 0;

    const auto tsc_hz = static_cast<double>(rte_get_tsc_hz());
    JsonLine line;
    line.add("scenario", "relay-" + std::to_string(node.sessions) + "-sessions-" +
                             std::to_string(frame_bytes) + "B")
        .add("sessions", node.sessions)
        .add("packet_bytes", frame_bytes)
        .add("mpps", relay.mpps)
        .add("cycles_per_packet", relay.cycles_per_packet, 1)
        .add("baseline_mpps", baseline.mpps)
        .add("baseline_cycles_per_packet", baseline.cycles_per_packet, 1)
        .add("own_cycles_per_packet", result.own_cycles_per_packet, 1)
        .add("packets", relay_worker.packets)
        .add("duration_s", relay.duration_s)
        .add("baseline_packets", baseline_totals.worker.packets)
        .add("baseline_duration_s", baseline.duration_s)
        .add("rounds", options.rounds)
        .add("capacity_mpps", tsc_hz / relay.cycles_per_packet / 1e6)
        .add("baseline_capacity_mpps", tsc_hz / baseline.cycles_per_packet / 1e6)
        .add("wall_mpps", relay.wall_mpps)
        .add("baseline_wall_mpps", baseline.wall_mpps)
        .add("clean_fraction", relay.clean_fraction)
        .add("baseline_clean_fraction", baseline.clean_fraction)
        .add("interrupted_s", relay.interrupted_s)
        .add("baseline_interrupted_s", baseline.interrupted_s)
        .add("interruptions", relay_worker.interruptions)
        .add("baseline_interruptions", baseline_totals.worker.interruptions)
        .add("generator_cycles_per_packet", relay.generator_cycles_per_packet, 1)
        .add("baseline_generator_cycles_per_packet", baseline.generator_cycles_per_packet, 1)
        .add("worker_busy_ratio", relay.busy_ratio)
        .add("baseline_worker_busy_ratio", baseline.busy_ratio)
        .add("packets_per_burst", ratio_or_nan(relay_worker.timed_packets, relay_worker.bursts), 1)
        .add("drops", relay_worker.drops)
        .add_raw("drop_reasons", drop_reasons_json(drops_before, *node.stats))
        .add("tx_unsent", relay_worker.tx_unsent + baseline_totals.worker.tx_unsent)
        .add("refilled_mbufs", relay_totals.generator.refilled + baseline_totals.generator.refilled)
        .add("verified", relay.verified)
        .add("verified_samples", relay_totals.generator.verified_samples)
        .add("baseline_verified", baseline.verified);
    if (!relay.verified && !relay_totals.generator.first_failure.empty())
        line.add("verify_failure", relay_totals.generator.first_failure);
    if (!baseline.verified && !baseline_totals.generator.first_failure.empty())
        line.add("baseline_verify_failure", baseline_totals.generator.first_failure);
    line.add("max_rss_kb_before", memory_before.max_rss_kb)
        .add("max_rss_kb_after", memory_after.max_rss_kb)
        .add("rss_kb_before", memory_before.rss_kb)
        .add("rss_kb_after", memory_after.rss_kb)
        .add("relay_addresses", node.relay_addresses)
        .add("session_setup_s", node.setup_s)
        .add("inflight", harness.inflight)
        .add("burst", kBurst)
        .add("tsc_hz", rte_get_tsc_hz());
    if (!line.print()) {
        error = "cannot write to stdout";
        return std::nullopt;
    }
    return result;
}

// ---------------------------------------------------------------------------
// Junk scenario: legitimate forwarding while half the load is junk handshakes
// ---------------------------------------------------------------------------
//
// `wireguard` sessions, each side expected from exactly its address and port
// (as control programs them), latched through the real path.  Two kinds of
// run alternate in rounds on the same node: "clean" (WireGuard data from side
// A of every session) and "junk" (the same data in every other frame, junk
// initiations to the same session ports in the others).  The ratio of the
// forwarded rates is the figure (target >= 0.8): the worker is saturated in
// both, so it is what junk costs legitimate traffic at the worst.

const PublicKey kSideAKey = [] {
    PublicKey k{};
    for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(0x11 + i);
    return k;
}();
const PublicKey kSideBKey = [] {
    PublicKey k{};
    for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(0x22 + 3 * i);
    return k;
}();

enum class JunkKind : uint8_t {
    bad_mac1_unexpected_source,
    valid_initiation_unexpected_source,
    valid_initiation_expected_ip_wrong_port,
    bad_mac1_spoofed_expected_source,
    count_
};
constexpr size_t kJunkKinds = static_cast<size_t>(JunkKind::count_);
constexpr const char* kJunkKindNames[kJunkKinds] = {
    "bad_mac1_unexpected_source",
    "valid_initiation_unexpected_source",
    "valid_initiation_expected_ip_wrong_port",
    "bad_mac1_spoofed_expected_source",
};

// A WireGuard handshake message of `length` with mac1 at `mac1_at`, valid
// under `receiver`'s key or (valid_mac1 false) not.
std::vector<uint8_t> handshake_message(uint32_t type, size_t length, size_t mac1_at,
                                       uint32_t sender_index, uint32_t receiver_index,
                                       const PublicKey& receiver, bool valid_mac1, uint8_t filler) {
    std::vector<uint8_t> m(length);
    for (size_t i = 0; i < length; ++i) m[i] = static_cast<uint8_t>(filler + 7 * i);
    wire::store_le32(m.data(), type);
    wire::store_le32(m.data() + wire::wg::kSenderIndex, sender_index);
    if (type == wire::wg::kTypeResponse)
        wire::store_le32(m.data() + wire::wg::kResponseReceiverIndex, receiver_index);
    std::fill(m.begin() + static_cast<ptrdiff_t>(mac1_at), m.end(), 0);
    crypto::Mac1 mac1;
    const crypto::Mac computed =
        mac1.compute(crypto::mac1_key_for(receiver), std::span<const uint8_t>(m.data(), mac1_at));
    std::copy(computed.begin(), computed.end(), m.begin() + static_cast<ptrdiff_t>(mac1_at));
    if (!valid_mac1) m[mac1_at] ^= 0xff;
    return m;
}

// Passes one handshake message from `from` to the session through the real path.
dp::Verdict send_handshake(RelayNode& node, SocketAddress from, SocketAddress relay,
                           const std::vector<uint8_t>& message, uint64_t now) {
    std::vector<uint8_t> frame(kHeaderBytes + message.size());
    std::memcpy(frame.data() + kHeaderBytes, message.data(), message.size());
    write_headers(frame.data(), static_cast<uint32_t>(frame.size()), kRelayMac, kGatewayMac, from,
                  relay, dp::checksum_partial(message.data(), message.size()));
    return node.processor->process(frame.data(), static_cast<uint32_t>(frame.size()), kPortIndex,
                                   now);
}

// `sessions` wireguard sessions with expected sources, latched as real peers
// do: B's initiation, A's initiation (forwarded to B), B's response.
std::unique_ptr<RelayNode> build_wireguard_node(uint32_t sessions, std::string& error) {
    const uint64_t tsc_hz = rte_get_tsc_hz();
    const uint64_t setup_start = rte_rdtsc();
    auto node = std::make_unique<RelayNode>();
    node->sessions = sessions;
    node->relay_addresses = relay_address_count(sessions);
    std::vector<Ipv4> relay_ips;
    dp::PortContext port;
    port.mac = kRelayMac;
    port.gateway = kGatewayAddress;
    port.address_count = static_cast<uint8_t>(node->relay_addresses);
    for (uint32_t i = 0; i < node->relay_addresses; ++i) {
        relay_ips.push_back(kFirstRelayAddress + i);
        port.addresses[i] = {kFirstRelayAddress + i, kRelayPrefixLen};
        port.table_index[i] = static_cast<uint8_t>(i);
    }
    node->table = std::make_unique<dp::SessionTable>(sessions, relay_ips);
    node->neighbours = std::make_unique<dp::NeighbourTable>();
    node->neighbours->update(kPortIndex, kGatewayAddress, kGatewayMac, UINT64_MAX);
    node->stats = std::make_unique<dp::WorkerStats>();
    node->processor = std::make_unique<dp::PacketProcessor>(
        *node->table, *node->neighbours, std::vector<dp::PortContext>{port}, tsc_hz, *node->stats);

    const uint64_t now = rte_rdtsc();
    for (uint32_t session = 0; session < sessions; ++session) {
        const SessionEndpoints e = endpoints_of(session);
        SessionSpec spec;
        spec.id = session + 1;
        spec.relay_ip = e.relay.ip;
        spec.relay_port = e.relay.port;
        spec.policy = LatchPolicy::wireguard;
        spec.sides[0] = {kSideAKey, {e.side_a.ip, 32}, e.side_a.port};
        spec.sides[1] = {kSideBKey, {e.side_b.ip, 32}, e.side_b.port};
        const uint32_t slot = node->table->add(spec, now, tsc_hz);
        if (slot == dp::kNoSlot) {
            error = "could not install session " + std::to_string(session);
            return nullptr;
        }
        using namespace wire::wg;
        const uint32_t a_index = 0xa0000000u + session;
        const uint32_t b_index = 0xb0000000u + session;
        send_handshake(*node, e.side_b, e.relay,
                       handshake_message(kTypeInitiation, kInitiationLen, kInitiationMac1, b_index,
                                         0, kSideAKey, true, 0x31),
                       now);
        const dp::Verdict init =
            send_handshake(*node, e.side_a, e.relay,
                           handshake_message(kTypeInitiation, kInitiationLen, kInitiationMac1,
                                             a_index, 0, kSideBKey, true, 0x32),
                           now);
        const dp::Verdict response =
            send_handshake(*node, e.side_b, e.relay,
                           handshake_message(kTypeResponse, kResponseLen, kResponseMac1,
                                             0xc0000000u + session, a_index, kSideAKey, true, 0x33),
                           now);
        const dp::Session& state = node->table->at(slot);
        if (init.action != dp::Action::transmit || response.action != dp::Action::transmit ||
            !state.ep[0].latched || !state.ep[1].latched) {
            error = "handshake did not latch session " + std::to_string(session);
            return nullptr;
        }
    }
    node->setup_s = static_cast<double>(rte_rdtsc() - setup_start) / static_cast<double>(tsc_hz);
    return node;
}

// Junk of one kind to every session's port, in the shared session order.
Stream junk_stream(uint32_t sessions, JunkKind kind) {
    const bool valid = kind == JunkKind::valid_initiation_unexpected_source ||
                       kind == JunkKind::valid_initiation_expected_ip_wrong_port;
    std::vector<uint8_t> payload = handshake_message(
        wire::wg::kTypeInitiation, wire::wg::kInitiationLen, wire::wg::kInitiationMac1,
        0x0bad0000u + static_cast<uint32_t>(kind), 0, kSideBKey, false, 0x40);
    payload[kJunkKindOffset] = static_cast<uint8_t>(kind);
    if (valid)  // mac1 again, over the kind byte too
        payload = [&] {
            std::vector<uint8_t> m = payload;
            crypto::Mac1 mac1;
            const crypto::Mac c =
                mac1.compute(crypto::mac1_key_for(kSideBKey),
                             std::span<const uint8_t>(m.data(), wire::wg::kInitiationMac1));
            std::copy(c.begin(), c.end(), m.begin() + wire::wg::kInitiationMac1);
            return m;
        }();
    std::mt19937 rng(0x1a2b + static_cast<uint32_t>(kind));
    return make_stream(kJunkFrameBytes, std::move(payload), session_order(sessions),
                       [&](uint32_t session, uint32_t) -> SocketAddress {
                           const SocketAddress a = endpoints_of(session).side_a;
                           switch (kind) {
                               case JunkKind::valid_initiation_expected_ip_wrong_port:
                                   return {a.ip, static_cast<uint16_t>(a.port ^ 0x4000)};
                               case JunkKind::bad_mac1_spoofed_expected_source:
                                   return a;
                               default:  // 198.18.0.0/15 (RFC 2544), any port
                                   return {0xc6120000u | (rng() & 0x1ffff),
                                           static_cast<uint16_t>(1024 + rng() % 60000)};
                           }
                       });
}

Traffic make_junk_traffic(uint32_t sessions, uint32_t data_bytes, bool with_junk) {
    Traffic traffic;
    traffic.sessions = sessions;
    traffic.return_dropped = true;
    traffic.junk = with_junk;
    traffic.streams.push_back(data_stream(sessions, data_bytes, true));
    if (with_junk)
        for (size_t k = 0; k < kJunkKinds; ++k)
            traffic.streams.push_back(junk_stream(sessions, static_cast<JunkKind>(k)));
    return traffic;
}

// What PacketProcessor::process_burst costs per packet of one stream on its
// own (no rx/tx), on the main lcore: bursts of 32 over the stream's frames,
// headers restored (untimed) between passes.  Also the verdicts, by reason.
struct StreamCost {
    double cycles_per_packet = 0;
    uint64_t packets = 0;
    uint64_t forwarded = 0;
    std::string drop_reasons;
};

StreamCost measure_stream_cost(RelayNode& node, const Stream& stream, uint64_t target_packets) {
    const uint32_t n = static_cast<uint32_t>(std::min<size_t>(stream.sequence.size(), 4096));
    std::vector<uint8_t> buffer(static_cast<size_t>(n) * stream.frame_bytes);
    std::vector<uint8_t*> frames(n);
    std::vector<uint32_t> lengths(n, stream.frame_bytes);
    for (uint32_t i = 0; i < n; ++i) {
        frames[i] = buffer.data() + static_cast<size_t>(i) * stream.frame_bytes;
        std::memcpy(frames[i] + kHeaderBytes, stream.payload.data(), stream.payload.size());
    }
    std::array<uint64_t, dp::kDropReasonCount> before{};
    for (unsigned r = 0; r < dp::kDropReasonCount; ++r) before[r] = node.stats->drops[r].get();
    std::array<dp::Verdict, kBurst> verdicts{};
    StreamCost cost;
    uint64_t cycles = 0;
    while (cost.packets < target_packets) {
        for (uint32_t i = 0; i < n; ++i) write_frame_header(frames[i], stream, stream.sequence[i]);
        for (uint32_t base = 0; base < n; base += kBurst) {
            const unsigned m = std::min<uint32_t>(kBurst, n - base);
            const uint64_t start = rte_rdtsc();
            node.processor->process_burst(frames.data() + base, lengths.data() + base, m,
                                          kPortIndex, start, verdicts.data());
            cycles += rte_rdtsc() - start;
            for (unsigned i = 0; i < m; ++i)
                cost.forwarded += verdicts[i].action == dp::Action::transmit ? 1 : 0;
            cost.packets += m;
        }
    }
    cost.cycles_per_packet = ratio_or_nan(cycles, cost.packets);
    cost.drop_reasons = drop_reasons_json(before, *node.stats);
    return cost;
}

// mac1 of one initiation, for comparison: what a junk packet would cost if
// it reached the MAC check.
double mac1_verify_cycles() {
    const std::vector<uint8_t> m =
        handshake_message(wire::wg::kTypeInitiation, wire::wg::kInitiationLen,
                          wire::wg::kInitiationMac1, 1, 0, kSideBKey, true, 0x50);
    const crypto::Mac1Key key = crypto::mac1_key_for(kSideBKey);
    crypto::Mac1 mac1;
    constexpr unsigned kRounds = 20000;
    unsigned ok = 0;
    const uint64_t start = rte_rdtsc();
    for (unsigned i = 0; i < kRounds; ++i) ok += mac1.verify(key, m, wire::wg::kInitiationMac1);
    const uint64_t cycles = rte_rdtsc() - start;
    return ok == kRounds ? static_cast<double>(cycles) / kRounds
                         : std::numeric_limits<double>::quiet_NaN();
}

struct JunkResult {
    double ratio = 0;
    bool correct = false;
};

std::optional<JunkResult> run_junk_scenario(Harness& harness, RelayNode& node,
                                            const DataplaneOptions& options, std::string& error) {
    const Traffic clean = make_junk_traffic(node.sessions, options.junk_data_bytes, false);
    const Traffic junk = make_junk_traffic(node.sessions, options.junk_data_bytes, true);

    // Cost of each stream on its own, first (the per-source limiter then
    // holds the spoofed source's buckets empty, as in a sustained flood).
    JsonLine costs;
    JsonLine cost_reasons;
    const StreamCost data_cost = measure_stream_cost(node, clean.streams[0], 2'000'000);
    for (size_t k = 0; k < kJunkKinds; ++k) {
        const StreamCost c = measure_stream_cost(node, junk.streams[1 + k], 2'000'000);
        costs.add(kJunkKindNames[k], c.cycles_per_packet, 1);
        cost_reasons.add_raw(kJunkKindNames[k], c.drop_reasons);
        if (c.forwarded != 0) {
            error = std::string("junk of kind ") + kJunkKindNames[k] + " was forwarded";
            return std::nullopt;
        }
    }

    std::array<uint64_t, dp::kDropReasonCount> drops_before{};
    for (unsigned r = 0; r < dp::kDropReasonCount; ++r)
        drops_before[r] = node.stats->drops[r].get();
    const uint64_t macs_before = node.stats->mac_checks.get();
    RunTotals clean_totals;
    RunTotals junk_totals;
    const double round_s = options.duration_s / options.rounds;
    for (uint32_t round = 0; round < options.rounds; ++round) {
        for (const bool junk_turn : {round % 2 == 1, round % 2 == 0}) {
            if (!run_timed(harness, junk_turn ? junk : clean, ForwardingMode::relay,
                           node.processor.get(), options.warmup_s, round_s,
                           junk_turn ? junk_totals : clean_totals, error))
                return std::nullopt;
        }
    }
    const RunFigures c = figures_of(clean_totals);
    const RunFigures j = figures_of(junk_totals);

    // The same at an offered load the worker can carry: legitimate data at
    // half the rate it forwarded above, alone, then with as much junk again
    // (offered in all: the worker's capacity; if junk costs what data costs,
    // all of it is carried).  This ratio is the target.
    Traffic paced_clean = clean;
    Traffic paced_junk = junk;
    const double offered_legit_mpps = c.forwarded_mpps / 2;
    paced_clean.offered_mpps = offered_legit_mpps;
    paced_junk.offered_mpps = 2 * offered_legit_mpps;
    RunTotals paced_clean_totals;
    RunTotals paced_junk_totals;
    for (uint32_t round = 0; round < options.rounds; ++round) {
        for (const bool junk_turn : {round % 2 == 1, round % 2 == 0}) {
            if (!run_timed(harness, junk_turn ? paced_junk : paced_clean, ForwardingMode::relay,
                           node.processor.get(), options.warmup_s, round_s,
                           junk_turn ? paced_junk_totals : paced_clean_totals, error))
                return std::nullopt;
        }
    }
    const RunFigures pc = figures_of(paced_clean_totals);
    const RunFigures pj = figures_of(paced_junk_totals);

    JunkResult result;
    // Over the clean slices, as everywhere in this benchmark (on a shared
    // machine the wall-clock rates measure the neighbours).
    result.ratio = pj.forwarded_mpps / pc.forwarded_mpps;
    const double saturated_ratio = j.forwarded_mpps / c.forwarded_mpps;
    // Clean: everything forwarded.  Junk: every returned junk frame unchanged,
    // every checked data frame right, and the junk share really half.
    const uint64_t junk_dropped = junk_totals.worker.drops;
    result.correct = c.verified && j.verified && pc.verified && pj.verified &&
                     clean_totals.worker.drops == 0 && paced_clean_totals.worker.drops == 0 &&
                     clean_totals.worker.tx_unsent == 0 && junk_totals.worker.tx_unsent == 0 &&
                     paced_junk_totals.worker.tx_unsent == 0 &&
                     junk_totals.generator.verify_failures == 0 &&
                     paced_junk_totals.generator.verify_failures == 0;
    const double junk_share = ratio_or_nan(
        junk_totals.worker.packets - junk_totals.worker.forwarded, junk_totals.worker.packets);

    JsonLine line;
    line.add("scenario", "junk-" + std::to_string(node.sessions) + "-sessions-" +
                             std::to_string(options.junk_data_bytes) + "B")
        .add("sessions", node.sessions)
        .add("packet_bytes", options.junk_data_bytes)
        .add("junk_packet_bytes", kJunkFrameBytes)
        .add("junk_share", junk_share)
        .add("offered_legit_mpps", offered_legit_mpps)
        .add("legit_mpps_without_junk", pc.forwarded_mpps)
        .add("legit_mpps_with_junk", pj.forwarded_mpps)
        .add("wall_legit_mpps_without_junk", pc.wall_forwarded_mpps)
        .add("wall_legit_mpps_with_junk", pj.wall_forwarded_mpps)
        .add("legit_mpps_ratio", result.ratio)
        .add("target_ratio", 0.8, 1)
        .add("pass", result.ratio >= 0.8 && result.correct)
        .add("received_mpps_with_junk", pj.mpps)
        .add("worker_busy_ratio_without_junk", pc.busy_ratio)
        .add("worker_busy_ratio_with_junk", pj.busy_ratio)
        .add("saturated_legit_mpps_without_junk", c.forwarded_mpps)
        .add("saturated_legit_mpps_with_junk", j.forwarded_mpps)
        .add("saturated_legit_mpps_ratio", saturated_ratio)
        .add("saturated_received_mpps_with_junk", j.mpps)
        .add("cycles_per_packet_without_junk", c.cycles_per_packet, 1)
        .add("cycles_per_packet_with_junk", j.cycles_per_packet, 1)
        .add("processor_cycles_per_data_packet", data_cost.cycles_per_packet, 1)
        .add_raw("processor_cycles_per_junk_packet", costs.str())
        .add_raw("junk_verdicts_alone", cost_reasons.str())
        .add("mac1_verify_cycles", mac1_verify_cycles(), 1)
        .add("mac_checks_in_runs", node.stats->mac_checks.get() - macs_before)
        .add_raw("drop_reasons", drop_reasons_json(drops_before, *node.stats))
        .add("junk_dropped", junk_dropped)
        .add("junk_returned_unchanged", junk_totals.generator.junk_returned)
        .add("clean_fraction",
             std::min({c.clean_fraction, j.clean_fraction, pc.clean_fraction, pj.clean_fraction}))
        .add("saturated_worker_busy_ratio", c.busy_ratio)
        .add("generator_cycles_per_packet", j.generator_cycles_per_packet, 1)
        .add("rounds", options.rounds)
        .add("duration_s", c.duration_s + j.duration_s + pc.duration_s + pj.duration_s)
        .add("verified", c.verified && j.verified && pc.verified && pj.verified)
        .add("correct", result.correct);
    if (!result.correct) {
        const std::string& failure = !junk_totals.generator.first_failure.empty()
                                         ? junk_totals.generator.first_failure
                                         : clean_totals.generator.first_failure;
        if (!failure.empty()) line.add("verify_failure", failure);
    }
    line.add("session_setup_s", node.setup_s).add("tsc_hz", rte_get_tsc_hz());
    if (!line.print()) {
        error = "cannot write to stdout";
        return std::nullopt;
    }
    return result;
}

struct Target {
    std::string name;
    uint32_t sessions;
    bool at_most;  // true: measured <= limit; false: measured >= limit
    double limit;
    std::optional<double> measured;  // worst over the frame sizes run; none if not run
};

// Prints the summary line; returns whether every evaluated target was met
// and every scenario forwarded correctly.
bool print_summary(const std::vector<ScenarioResult>& results,
                   const std::optional<JunkResult>& junk) {
    std::vector<Target> targets = {
        {"own_cycles_per_packet_at_1000_sessions", 1000, true, 100, std::nullopt},
        {"own_cycles_per_packet_at_100000_sessions", 100000, true, 200, std::nullopt},
        {"mpps_at_1000_sessions", 1000, false, 15, std::nullopt},
    };
    for (Target& target : targets) {
        for (const ScenarioResult& result : results) {
            if (result.sessions != target.sessions) continue;
            const double value = target.at_most ? result.own_cycles_per_packet : result.mpps;
            if (!target.measured)
                target.measured = value;
            else
                target.measured = target.at_most ? std::max(*target.measured, value)
                                                 : std::min(*target.measured, value);
        }
    }
    bool all_met = true;
    std::string targets_json = "[";
    for (const Target& target : targets) {
        JsonLine entry;
        entry.add("target", target.name)
            .add("limit", target.limit, 1)
            .add("comparison", target.at_most ? "<=" : ">=");
        if (target.measured && std::isfinite(*target.measured)) {
            const bool met = target.at_most ? *target.measured <= target.limit
                                            : *target.measured >= target.limit;
            all_met = all_met && met;
            entry.add("measured", *target.measured, 2).add("target_met", met);
        } else {
            entry.add_null("measured").add_null("target_met");  // scenario not run
        }
        if (targets_json.size() > 1) targets_json += ',';
        targets_json += entry.str();
    }
    {
        // Legitimate forwarding under a flood of junk handshakes (junk scenario).
        JsonLine entry;
        entry.add("target", "legit_mpps_ratio_with_50_percent_junk")
            .add("limit", 0.8, 1)
            .add("comparison", ">=");
        if (junk && std::isfinite(junk->ratio)) {
            const bool met = junk->ratio >= 0.8;
            all_met = all_met && met;
            entry.add("measured", junk->ratio, 3).add("target_met", met);
        } else {
            entry.add_null("measured").add_null("target_met");
        }
        if (targets_json.size() > 1) targets_json += ',';
        targets_json += entry.str();
    }
    targets_json += ']';
    const bool all_correct = std::all_of(results.begin(), results.end(),
                                         [](const ScenarioResult& r) { return r.correct; }) &&
                             (!junk || junk->correct);
    JsonLine summary;
    summary.add("scenario", "summary")
        .add_raw("targets", targets_json)
        .add("all_targets_met", all_met)
        .add("forwarding_correct", all_correct)
        .print();  // nothing left to stop if stdout is gone
    return all_met && all_correct;
}

// ---------------------------------------------------------------------------
// Options and EAL
// ---------------------------------------------------------------------------

template <typename Number>
bool parse_number(std::string_view text, Number& value) {
    const char* end = text.data() + text.size();
    const auto [stop, status] = std::from_chars(text.data(), end, value);
    return status == std::errc() && stop == end && !text.empty();
}

bool parse_list(std::string_view text, uint32_t min, uint32_t max, std::vector<uint32_t>& out) {
    out.clear();
    while (true) {
        const size_t comma = text.find(',');
        uint32_t value = 0;
        if (!parse_number(text.substr(0, comma), value) || value < min || value > max) return false;
        if (std::find(out.begin(), out.end(), value) == out.end()) out.push_back(value);
        if (comma == std::string_view::npos) return true;
        text.remove_prefix(comma + 1);
    }
}

std::optional<DataplaneOptions> parse_options(int argc, char** argv, std::string& error) {
    DataplaneOptions options;
    for (int i = 1; i < argc; ++i) {
        std::string_view argument = argv[i];
        std::string_view value;
        bool has_value = false;
        if (const size_t equals = argument.find('=');
            argument.starts_with("--") && equals != std::string_view::npos) {
            value = argument.substr(equals + 1);
            argument = argument.substr(0, equals);
            has_value = true;
        }
        auto take_value = [&]() -> bool {
            if (has_value) return true;
            if (i + 1 >= argc) {
                error = std::string(argument) + " needs a value";
                return false;
            }
            value = argv[++i];
            return true;
        };
        if (argument == "--help" || argument == "-h") {
            options.help = true;
        } else if (argument == "--check") {
            options.check = true;
        } else if (argument == "--duration") {
            if (!take_value()) return std::nullopt;
            if (!parse_number(value, options.duration_s) || options.duration_s < 0.05 ||
                options.duration_s > 3600) {
                error = "--duration: seconds between 0.05 and 3600";
                return std::nullopt;
            }
        } else if (argument == "--warmup") {
            if (!take_value()) return std::nullopt;
            if (!parse_number(value, options.warmup_s) || options.warmup_s < 0 ||
                options.warmup_s > 60) {
                error = "--warmup: seconds between 0 and 60";
                return std::nullopt;
            }
        } else if (argument == "--sessions") {
            if (!take_value()) return std::nullopt;
            if (!parse_list(value, 1, kMaxSessions, options.session_counts)) {
                error = "--sessions: comma-separated counts between 1 and " +
                        std::to_string(kMaxSessions);
                return std::nullopt;
            }
        } else if (argument == "--sizes") {
            if (!take_value()) return std::nullopt;
            if (!parse_list(value, kMinFrameBytes, kMaxFrameBytes, options.frame_sizes)) {
                error = "--sizes: comma-separated frame sizes between " +
                        std::to_string(kMinFrameBytes) + " and " + std::to_string(kMaxFrameBytes);
                return std::nullopt;
            }
        } else if (argument == "--rounds") {
            if (!take_value()) return std::nullopt;
            if (!parse_number(value, options.rounds) || options.rounds < 1 ||
                options.rounds > 100) {
                error = "--rounds: between 1 and 100";
                return std::nullopt;
            }
        } else if (argument == "--inflight") {
            if (!take_value()) return std::nullopt;
            if (!parse_number(value, options.inflight) || options.inflight < 2 * kBurst ||
                options.inflight > 65536) {
                error = "--inflight: mbufs between 64 and 65536";
                return std::nullopt;
            }
        } else if (argument == "--junk-sessions") {
            if (!take_value()) return std::nullopt;
            if (!parse_number(value, options.junk_sessions) || options.junk_sessions > 50000) {
                error = "--junk-sessions: between 0 and 50000";
                return std::nullopt;
            }
        } else if (argument == "--junk-data-bytes") {
            if (!take_value()) return std::nullopt;
            if (!parse_number(value, options.junk_data_bytes) || options.junk_data_bytes < 74 ||
                options.junk_data_bytes > kMaxFrameBytes ||
                options.junk_data_bytes == kJunkFrameBytes) {
                error = "--junk-data-bytes: 74.." + std::to_string(kMaxFrameBytes) + ", not " +
                        std::to_string(kJunkFrameBytes);
                return std::nullopt;
            }
        } else if (argument == "--junk-only") {
            options.junk_only = true;
        } else if (argument == "--eal") {
            if (!take_value()) return std::nullopt;
            options.eal_args = std::string(value);
        } else {
            error = "unknown argument '" + std::string(argv[i]) + "'";
            return std::nullopt;
        }
    }
    return options;
}

std::vector<std::string> eal_arguments(const DataplaneOptions& options) {
    std::vector<std::string> arguments{"relay-bench"};
    if (options.eal_args) {
        std::istringstream words(*options.eal_args);
        for (std::string word; words >> word;) arguments.push_back(word);
        return arguments;
    }
    for (const char* word : {"--no-huge", "-m", "1024", "--no-pci", "--file-prefix"})
        arguments.emplace_back(word);
    arguments.push_back("relay-bench-" + std::to_string(getpid()));
    for (const char* word : {"-l", "0,1", "--main-lcore", "0"}) arguments.emplace_back(word);
    return arguments;
}

}  // namespace

void print_dataplane_usage(std::FILE* out) {
    std::fprintf(
        out,
        "usage: relay-bench dataplane [options]\n"
        "  Runs the relay's forwarding path (PacketProcessor::process_burst) on one worker\n"
        "  lcore over a net_ring ethdev fed by a generator on the main lcore, and a bare\n"
        "  MAC-swap loop on the same harness; one JSON line per scenario, then a summary.\n\n"
        "  --sessions LIST  session counts, comma-separated (default 1,1000,100000)\n"
        "  --sizes LIST     frame sizes in bytes without FCS, %u..%u (default 64,1420)\n"
        "  --duration S     timed seconds per scenario and mode (default 2)\n"
        "  --rounds N       split them into N alternating baseline/relay rounds (default 4)\n"
        "  --warmup S       untimed seconds before each round of each mode (default 0.2)\n"
        "  --inflight N     mbufs circulating between generator and worker (default 4096)\n"
        "  --junk-sessions N  wireguard sessions of the junk scenario: legitimate data\n"
        "                   while half the frames are junk handshakes (default 1000, 0 = skip)\n"
        "  --junk-data-bytes B  data frame size in the junk scenario (default 128)\n"
        "  --junk-only      run only the junk scenario\n"
        "  --eal \"ARGS\"     EAL arguments, replacing the default\n"
        "                   \"--no-huge -m 1024 --no-pci --file-prefix relay-bench-<pid>\n"
        "                    -l 0,1 --main-lcore 0\" (the generator runs on the main lcore,\n"
        "                   the worker on the next one)\n"
        "  --check          exit 1 if a target is missed or forwarding was wrong\n"
        "  --help           this text\n",
        kMinFrameBytes, kMaxFrameBytes);
}

int run_dataplane_bench(int argc, char** argv) {
    std::string error;
    const auto options = parse_options(argc, argv, error);
    if (!options) {
        std::fprintf(stderr, "relay-bench dataplane: %s (try relay-bench dataplane --help)\n",
                     error.c_str());
        return 2;
    }
    if (options->help) {
        print_dataplane_usage(stdout);
        return 0;
    }

    // EAL logs go to stdout by default; stdout is for JSON only.
    rte_openlog_stream(stderr);
    // A reader that goes away (`| head -1`) must not kill the process before
    // it has stopped the worker and removed its EAL runtime directory.
    std::signal(SIGPIPE, SIG_IGN);
    std::vector<std::string> arguments = eal_arguments(*options);
    std::vector<char*> eal_argv;
    for (std::string& argument : arguments) eal_argv.push_back(argument.data());
    eal_argv.push_back(nullptr);
    if (rte_eal_init(static_cast<int>(arguments.size()), eal_argv.data()) < 0) {
        std::fprintf(stderr, "relay-bench dataplane: rte_eal_init failed: %s\n",
                     rte_strerror(rte_errno));
        return 1;
    }
    // Our own --file-prefix directory is removed at exit; a user's is left alone.
    const std::string runtime_dir = options->eal_args ? "" : rte_eal_get_runtime_dir();

    int status = 0;
    {
        Harness harness;
        std::vector<ScenarioResult> results;
        if (!create_harness(harness, options->inflight, error)) {
            std::fprintf(stderr, "relay-bench dataplane: %s\n", error.c_str());
            status = 1;
        }
        const size_t forwarding_scenarios = options->junk_only ? 0 : options->session_counts.size();
        for (size_t s = 0; status == 0 && s < forwarding_scenarios; ++s) {
            auto node = build_relay_node(options->session_counts[s], error);
            if (!node) {
                std::fprintf(stderr, "relay-bench dataplane: %s\n", error.c_str());
                status = 1;
                break;
            }
            for (const uint32_t frame_bytes : options->frame_sizes) {
                auto result = run_scenario(harness, *node, frame_bytes, *options, error);
                if (!result) {
                    std::fprintf(stderr, "relay-bench dataplane: %s\n", error.c_str());
                    status = 1;
                    break;
                }
                results.push_back(*result);
            }
        }
        std::optional<JunkResult> junk;
        if (status == 0 && options->junk_sessions > 0) {
            auto node = build_wireguard_node(options->junk_sessions, error);
            if (node) junk = run_junk_scenario(harness, *node, *options, error);
            if (!node || !junk) {
                std::fprintf(stderr, "relay-bench dataplane: %s\n", error.c_str());
                status = 1;
            }
        }
        if (status == 0) {
            const bool passed = print_summary(results, junk);
            if (options->check && !passed) status = 1;
        }
    }
    rte_eal_cleanup();
    if (!runtime_dir.empty()) {
        std::error_code ignored;
        std::filesystem::remove_all(runtime_dir, ignored);
    }
    return status;
}

}  // namespace relay::bench
