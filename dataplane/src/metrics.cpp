#include "metrics.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mempool.h>

#include <stdexcept>

namespace relay::dp {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

namespace {

MetricFamily family(std::string name, std::string help, MetricType type) {
    MetricFamily f;
    f.name = std::move(name);
    f.help = std::move(help);
    f.type = type;
    return f;
}

void add_sample(MetricFamily& f, double value, std::vector<ClientMetric::Label> labels = {}) {
    ClientMetric m;
    m.label = std::move(labels);
    if (f.type == MetricType::Counter)
        m.counter.value = value;
    else
        m.gauge.value = value;
    f.metric.push_back(std::move(m));
}

}  // namespace

DataplaneCollector::DataplaneCollector(const DataplaneState& state, std::string node_name)
    : state_(state), node_name_(std::move(node_name)) {}

std::vector<MetricFamily> DataplaneCollector::Collect() const {
    std::vector<MetricFamily> out;
    const unsigned workers = state_.workers();
    auto sum = [&](auto pick) {
        uint64_t total = 0;
        for (unsigned w = 0; w < workers; ++w) total += pick(state_.stats[w]).get();
        return static_cast<double>(total);
    };

    auto rx_packets = family("relay_dataplane_rx_packets_total", "Packets received, per port.",
                             MetricType::Counter);
    auto rx_bytes =
        family("relay_dataplane_rx_bytes_total", "Bytes received, per port.", MetricType::Counter);
    auto tx_packets = family("relay_dataplane_tx_packets_total", "Packets transmitted, per port.",
                             MetricType::Counter);
    auto tx_bytes = family("relay_dataplane_tx_bytes_total", "Bytes transmitted, per port.",
                           MetricType::Counter);
    auto missed = family("relay_dataplane_rx_missed_total",
                         "Packets the device dropped because no RX descriptor was free.",
                         MetricType::Counter);
    for (size_t p = 0; p < state_.ports.size(); ++p) {
        std::vector<ClientMetric::Label> port{{"port", state_.ports[p].name}};
        add_sample(rx_packets, sum([&](const WorkerStats& s) -> const Counter& {
                       return s.ports[p].rx_packets;
                   }),
                   port);
        add_sample(rx_bytes,
                   sum([&](const WorkerStats& s) -> const Counter& { return s.ports[p].rx_bytes; }),
                   port);
        add_sample(tx_packets, sum([&](const WorkerStats& s) -> const Counter& {
                       return s.ports[p].tx_packets;
                   }),
                   port);
        add_sample(tx_bytes,
                   sum([&](const WorkerStats& s) -> const Counter& { return s.ports[p].tx_bytes; }),
                   port);
        rte_eth_stats es{};
        if (rte_eth_stats_get(state_.ports[p].port_id, &es) == 0)
            add_sample(missed, static_cast<double>(es.imissed), port);
    }
    out.push_back(std::move(rx_packets));
    out.push_back(std::move(rx_bytes));
    out.push_back(std::move(tx_packets));
    out.push_back(std::move(tx_bytes));
    out.push_back(std::move(missed));

    auto drops =
        family("relay_dataplane_drops_total", "Packets dropped, by reason.", MetricType::Counter);
    for (unsigned r = 1; r < kDropReasonCount; ++r)
        add_sample(drops, sum([&](const WorkerStats& s) -> const Counter& {
                              return s.drops[r];
                          }) + static_cast<double>(state_.service_drops[r].get()),
                   {{"reason", drop_reason_name(static_cast<DropReason>(r))}});
    out.push_back(std::move(drops));

    struct Simple {
        const char* name;
        const char* help;
        const Counter WorkerStats::*member;
    };
    static const Simple simple[] = {
        {"relay_dataplane_forwarded_packets_total",
         "Packets relayed between the two sides of a session.", &WorkerStats::forwarded_packets},
        {"relay_dataplane_forwarded_bytes_total",
         "IP bytes relayed between the two sides of a session.", &WorkerStats::forwarded_bytes},
        {"relay_dataplane_neighbour_held_total",
         "Relayed packets whose next hop's MAC was not resolved yet, held until ARP answers "
         "(counted in forwarded_packets_total too).",
         &WorkerStats::neighbour_held},
        {"relay_dataplane_latches_total", "Session sides confirmed (first latch or roam).",
         &WorkerStats::latches},
        {"relay_dataplane_latch_refused_total",
         "Handshakes or binds refused (MAC, source prefix, stale).", &WorkerStats::latch_refused},
        {"relay_dataplane_mac_checks_total",
         "Handshake and bind MACs computed (each costs about a microsecond: the cost an "
         "unauthenticated sender can cause, bounded per source and session).",
         &WorkerStats::mac_checks},
        {"relay_dataplane_arp_replies_total", "ARP requests for our addresses answered.",
         &WorkerStats::arp_replies},
        {"relay_dataplane_icmp_echo_replies_total", "ICMP echo requests answered.",
         &WorkerStats::icmp_replies},
        {"relay_dataplane_bind_acks_total", "Bind packets answered.", &WorkerStats::bind_acks},
        {"relay_dataplane_handoffs_total", "Packets passed to the worker owning their session.",
         &WorkerStats::handoffs},
        {"relay_dataplane_sessions_expired_total", "Sessions removed after their idle timeout.",
         &WorkerStats::sessions_expired},
    };
    for (const Simple& s : simple) {
        auto f = family(s.name, s.help, MetricType::Counter);
        add_sample(f, sum([&](const WorkerStats& w) -> const Counter& { return w.*(s.member); }));
        out.push_back(std::move(f));
    }
    auto limited =
        family("relay_dataplane_rate_limited_packets_total",
               "Packets over a session's packet or byte rate, or the ICMP/handshake budget.",
               MetricType::Counter);
    add_sample(limited, sum([&](const WorkerStats& s) -> const Counter& {
                   return s.drops[static_cast<unsigned>(DropReason::rate_limited)];
               }));
    out.push_back(std::move(limited));

    auto arp_ignored =
        family("relay_dataplane_arp_ignored_total",
               "ARP answers not learned: unsolicited, late, or from off-link addresses.",
               MetricType::Counter);
    add_sample(arp_ignored, static_cast<double>(state_.arp_ignored.get()));
    out.push_back(std::move(arp_ignored));

    auto held_sent =
        family("relay_dataplane_neighbour_held_sent_total",
               "Held packets sent once their next hop answered ARP.", MetricType::Counter);
    add_sample(held_sent, static_cast<double>(state_.held_sent.get()));
    out.push_back(std::move(held_sent));

    auto sessions =
        family("relay_dataplane_sessions",
               "Relay sessions installed (or being installed or removed).", MetricType::Gauge);
    add_sample(sessions, state_.ipc.sessions.load(std::memory_order_relaxed));
    out.push_back(std::move(sessions));
    auto in_flight =
        family("relay_dataplane_session_commands_in_flight",
               "Session commands posted to workers and not yet done by them.", MetricType::Gauge);
    add_sample(in_flight, state_.ipc.commands_in_flight.load(std::memory_order_relaxed));
    out.push_back(std::move(in_flight));
    auto ipc_busy = family("relay_dataplane_ipc_busy_total",
                           "Control requests answered busy: a worker had not done the change "
                           "within the wait (it still happens).",
                           MetricType::Counter);
    add_sample(ipc_busy, static_cast<double>(state_.ipc.busy_replies.get()));
    out.push_back(std::move(ipc_busy));
    auto capacity =
        family("relay_dataplane_sessions_capacity", "Session table capacity.", MetricType::Gauge);
    add_sample(capacity, state_.sessions->capacity());
    out.push_back(std::move(capacity));

    auto pool_used =
        family("relay_dataplane_mempool_in_use", "Packet buffers in use.", MetricType::Gauge);
    auto pool_size =
        family("relay_dataplane_mempool_size", "Packet buffers in the pool.", MetricType::Gauge);
    add_sample(pool_used, rte_mempool_in_use_count(state_.pool));
    add_sample(pool_size, state_.pool->size);
    out.push_back(std::move(pool_used));
    out.push_back(std::move(pool_size));

    auto busy =
        family("relay_dataplane_lcore_busy_ratio",
               "Share of a worker's loop time spent on iterations that found work, since start.",
               MetricType::Gauge);
    auto busy_cycles =
        family("relay_dataplane_lcore_busy_cycles_total",
               "TSC cycles a worker spent on iterations that found work.", MetricType::Counter);
    auto total_cycles = family("relay_dataplane_lcore_cycles_total",
                               "TSC cycles of a worker's loop.", MetricType::Counter);
    auto poll_age = family("relay_dataplane_worker_last_poll_age_seconds",
                           "Seconds since the worker last came round its poll loop (at most "
                           "idle_sleep_max_us plus one iteration while it lives).",
                           MetricType::Gauge);
    const uint64_t now = rte_rdtsc();
    for (unsigned w = 0; w < workers; ++w) {
        std::vector<ClientMetric::Label> lcore{{"lcore", std::to_string(state_.worker_lcores[w])}};
        const double b = static_cast<double>(state_.stats[w].busy_cycles.get());
        const double t = static_cast<double>(state_.stats[w].total_cycles.get());
        add_sample(busy, t > 0 ? b / t : 0.0, lcore);
        add_sample(busy_cycles, b, lcore);
        add_sample(total_cycles, t, lcore);
        const uint64_t beat = state_.stats[w].heartbeat_tsc.get();
        // TSCs of different cores may differ by a little: never a negative age.
        const double age = now > beat ? static_cast<double>(now - beat) / state_.tsc_hz : 0.0;
        add_sample(poll_age, age, lcore);
    }
    out.push_back(std::move(busy));
    out.push_back(std::move(busy_cycles));
    out.push_back(std::move(total_cycles));
    out.push_back(std::move(poll_age));

    auto info = family("relay_dataplane_info", "Always 1; labels describe this data plane.",
                       MetricType::Gauge);
    add_sample(info, 1, {{"node", node_name_}, {"workers", std::to_string(workers)}});
    out.push_back(std::move(info));
    return out;
}

MetricsServer::MetricsServer(const SocketAddress& listen,
                             std::shared_ptr<DataplaneCollector> collector)
    : collector_(std::move(collector)) {
    const std::string bind = format_socket_address(listen);
    try {
        exposer_ = std::make_unique<prometheus::Exposer>(bind, 1);
    } catch (const std::exception& e) {
        throw std::runtime_error("metrics: cannot listen on " + bind + ": " + e.what());
    }
    exposer_->RegisterCollectable(collector_);
    url_ = "http://" + bind + "/metrics";
}

}  // namespace relay::dp
