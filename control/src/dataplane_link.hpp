// The real SessionProgrammer: relay-dataplane's Unix socket (docs/PROTOCOL.md, data-plane
// IPC).  Connects lazily and again after any transport failure, so a data-plane restart
// is just a few failed calls.  Calls block up to a short timeout; the socket is local.
#pragma once

#include <optional>
#include <string>

#include "relay/ipc/unix_socket.hpp"
#include "session_programmer.hpp"

namespace relay::control {

class DataplaneLink : public SessionProgrammer {
  public:
    explicit DataplaneLink(std::string socket_path, int timeout_ms = 1000);

    std::optional<ProgramError> add_session(const SessionSpec& spec) override;
    std::optional<ProgramError> remove_session(uint64_t id) override;
    std::optional<ProgramError> update_session(const SessionUpdate& update) override;
    std::optional<std::vector<SessionStats>> list_sessions() override;
    std::optional<DataplaneHealth> health() override;

  private:
    // The call's response, or a transport error (after which we reconnect next time).
    std::optional<ipc::Response> call(const ipc::RequestBody& body, std::string& error);

    std::string path_;
    int timeout_ms_;
    std::optional<ipc::DataplaneClient> client_;
};

}  // namespace relay::control
