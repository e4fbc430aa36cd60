// Client side of the JSON admin sockets (relay-control's admin socket, relay-peer's
// status socket): one request datagram, one reply datagram on an AF_UNIX
// SOCK_SEQPACKET socket.  Used by `relay status|peers|sessions|drain` and
// `relay-peer status`.
#pragma once

#include <string>

#include "relay/result.hpp"

namespace relay::ipc {

// Sends `request` to the socket at `path` and returns the reply text.  Errors name the
// path and what failed (no such socket, refused, timeout).
Result<std::string, std::string> json_socket_call(const std::string& path,
                                                  const std::string& request,
                                                  int timeout_ms = 3000);

}  // namespace relay::ipc
