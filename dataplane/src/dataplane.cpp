#include "dataplane.hpp"

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <thread>

#include "dataplane_state.hpp"
#include "metrics.hpp"
#include "neighbour_service.hpp"
#include "ports.hpp"
#include "relay/ipc/unix_socket.hpp"
#include "session_command.hpp"
#include "session_service.hpp"
#include "worker.hpp"

namespace relay::dp {

namespace {

constexpr unsigned kCommandRingSize = 1024;
constexpr unsigned kEventRingSize = 4096;
constexpr unsigned kHandoffRingSize = 1024;
constexpr unsigned kServiceTxRingSize = 256;
constexpr unsigned kHeldRingSize = 256;  // per worker: packets waiting for ARP, to the service
constexpr unsigned kMaxExpiredRingSize = 65536;
constexpr unsigned kMbufCache = 256;
constexpr int kIpcPollMs = 5;  // the IPC thread settles late completions at least this often
constexpr auto kServicePeriod = std::chrono::milliseconds(1);  // ARP and held packets

static_assert(sizeof(SlowPathEvent) % 4 == 0, "rte_ring element sizes are multiples of 4");

// EAL can be initialised once per process; this owns that once.
class Eal {
  public:
    explicit Eal(const DataplaneConfig& config) {
        std::vector<std::string> args = eal_arguments(config);
        args.insert(args.begin(), "relay-dataplane");
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        if (rte_eal_init(static_cast<int>(args.size()), argv.data()) < 0)
            throw std::runtime_error(
                std::string("DPDK EAL initialisation failed: ") + rte_strerror(rte_errno) +
                " (check dataplane.eal: lcores, memory, hugepages, file_prefix)");
    }
    ~Eal() { rte_eal_cleanup(); }
};

rte_ring* make_ring(const std::string& name, unsigned size, unsigned esize, unsigned flags) {
    rte_ring* r =
        rte_ring_create_elem(name.c_str(), esize, size, static_cast<int>(rte_socket_id()), flags);
    if (!r) throw std::runtime_error("cannot create ring " + name + ": " + rte_strerror(rte_errno));
    return r;
}

unsigned ring_size_for(unsigned n) {
    unsigned s = 64;
    while (s < n && s < kMaxExpiredRingSize) s <<= 1;
    return s;
}

int worker_entry(void* arg) {
    return static_cast<Worker*>(arg)->run();
}

}  // namespace

struct Dataplane::Impl {
    Config config;
    Eal eal;
    DataplaneState state;
    std::vector<std::unique_ptr<Worker>> workers;
    std::unique_ptr<TimedWait> worker_wait;
    std::unique_ptr<SessionService> sessions;
    std::unique_ptr<NeighbourService> neighbours;
    std::shared_ptr<DataplaneCollector> collector;
    std::unique_ptr<MetricsServer> metrics;
    std::unique_ptr<ipc::SeqpacketServer> ipc_server;
    bool ports_started = false;
    bool workers_launched = false;
    // The IPC thread: control's socket and the session registry, apart from
    // the service thread, so that a stalled worker or a slow client cannot
    // delay ARP and held packets, nor ARP work delay control.
    std::thread ipc_thread;
    std::atomic<bool> ipc_stop{false};
    std::atomic<bool> ipc_failed{false};

    explicit Impl(const Config& c) : config(c), eal(c.dataplane) {}
    ~Impl() {
        stop_ipc();
        stop_workers();
        if (ports_started) stop_ports(state);
        // Held packets go back to the pool before it is freed.
        neighbours.reset();
        for (auto& r : state.rings) {
            // Commands still queued own a reference each.
            void* item;
            while (r.commands && rte_ring_dequeue(r.commands, &item) == 0)
                delete static_cast<SessionCommandRef*>(item);
            rte_mbuf* m;
            while (r.handoff && rte_ring_dequeue(r.handoff, reinterpret_cast<void**>(&m)) == 0)
                rte_pktmbuf_free(m);
            while (r.service_tx &&
                   rte_ring_dequeue(r.service_tx, reinterpret_cast<void**>(&m)) == 0)
                rte_pktmbuf_free(m);
            while (r.held && rte_ring_dequeue(r.held, reinterpret_cast<void**>(&m)) == 0)
                rte_pktmbuf_free(m);
            rte_ring_free(r.commands);
            rte_ring_free(r.expired);
            rte_ring_free(r.events);
            rte_ring_free(r.handoff);
            rte_ring_free(r.service_tx);
            rte_ring_free(r.held);
        }
        if (state.pool) rte_mempool_free(state.pool);
    }
    void serve_ipc() {
        auto dispatch = [&](const ipc::Request& r) { return sessions->handle(r); };
        auto handler = [&](std::span<const uint8_t> in) {
            return ipc::handle_datagram(in, dispatch);
        };
        try {
            while (!ipc_stop.load()) {
                ipc_server->poll_once(kIpcPollMs, handler);
                sessions->tend();
            }
        } catch (const std::exception& e) {
            std::fprintf(stderr, "relay-dataplane: control socket failed: %s\n", e.what());
            ipc_failed.store(true);
        }
    }
    void stop_ipc() {
        if (!ipc_thread.joinable()) return;
        ipc_stop.store(true);
        ipc_thread.join();
    }
    void stop_workers() {
        if (!workers_launched) return;
        state.stop.store(true);
        rte_eal_mp_wait_lcore();
        workers_launched = false;
    }
};

Dataplane::Dataplane(const Config& config) : impl_(std::make_unique<Impl>(config)) {
    const DataplaneConfig& dp = config.dataplane;
    DataplaneState& st = impl_->state;
    st.tsc_hz = rte_get_tsc_hz();
    st.burst_size = dp.burst_size;
    st.idle_sleep_max_us = dp.idle_sleep_max_us;
    st.arp_ttl_cycles = dp.arp_cache_ttl_s * st.tsc_hz;
    st.worker_lcores = dp.workers;
    for (unsigned lcore : dp.workers)
        if (!rte_lcore_is_enabled(lcore) || lcore == rte_get_main_lcore())
            throw std::runtime_error("dataplane.workers: lcore " + std::to_string(lcore) +
                                     " is not an enabled worker lcore of the EAL");

    // Enough buffers for every descriptor, every burst in flight and the caches.
    const unsigned workers = st.workers();
    unsigned needed = 0;
    for (const auto& p : dp.ports)
        needed += (workers + 1) * p.rx_descriptors + workers * p.tx_descriptors;
    needed += (workers + 1) * (kMbufCache + 2 * 64) + workers * kHandoffRingSize;
    needed += workers * kHeldRingSize + NeighbourService::kMaxHeld;
    if (dp.mbufs < needed)
        throw std::runtime_error("dataplane.mbufs: " + std::to_string(dp.mbufs) +
                                 " is too few for the configured ports and queues; at least " +
                                 std::to_string(needed) + " are needed");
    st.pool = rte_pktmbuf_pool_create("relay_pool", dp.mbufs, kMbufCache, 0,
                                      RTE_MBUF_DEFAULT_BUF_SIZE, static_cast<int>(rte_socket_id()));
    if (!st.pool)
        throw std::runtime_error("cannot create the packet pool (" + std::to_string(dp.mbufs) +
                                 " mbufs): " + rte_strerror(rte_errno) +
                                 "; raise dataplane.eal.memory_mb or lower dataplane.mbufs");

    const std::vector<Ipv4> addresses = relay_addresses_of(dp);
    st.sessions = std::make_unique<SessionTable>(dp.max_sessions, addresses);
    st.neighbours = std::make_unique<NeighbourTable>(4096);
    st.stats = std::make_unique<WorkerStats[]>(workers);
    // Alive from the start: a worker that never comes round its loop ages from here.
    for (unsigned w = 0; w < workers; ++w) st.stats[w].heartbeat_tsc.set(rte_rdtsc());
    for (unsigned w = 0; w < workers; ++w) {
        const std::string n = std::to_string(w);
        WorkerRings r;
        r.commands =
            make_ring("cmd" + n, kCommandRingSize, sizeof(void*), RING_F_SP_ENQ | RING_F_SC_DEQ);
        r.expired = make_ring("exp" + n, ring_size_for(dp.max_sessions), sizeof(ExpiredSession),
                              RING_F_SP_ENQ | RING_F_SC_DEQ);
        r.events = make_ring("evt" + n, kEventRingSize, sizeof(SlowPathEvent),
                             RING_F_SP_ENQ | RING_F_SC_DEQ);
        r.handoff = make_ring("hand" + n, kHandoffRingSize, sizeof(void*), RING_F_SC_DEQ);
        r.held = make_ring("held" + n, kHeldRingSize, sizeof(void*), RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (w == 0)
            r.service_tx = make_ring("svctx", kServiceTxRingSize, sizeof(void*),
                                     RING_F_SP_ENQ | RING_F_SC_DEQ);
        st.rings.push_back(r);
    }

    setup_ports(dp, st, addresses);
    impl_->ports_started = true;

    std::random_device rd;
    const uint64_t instance_id = (uint64_t{rd()} << 32) | rd();
    impl_->worker_wait = std::make_unique<TimedWait>(std::chrono::milliseconds(ipc::kWorkerWaitMs));
    std::vector<CommandRings::Worker> command_rings;
    for (const WorkerRings& r : st.rings) command_rings.push_back({r.commands, r.expired});
    SessionService::Setup setup;
    setup.table = st.sessions.get();
    setup.shard_map = st.shard_map.data();
    setup.ports = static_cast<unsigned>(st.ports.size());
    setup.instance_id = instance_id;
    setup.wait = impl_->worker_wait.get();
    setup.stats = &st.ipc;
    impl_->sessions = std::make_unique<SessionService>(setup, CommandRings(command_rings));
    impl_->neighbours = std::make_unique<NeighbourService>(st);
    impl_->collector = std::make_shared<DataplaneCollector>(st, config.node.name);
    impl_->metrics = std::make_unique<MetricsServer>(dp.metrics_listen, impl_->collector);
    impl_->ipc_server = std::make_unique<ipc::SeqpacketServer>(dp.ipc_socket, 0660);
}

Dataplane::~Dataplane() = default;

int Dataplane::run(const std::atomic<bool>& stop_requested) {
    Impl& im = *impl_;
    DataplaneState& st = im.state;
    for (unsigned w = 0; w < st.workers(); ++w)
        im.workers.push_back(std::make_unique<Worker>(st, w));
    for (unsigned w = 0; w < st.workers(); ++w) {
        int rc = rte_eal_remote_launch(worker_entry, im.workers[w].get(), st.worker_lcores[w]);
        if (rc != 0) {
            im.stop_workers();
            throw std::runtime_error("cannot launch worker on lcore " +
                                     std::to_string(st.worker_lcores[w]));
        }
        im.workers_launched = true;
    }

    std::printf("relay-dataplane: node %s up: %u worker(s)\n", im.config.node.name.c_str(),
                st.workers());
    for (const auto& p : st.ports) {
        std::printf("  port %s: DPDK port %u, MAC %s, %u RX queue(s)%s, addresses", p.name.c_str(),
                    p.port_id, format_mac(p.context.mac).c_str(), p.rx_queues,
                    p.rss ? " with RSS" : "");
        for (unsigned i = 0; i < p.context.address_count; ++i)
            std::printf(" %s", format_prefix(p.context.addresses[i]).c_str());
        std::printf("\n");
    }
    std::printf("  metrics: %s\n  control socket: %s\n", im.metrics->url().c_str(),
                im.ipc_server->path().c_str());
    std::fflush(stdout);

    im.ipc_thread = std::thread([&im] { im.serve_ipc(); });
    im.neighbours->announce(rte_rdtsc());
    // The service thread: ARP and held packets only.
    while (!stop_requested.load() && !im.ipc_failed.load()) {
        im.neighbours->run_once(rte_rdtsc());
        std::this_thread::sleep_for(kServicePeriod);
    }
    std::printf("relay-dataplane: stopping\n");
    std::fflush(stdout);
    im.stop_ipc();
    im.stop_workers();
    return im.ipc_failed.load() ? 1 : 0;
}

}  // namespace relay::dp
