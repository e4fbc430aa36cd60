// The admin socket behind `relay status`, `relay peers`, `relay sessions` and
// `relay drain`: one JSON request datagram, one JSON reply datagram, on a Unix
// SOCK_SEQPACKET socket (docs/PROTOCOL.md, "Admin socket").
#pragma once

#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "control_core.hpp"

namespace relay::control {

constexpr size_t kAdminPageMax = 200;  // peers or sessions per reply

// Answers one request.  `now_ms` and `started_ms` are monotonic (as peers' and sessions'
// times are: control_core.hpp).  Errors are {"ok": false, "error": "..."} naming what was wrong.
nlohmann::json handle_admin(const nlohmann::json& request, ControlCore& core,
                            SessionProgrammer& dataplane, uint64_t now_ms, uint64_t started_ms);
std::vector<uint8_t> handle_admin_datagram(std::span<const uint8_t> in, ControlCore& core,
                                           SessionProgrammer& dataplane, uint64_t now_ms,
                                           uint64_t started_ms);

}  // namespace relay::control
