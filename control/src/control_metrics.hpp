// relay-control's Prometheus metrics (docs/OPERATIONS.md lists them).  The event
// loop updates them; prometheus-cpp's HTTP thread reads them (its counters and
// gauges are atomic).  Label values are the protocol's to_string() names.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace relay::control {

class ControlMetrics {
  public:
    explicit ControlMetrics(std::shared_ptr<prometheus::Registry> registry);

    const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

    void registration(const std::string& result) {
        registrations_.Add({{"result", result}}).Increment();
    }
    // Called for every datagram dropped, floods included: the counter of each reason is
    // looked up once (a label set built and hashed under the family's lock costs about a
    // microsecond, more than the rest of dropping a flood datagram).
    void rejected(std::string_view reason) {
        auto it = rejected_by_reason_.find(reason);
        if (it == rejected_by_reason_.end())
            it =
                rejected_by_reason_
                    .emplace(std::string(reason), &rejected_.Add({{"reason", std::string(reason)}}))
                    .first;
        it->second->Increment();
    }
    void message(const std::string& type) { messages_.Add({{"type", type}}).Increment(); }
    void connect(const std::string& decision) {
        connects_.Add({{"decision", decision}}).Increment();
    }
    void punch_outcome(const std::string& outcome) {
        punch_outcomes_.Add({{"outcome", outcome}}).Increment();
    }
    void relay_release(const std::string& reason) {
        relay_releases_.Add({{"reason", reason}}).Increment();
    }
    // An update of a session's expected sources sent to the data plane: "ok", or why not.
    void session_update(const std::string& result) {
        session_updates_.Add({{"result", result}}).Increment();
    }
    void set_peers(const std::string& nat_class, double n) {
        peers_.Add({{"nat_class", nat_class}}).Set(n);
    }

    prometheus::Counter& stun_answered;
    prometheus::Counter& wg_observations;
    prometheus::Counter& key_agreements;  // X25519 for unknown senders (the budget's work)
    prometheus::Counter& relay_allocations;
    prometheus::Counter& dataplane_reprograms;
    prometheus::Gauge& relay_sessions;
    prometheus::Gauge& dataplane_up;
    prometheus::Gauge& draining;
    prometheus::Histogram& rendezvous_seconds;
    prometheus::Histogram& connect_direct_seconds;
    prometheus::Histogram& connect_relayed_seconds;

  private:
    std::shared_ptr<prometheus::Registry> registry_;
    prometheus::Family<prometheus::Counter>& registrations_;
    prometheus::Family<prometheus::Counter>& rejected_;
    std::map<std::string, prometheus::Counter*, std::less<>> rejected_by_reason_;
    prometheus::Family<prometheus::Counter>& messages_;
    prometheus::Family<prometheus::Counter>& connects_;
    prometheus::Family<prometheus::Counter>& punch_outcomes_;
    prometheus::Family<prometheus::Counter>& relay_releases_;
    prometheus::Family<prometheus::Counter>& session_updates_;
    prometheus::Family<prometheus::Gauge>& peers_;
};

}  // namespace relay::control
