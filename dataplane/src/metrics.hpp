// relay-dataplane's /metrics: a prometheus-cpp Collectable that reads the
// workers' counters at scrape time and sums them (the hot path never touches
// a prometheus object).
#pragma once

#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dataplane_state.hpp"

namespace relay::dp {

class DataplaneCollector : public prometheus::Collectable {
  public:
    DataplaneCollector(const DataplaneState& state, std::string node_name);
    std::vector<prometheus::MetricFamily> Collect() const override;

  private:
    const DataplaneState& state_;
    std::string node_name_;
};

// Owns the HTTP endpoint.  Throws std::runtime_error when it cannot listen.
class MetricsServer {
  public:
    MetricsServer(const SocketAddress& listen, std::shared_ptr<DataplaneCollector> collector);
    std::string url() const { return url_; }

  private:
    std::shared_ptr<DataplaneCollector> collector_;
    std::unique_ptr<prometheus::Exposer> exposer_;
    std::string url_;
};

}  // namespace relay::dp
