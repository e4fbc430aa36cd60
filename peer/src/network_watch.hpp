// Tells the agent at once when the host's IPv4 addresses or routes change (a laptop
// moving to another network, a DHCP renewal with a new address, a default route
// switching uplinks), from rtnetlink notifications, instead of waiting for the next
// keepalive to show a new reflexive address.  Only "something changed": the agent
// then looks for itself (its local addresses, a keepalive round).
#pragma once

#include <string>

#include "relay/ipc/unix_socket.hpp"
#include "relay/result.hpp"

namespace relay::peer {

class NetworkWatch {
  public:
    // Subscribes to IPv4 address and route changes.  An error names what failed (the
    // agent runs without the watch then, on keepalives alone).
    static Result<NetworkWatch, std::string> open();

    // Drains what arrived without blocking; true if any of it was an address or route
    // being added or removed.
    bool changed();

    int fd() const { return fd_.get(); }

  private:
    explicit NetworkWatch(ipc::FileDescriptor fd) : fd_(std::move(fd)) {}
    ipc::FileDescriptor fd_;
};

}  // namespace relay::peer
