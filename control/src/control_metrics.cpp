#include "control_metrics.hpp"

namespace relay::control {

namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

prometheus::Family<prometheus::Counter>& counters(prometheus::Registry& r, const std::string& name,
                                                  const std::string& help) {
    return BuildCounter().Name(name).Help(help).Register(r);
}

prometheus::Counter& counter(prometheus::Registry& r, const std::string& name,
                             const std::string& help) {
    return counters(r, name, help).Add({});
}

prometheus::Gauge& gauge(prometheus::Registry& r, const std::string& name,
                         const std::string& help) {
    return BuildGauge().Name(name).Help(help).Register(r).Add({});
}

// 100 µs .. ~1.6 s: rendezvous decisions are microseconds, slow ones matter.
prometheus::Histogram::BucketBoundaries server_time_buckets() {
    return {0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0};
}

// Time to connect as a peer sees it: direct ~ 2 s, relayed ~ 3 s are the targets.
prometheus::Histogram::BucketBoundaries connect_buckets() {
    return {0.1, 0.25, 0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 20};
}

}  // namespace

ControlMetrics::ControlMetrics(std::shared_ptr<prometheus::Registry> registry)
    : stun_answered(counter(*registry, "relay_control_stun_responses_total",
                            "STUN Binding requests answered.")),
      wg_observations(counter(*registry, "relay_control_wireguard_observations_total",
                              "WireGuard handshake initiations matched to a registered probe key "
                              "(reflexive address of a peer's WireGuard port learned).")),
      key_agreements(counter(*registry, "relay_control_key_agreements_total",
                             "Key agreements (X25519) for senders control did not know: the "
                             "work limits.unauthenticated_per_s bounds.")),
      relay_allocations(counter(*registry, "relay_control_relay_allocations_total",
                                "Relay sessions allocated and programmed into the data plane.")),
      dataplane_reprograms(counter(*registry, "relay_control_dataplane_reprograms_total",
                                   "Times the data plane was found restarted and every relay "
                                   "session was programmed into it again.")),
      relay_sessions(gauge(*registry, "relay_control_relay_sessions",
                           "Relay sessions control holds (active in the data plane).")),
      dataplane_up(gauge(*registry, "relay_control_dataplane_up",
                         "1 when the data plane answered the last health check.")),
      draining(gauge(*registry, "relay_control_draining",
                     "1 while the node is drained: no new relay allocations.")),
      rendezvous_seconds(BuildHistogram()
                             .Name("relay_control_rendezvous_seconds")
                             .Help("Server time from a connect received to both peers' punches "
                                   "or relay offers sent.")
                             .Register(*registry)
                             .Add({}, server_time_buckets())),
      connect_direct_seconds(BuildHistogram()
                                 .Name("relay_control_time_to_connect_seconds")
                                 .Help("From a connect received to the peer's report that the "
                                       "pair is connected, by path.")
                                 .Register(*registry)
                                 .Add({{"path", "direct"}}, connect_buckets())),
      connect_relayed_seconds(
          BuildHistogram()
              .Name("relay_control_time_to_connect_seconds")
              .Help("From a connect received to the peer's report that the pair is "
                    "connected, by path.")
              .Register(*registry)
              .Add({{"path", "relayed"}}, connect_buckets())),
      registry_(std::move(registry)),
      registrations_(counters(*registry_, "relay_control_registrations_total",
                              "Register requests by result (ok, or the refusal reason).")),
      rejected_(counters(*registry_, "relay_control_rejected_messages_total",
                         "Datagrams dropped or refused, by reason.")),
      messages_(counters(*registry_, "relay_control_messages_total",
                         "Authenticated control messages accepted, by type.")),
      connects_(counters(*registry_, "relay_control_connects_total",
                         "Connect requests by decision (punch or relay).")),
      punch_outcomes_(counters(*registry_, "relay_control_punch_outcomes_total",
                               "Results peers reported, by outcome.")),
      relay_releases_(counters(*registry_, "relay_control_relay_releases_total",
                               "Relay sessions released, by reason.")),
      session_updates_(counters(*registry_, "relay_control_session_updates_total",
                                "Updates of relay sessions' expected sources sent to the data "
                                "plane (a peer re-registered or its observed address changed), "
                                "by result.")),
      peers_(BuildGauge()
                 .Name("relay_control_peers")
                 .Help("Registered peers by NAT class.")
                 .Register(*registry_)) {}

}  // namespace relay::control
