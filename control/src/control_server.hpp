// relay-control's event loop: the two UDP ports on the management address, the admin
// socket, the data-plane link's health checks and the core's timers, all on one thread
// (so the core needs no locks).  Unknown senders' key agreements run on a crypto thread
// (key_agreement_worker.hpp) and come back to this loop through an eventfd.  Metrics are
// served by prometheus-cpp's own thread.
#pragma once

#include <atomic>
#include <memory>

#include "control_core.hpp"
#include "dataplane_link.hpp"

namespace relay::control {

class ControlServer {
  public:
    // Binds the UDP ports, the admin socket and the metrics endpoint.  Throws
    // std::runtime_error naming what could not be bound.
    ControlServer(const Config& config, KeyPair server_keys);
    ~ControlServer();

    // Runs until `stop` becomes true.
    void run(const std::atomic<bool>& stop);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace relay::control
