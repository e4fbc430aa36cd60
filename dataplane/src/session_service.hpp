// The IPC thread's answers to control's requests (relay/ipc/dataplane_protocol.hpp):
// validates them, keeps the books through SessionRegistry and waits a bounded
// time for the owning worker.
//
// Every request is idempotent by session id, so that control can retry any of
// them after a timeout or a `busy` and converge (docs/PROTOCOL.md, "Idempotence"):
//   add     the same spec again -> ok; another spec under that id -> exists;
//           the id or its endpoint being removed -> busy
//   update  the values it already has -> ok; an unknown id -> not_found
//   remove  an unknown id -> not_found, which means "gone" (control treats it as done)
// A worker that has not done a change within the wait gets `busy` answered;
// the change still happens (or is undone) whenever the worker does it, and the
// next request about that id sees the outcome.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "relay/ipc/dataplane_protocol.hpp"
#include "session_command.hpp"
#include "session_registry.hpp"
#include "worker_stats.hpp"

namespace relay::dp {

// How the IPC thread waits for a worker: begin() when a request arrives,
// then pause() between checks until it returns false (the request waited
// long enough, in all).  relay-dataplane uses TimedWait; tests step a fake worker instead.
class WorkerWait {
  public:
    virtual ~WorkerWait() = default;
    virtual void begin() = 0;
    virtual bool pause() = 0;
};

// Sleeps 20 µs between checks, for at most `budget` per request.
class TimedWait final : public WorkerWait {
  public:
    explicit TimedWait(std::chrono::microseconds budget) : budget_(budget) {}
    void begin() override;
    bool pause() override;

  private:
    std::chrono::microseconds budget_;
    std::chrono::steady_clock::time_point deadline_{};
};

// What the IPC thread publishes for the metrics thread.
struct IpcStats {
    std::atomic<uint32_t> sessions{0};            // registry entries (installed or changing)
    std::atomic<uint32_t> commands_in_flight{0};  // posted, not yet done by a worker
    Counter busy_replies;                         // requests answered `busy`
};

class SessionService {
  public:
    struct Setup {
        SessionTable* table = nullptr;
        const uint8_t* shard_map = nullptr;  // relay port -> worker, 65536 entries
        unsigned ports = 0;                  // reported by health
        uint64_t instance_id = 0;
        WorkerWait* wait = nullptr;
        IpcStats* stats = nullptr;
    };
    SessionService(const Setup& setup, CommandRings rings);

    ipc::Response handle(const ipc::Request& request);
    // Folds in what the workers did meanwhile (late completions, expiries)
    // and publishes the stats; call often, also when no request comes.
    void tend();

    const SessionRegistry& registry() const { return registry_; }

  private:
    ipc::Response add(const SessionSpec& spec);
    ipc::Response update(const SessionUpdate& u);
    ipc::Response remove(uint64_t id);
    ipc::Response get(uint64_t id);
    ipc::Response list(const ipc::ListSessionsRequest& r);
    ipc::Response health() const;

    // Settles and checks `done` until it holds or the wait gives up.
    template <typename F>
    bool wait_until(F&& done);
    ipc::Response busy(std::string message);

    Setup setup_;
    CommandRings rings_;
    SessionRegistry registry_;
    std::chrono::steady_clock::time_point started_;
};

}  // namespace relay::dp
