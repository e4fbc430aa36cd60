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
#include "relay/net.hpp"
#include "relay/session.hpp"
#include "relay/wire/bind.hpp"
#include "relay/wire/headers.hpp"
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

struct Traffic {
    uint32_t frame_bytes = 0;
    uint32_t sessions = 0;
    std::array<uint8_t, kSessionTailOffset> shared_header{};  // bytes [0, 24) of every frame
    std::vector<uint8_t> payload;                             // identical in every frame
    // One entry per session in a shuffled order, replayed cyclically: every
    // session gets the same share of packets, and consecutive packets hit
    // unrelated sessions (so 100 000 sessions really miss the caches).
    std::vector<SessionHeaderTail> sequence;
};

Traffic make_traffic(uint32_t sessions, uint32_t frame_bytes) {
    Traffic traffic;
    traffic.frame_bytes = frame_bytes;
    traffic.sessions = sessions;
    // Any payload but a 40-byte one starting with "RLYB" is data under the
    // bind policy; this one starts with 0xa5.
    traffic.payload.resize(frame_bytes - kHeaderBytes);
    for (size_t i = 0; i < traffic.payload.size(); ++i)
        traffic.payload[i] = static_cast<uint8_t>(0xa5 ^ i);
    const uint32_t payload_sum =
        dp::checksum_partial(traffic.payload.data(), traffic.payload.size());

    std::vector<uint32_t> order(sessions);
    std::iota(order.begin(), order.end(), 0u);
    std::mt19937_64 shuffle_rng(0x5eed'0000u + sessions);  // fixed: every run sends the same
    std::shuffle(order.begin(), order.end(), shuffle_rng);

    std::array<uint8_t, kHeaderBytes> header{};
    traffic.sequence.resize(sessions);
    for (uint32_t i = 0; i < sessions; ++i) {
        const SessionEndpoints endpoints = endpoints_of(order[i]);
        write_headers(header.data(), frame_bytes, kRelayMac, kGatewayMac, endpoints.side_a,
                      endpoints.relay, payload_sum);
        if (i == 0) std::memcpy(traffic.shared_header.data(), header.data(), kSessionTailOffset);
        std::memcpy(traffic.sequence[i].bytes.data(), header.data() + kSessionTailOffset,
                    kSessionTailBytes);
    }
    return traffic;
}

// Re-writes the header of a frame that came back from the worker.
inline void write_frame_header(uint8_t* frame, const Traffic& traffic,
                               const SessionHeaderTail& tail) {
    std::memcpy(frame, traffic.shared_header.data(), kSessionTailOffset);
    std::memcpy(frame + kSessionTailOffset, tail.bytes.data(), kSessionTailBytes);
}

// Turns a freshly allocated mbuf into a whole frame of the scenario.
bool write_whole_frame(rte_mbuf* mbuf, const Traffic& traffic, const SessionHeaderTail& tail) {
    auto* frame = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(mbuf, traffic.frame_bytes));
    if (frame == nullptr) return false;
    std::memcpy(frame + kHeaderBytes, traffic.payload.data(), traffic.payload.size());
    write_frame_header(frame, traffic, tail);
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
        busy_cycles_.assign(slices, 0);
        worker_interrupted_.assign(slices, 0);
        generator_interrupted_.assign(slices, 0);
    }

    uint64_t measure_at() const { return measure_at_; }
    uint64_t stop_at() const { return stop_at_; }

    // A burst of the worker that ended at `at`.
    void count_burst(uint64_t at, uint32_t packets, uint64_t busy_cycles) {
        const size_t slice = slice_of(at);
        packets_[slice] += packets;
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
    uint64_t drops = 0;          // warm-up included: there should be none
    uint64_t tx_unsent = 0;      // warm-up included
};

struct WorkerContext {
    uint16_t eth_port = 0;
    ForwardingMode mode = ForwardingMode::mac_swap;
    dp::PacketProcessor* processor = nullptr;
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
                        uint64_t& /*drops*/) {
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
    explicit RelayBurst(dp::PacketProcessor& processor) : processor_(processor) {}

    uint16_t operator()(rte_mbuf** received, uint16_t count, uint64_t now, rte_mbuf** to_send,
                        uint64_t& drops) {
        for (uint16_t i = 0; i < count; ++i) {
            frames_[i] = rte_pktmbuf_mtod(received[i], uint8_t*);
            lengths_[i] = rte_pktmbuf_data_len(received[i]);
        }
        processor_.process_burst(frames_.data(), lengths_.data(), count, kPortIndex, now,
                                 verdicts_.data());
        uint16_t send_count = 0;
        for (uint16_t i = 0; i < count; ++i) {
            if (verdicts_[i].action == dp::Action::transmit) {
                to_send[send_count++] = received[i];
            } else {
                rte_pktmbuf_free(received[i]);
                ++drops;
            }
        }
        return send_count;
    }

  private:
    dp::PacketProcessor& processor_;
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
        const uint16_t send_count = forward_burst(received.data(), received_count, burst_start,
                                                  to_send.data(), result.drops);
        const uint16_t sent = rte_eth_tx_burst(context.eth_port, 0, to_send.data(), send_count);
        if (sent < send_count) {
            rte_pktmbuf_free_bulk(to_send.data() + sent, send_count - sent);
            result.tx_unsent += send_count - sent;
        }
        const uint64_t burst_end = rte_rdtsc();
        accounted_until = burst_end;
        if (!measuring) continue;
        result.packets += received_count;
        if (account(burst_start, burst_end, result.busy_cycles)) {
            result.timed_packets += received_count;
            ++result.bursts;
            context.timeline->count_burst(burst_end, received_count, burst_end - burst_start);
        } else {
            context.timeline->count_burst(burst_end, received_count, 0);  // slice is not clean
        }
    }
    if (measuring) result.window_cycles = rte_rdtsc() - window_start;
    return result;
}

int worker_main(void* argument) {
    auto& context = *static_cast<WorkerContext*>(argument);
    if (context.mode == ForwardingMode::relay)
        context.result = worker_loop(context, RelayBurst(*context.processor));
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
    uint64_t refilled = 0;  // mbufs re-allocated to replace ones the worker freed
    std::string first_failure;
};

// Checks a frame the worker sent back; returns what is wrong with it, or
// nullptr.  Relay: rewritten towards side B of its session, checksums valid.
// MAC swap: MACs swapped, the rest as the generator wrote it.
const char* check_returned_frame(const uint8_t* frame, uint32_t length, const Traffic& traffic,
                                 ForwardingMode mode, bool check_udp_checksum) {
    const uint8_t* ip = frame + kIpOffset;
    const uint8_t* udp = frame + kUdpOffset;
    if (length != traffic.frame_bytes) return "length changed";
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
    Generator(Harness& harness, const Traffic& traffic) : harness_(harness), traffic_(traffic) {}

    // Fills the pipeline: every mbuf of the pool carries a frame to the worker.
    bool prime(std::string& error) {
        std::vector<rte_mbuf*> mbufs(harness_.inflight);
        if (rte_pktmbuf_alloc_bulk(harness_.pool, mbufs.data(), harness_.inflight) != 0) {
            error = "could not allocate the mbufs in flight";
            return false;
        }
        for (rte_mbuf* mbuf : mbufs) {
            if (!write_whole_frame(mbuf, traffic_, next_tail())) {
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
                if (--until_verify_ == 0) {
                    until_verify_ = kVerifyEvery;
                    verify(frame, rte_pktmbuf_data_len(returned[i]), worker.mode);
                }
                write_frame_header(frame, traffic_, next_tail());
            }
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
    const SessionHeaderTail& next_tail() {
        const SessionHeaderTail& tail = traffic_.sequence[cursor_];
        cursor_ = cursor_ + 1 == traffic_.sequence.size() ? 0 : cursor_ + 1;
        return tail;
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
        for (unsigned i = 0; i < count; ++i) write_whole_frame(fresh[i], traffic_, next_tail());
        const unsigned queued = rte_ring_sp_enqueue_burst(
            harness_.to_worker, reinterpret_cast<void**>(fresh.data()), count, nullptr);
        if (queued < count) rte_pktmbuf_free_bulk(fresh.data() + queued, count - queued);
        result_.refilled += queued;
    }

    Harness& harness_;
    const Traffic& traffic_;
    size_t cursor_ = 0;
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
        worker.tx_unsent += w.tx_unsent;
        generator.busy_cycles += g.busy_cycles;
        generator.timed_packets += g.timed_packets;
        generator.verified_samples += g.verified_samples;
        if (generator.verify_failures == 0) generator.first_failure = g.first_failure;
        generator.verify_failures += g.verify_failures;
        generator.refilled += g.refilled;
        clean.packets += c.packets;
        clean.busy_cycles += c.busy_cycles;
        clean.cycles += c.cycles;
        clean.window_cycles += c.window_cycles;
    }
};

struct RunFigures {
    double duration_s = 0;         // the timed windows, wall clock
    double interrupted_s = 0;      // of them, the worker was descheduled
    double mpps = 0;               // over the slices where neither thread was descheduled
    double clean_fraction = 0;     // share of the windows those slices cover
    double wall_mpps = 0;          // all packets / duration_s
    double cycles_per_packet = 0;  // worker: busy cycles / timed packets
    double busy_ratio = 0;         // worker, clean slices: busy share; < 1: it waited for packets
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

struct Target {
    std::string name;
    uint32_t sessions;
    bool at_most;  // true: measured <= limit; false: measured >= limit
    double limit;
    std::optional<double> measured;  // worst over the frame sizes run; none if not run
};

// Prints the summary line; returns whether every evaluated target was met
// and every scenario forwarded correctly.
bool print_summary(const std::vector<ScenarioResult>& results) {
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
    targets_json += ']';
    const bool all_correct = std::all_of(results.begin(), results.end(),
                                         [](const ScenarioResult& r) { return r.correct; });
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
        for (size_t s = 0; status == 0 && s < options->session_counts.size(); ++s) {
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
        if (status == 0) {
            const bool passed = print_summary(results);
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
