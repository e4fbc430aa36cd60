// The IPC thread's view of the sessions: answers control's requests
// (relay/ipc/dataplane_protocol.hpp) by validating them, keeping the id ->
// slot registry, and sending commands to the owning workers.  It is the only
// user of SessionTable's slot allocator.
#pragma once

#include <chrono>
#include <map>
#include <set>
#include <utility>

#include "dataplane_state.hpp"
#include "relay/ipc/dataplane_protocol.hpp"
#include "session_command.hpp"

namespace relay::dp {

class SessionService {
  public:
    SessionService(DataplaneState& state, uint64_t instance_id);

    ipc::Response handle(const ipc::Request& request);
    // Forgets sessions the workers expired; call often.
    void drain_expired();

    size_t session_count() const { return sessions_.size(); }

  private:
    struct Entry {
        uint32_t slot;
        uint8_t worker;
    };

    ipc::Response add(const SessionSpec& spec);
    ipc::Response update(const SessionUpdate& u);
    ipc::Response remove(uint64_t id);
    ipc::Response get(uint64_t id);
    ipc::Response list(const ipc::ListSessionsRequest& r);
    ipc::Response health() const;

    // Sends a command to a worker and waits for it; false on timeout or failure.
    bool execute(uint8_t worker, const SessionCommandRef& command, ipc::Status& failure);
    uint8_t owner_of(uint16_t relay_port) const { return state_.shard_map[relay_port]; }
    void forget(uint64_t id);

    DataplaneState& state_;
    uint64_t instance_id_;
    std::chrono::steady_clock::time_point started_;
    std::map<uint64_t, Entry> sessions_;                    // by id, ordered for listing
    std::set<std::pair<Ipv4, uint16_t>> endpoints_in_use_;  // (relay ip, relay port)
};

}  // namespace relay::dp
