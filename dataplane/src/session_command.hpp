// Changes to the session table travel from the IPC thread to the worker that
// owns the session as commands on that worker's ring, so that session state
// is only ever written by one core.  The IPC thread waits for completion.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "relay/session.hpp"

namespace relay::dp {

struct SessionCommand {
    enum class Kind : uint8_t { install, update, uninstall, snapshot };
    enum class State : int { pending = 0, done = 1, failed = 2 };

    Kind kind = Kind::install;
    uint32_t slot = 0;
    uint64_t id = 0;                       // the session the slot must hold (update, uninstall)
    SessionSpec spec;                      // install
    SessionUpdate update;                  // update
    std::vector<uint32_t> snapshot_slots;  // snapshot: slots to read ...
    std::vector<SessionStats> snapshot;    // ... and what they hold (same order)
    std::atomic<State> state{State::pending};
};

// The ring carries a heap-held shared_ptr so that a command survives an IPC
// thread that stopped waiting for it.
using SessionCommandRef = std::shared_ptr<SessionCommand>;

// A session the worker removed because it was idle, for the IPC thread to
// forget and free.
struct ExpiredSession {
    uint64_t id;
    uint32_t slot;
    uint32_t pad;
};

}  // namespace relay::dp
