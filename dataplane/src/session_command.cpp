#include "session_command.hpp"

namespace relay::dp {

bool CommandRings::post(unsigned worker, const SessionCommandRef& command) {
    if (worker >= workers_.size()) return false;
    auto* ref = new SessionCommandRef(command);  // the ring's reference; the worker deletes it
    if (rte_ring_sp_enqueue(workers_[worker].commands, ref) != 0) {
        delete ref;
        return false;
    }
    return true;
}

unsigned apply_session_commands(rte_ring* commands, SessionTable& table, uint64_t now,
                                uint64_t tsc_hz, unsigned max) {
    constexpr unsigned kBatch = 16;
    void* items[kBatch];
    const unsigned n =
        rte_ring_sc_dequeue_burst(commands, items, max < kBatch ? max : kBatch, nullptr);
    for (unsigned i = 0; i < n; ++i) {
        std::unique_ptr<SessionCommandRef> ref(static_cast<SessionCommandRef*>(items[i]));
        SessionCommand& c = **ref;
        bool ok = true;
        switch (c.kind) {
            case SessionCommand::Kind::install:
                ok = table.install(c.slot, c.spec, now, tsc_hz);
                break;
            case SessionCommand::Kind::update:
                ok = table.at(c.slot).id == c.id;
                if (ok) table.update(c.slot, c.update, tsc_hz);
                break;
            case SessionCommand::Kind::uninstall:
                ok = table.at(c.slot).id == c.id;
                if (ok) table.uninstall(c.slot);
                break;
            case SessionCommand::Kind::snapshot:
                c.snapshot.clear();
                c.snapshot.reserve(c.snapshot_slots.size());
                for (uint32_t slot : c.snapshot_slots) {
                    SessionStats s = table.stats(slot, now, tsc_hz);
                    if (table.at(slot).id == 0) s.spec.id = 0;  // gone meanwhile
                    c.snapshot.push_back(s);
                }
                break;
        }
        c.state.store(ok ? SessionCommand::State::done : SessionCommand::State::failed,
                      std::memory_order_release);
    }
    return n;
}

}  // namespace relay::dp
