// What control needs of the data plane: install, update, remove and read back relay
// sessions, and notice a restart.  DataplaneLink is the real one (the data plane's
// Unix socket); tests and relay-bench use an in-memory one.  An interface because
// this is the edge between two processes, not a hot path.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "relay/ipc/dataplane_protocol.hpp"
#include "relay/session.hpp"

namespace relay::control {

struct ProgramError {
    bool unavailable = false;  // the data plane could not be reached (else: it refused)
    ipc::Status status = ipc::Status::internal;
    std::string message;
};

struct DataplaneHealth {
    uint64_t instance_id = 0;
    std::vector<Ipv4> relay_addresses;
};

class SessionProgrammer {
  public:
    virtual ~SessionProgrammer() = default;
    // Both are idempotent by session id (docs/PROTOCOL.md).  Empty on success: the
    // session is installed (also when it already was, with this spec) ...
    virtual std::optional<ProgramError> add_session(const SessionSpec& spec) = 0;
    // ... or gone (also when it was not there).
    virtual std::optional<ProgramError> remove_session(uint64_t id) = 0;
    // Changes what may change on a live session (its expected sources, limits, timeout)
    // without re-latching it.
    virtual std::optional<ProgramError> update_session(const SessionUpdate& update) = 0;
    // Every live session; std::nullopt when unavailable.
    virtual std::optional<std::vector<SessionStats>> list_sessions() = 0;
    virtual std::optional<DataplaneHealth> health() = 0;
};

}  // namespace relay::control
