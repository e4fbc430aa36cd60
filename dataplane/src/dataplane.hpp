// relay-dataplane as a whole: brings up EAL, the packet pool, the rings, the
// ports and the tables from the config, launches one worker per configured
// lcore, and runs the service loop (IPC, ARP, expiry bookkeeping) on the main
// lcore until asked to stop.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "relay/config.hpp"

namespace relay::dp {

class Dataplane {
  public:
    // Throws std::runtime_error with an operator-readable message when the
    // config or the EAL cannot be satisfied.
    explicit Dataplane(const Config& config);
    ~Dataplane();
    Dataplane(const Dataplane&) = delete;
    Dataplane& operator=(const Dataplane&) = delete;

    // Serves until `stop_requested` becomes true; returns the exit code.
    int run(const std::atomic<bool>& stop_requested);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace relay::dp
