// The real SessionProgrammer: relay-dataplane's Unix socket (docs/PROTOCOL.md, data-plane
// IPC).  Connects lazily and again after any transport failure, so a data-plane restart
// is just a few failed calls.  Calls block up to a short timeout; the socket is local.
//
// A timed-out or `busy` add or remove proves neither failure nor success: the data
// plane may still do it.  Both are idempotent by session id, so the link asks again
// (once more) and goes by the answer: add -> ok; remove -> ok or not_found (gone).
// An add still `busy` then is reported as failed and undone (a remove is queued behind
// it).  What stays undecided is settled by control's reconcile, which compares the
// data plane's sessions with its own by id both ways (ControlCore::reconcile).
#pragma once

#include <optional>
#include <string>

#include "relay/ipc/unix_socket.hpp"
#include "session_programmer.hpp"

namespace relay::control {

class DataplaneLink : public SessionProgrammer {
  public:
    // Longer than the data plane's wait for a worker (it answers `busy` by then), so a
    // timeout means the data plane itself is not answering.
    static constexpr int kDefaultTimeoutMs = 1000;
    static_assert(kDefaultTimeoutMs >= 2 * ipc::kWorkerWaitMs);
    // Calls per add or remove: the first, and one retry after `busy` or a transport failure.
    static constexpr int kAttempts = 2;

    explicit DataplaneLink(std::string socket_path, int timeout_ms = kDefaultTimeoutMs);

    std::optional<ProgramError> add_session(const SessionSpec& spec) override;
    std::optional<ProgramError> remove_session(uint64_t id) override;
    std::optional<ProgramError> update_session(const SessionUpdate& update) override;
    std::optional<std::vector<SessionStats>> list_sessions() override;
    std::optional<DataplaneHealth> health() override;

  private:
    // The call's response, or a transport error (after which we reconnect next time).
    std::optional<ipc::Response> call(const ipc::RequestBody& body, std::string& error);
    // call(), asked again (kAttempts in all) while the answer is `busy` or missing; the
    // last outcome.  Only for requests that are idempotent by session id.
    std::optional<ipc::Response> call_idempotent(const ipc::RequestBody& body, std::string& error);

    std::string path_;
    int timeout_ms_;
    std::optional<ipc::DataplaneClient> client_;
};

}  // namespace relay::control
