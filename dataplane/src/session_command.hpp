// Changes to the session table travel from the IPC thread to the worker that
// owns the session as commands on that worker's ring, so that session state
// is only ever written by one core; the worker tells the IPC thread about the
// sessions it expired on a second ring.  This file is that channel: the types
// that cross, the IPC thread's end (CommandRings) and the worker's end
// (apply_session_commands, notify_expired).  It needs rings, not the EAL: the
// tests make theirs with rte_ring_init on heap memory.
#pragma once

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "relay/session.hpp"
#include "session_table.hpp"

namespace relay::dp {

struct SessionCommand {
    enum class Kind : uint8_t { install, update, uninstall, snapshot };
    // failed: install found the (address, port) taken; update and uninstall
    // found the slot no longer holding `id` (the worker expired it).
    enum class State : int { pending = 0, done = 1, failed = 2 };

    Kind kind = Kind::install;
    uint32_t slot = 0;
    uint64_t id = 0;                       // the session the slot must hold (update, uninstall)
    SessionSpec spec;                      // install
    SessionUpdate update;                  // update
    std::vector<uint32_t> snapshot_slots;  // snapshot: slots to read ...
    std::vector<SessionStats> snapshot;    // ... and what they hold (same order; id 0 = empty)
    std::atomic<State> state{State::pending};

    bool finished() const { return state.load(std::memory_order_acquire) != State::pending; }
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
static_assert(sizeof(ExpiredSession) % 4 == 0, "rte_ring element sizes are multiples of 4");

// The IPC thread's end: it is the only producer of every command ring and the
// only consumer of every expiry ring.
class CommandRings {
  public:
    struct Worker {
        rte_ring* commands;  // SessionCommandRef*, IPC thread -> worker
        rte_ring* expired;   // ExpiredSession, worker -> IPC thread
    };
    explicit CommandRings(std::vector<Worker> workers) : workers_(std::move(workers)) {}

    unsigned workers() const { return static_cast<unsigned>(workers_.size()); }
    // Queues `command` for `worker`; false when its ring is full (nothing queued).
    bool post(unsigned worker, const SessionCommandRef& command);
    // Calls on_expired(const ExpiredSession&) for every notice waiting, worker by worker.
    template <typename F>
    void drain_expired(F&& on_expired);

  private:
    std::vector<Worker> workers_;
};

// The worker's end: applies up to `max` queued commands to the table (the
// worker owns the sessions they name) and marks each done or failed.
unsigned apply_session_commands(rte_ring* commands, SessionTable& table, uint64_t now,
                                uint64_t tsc_hz, unsigned max);
// Tells the IPC thread that the worker expired the session `id` in `slot`.
// The worker never expires more than the ring has room for, so this cannot fail.
inline void notify_expired(rte_ring* expired, uint64_t id, uint32_t slot) {
    ExpiredSession e{id, slot, 0};
    rte_ring_sp_enqueue_elem(expired, &e, sizeof e);
}

template <typename F>
void CommandRings::drain_expired(F&& on_expired) {
    ExpiredSession batch[64];
    for (const Worker& w : workers_) {
        unsigned n;
        while ((n = rte_ring_sc_dequeue_burst_elem(w.expired, batch, sizeof(ExpiredSession), 64,
                                                   nullptr)) > 0)
            for (unsigned i = 0; i < n; ++i) on_expired(batch[i]);
    }
}

}  // namespace relay::dp
