#include "session_registry.hpp"

#include <algorithm>

namespace relay::dp {

SessionRegistry::SessionRegistry(SessionTable& table, const uint8_t* shard_map, CommandRings& rings)
    : table_(table), shard_map_(shard_map), rings_(rings), pins_(table.capacity(), 0) {}

SessionSpec SessionRegistry::with_update(SessionSpec spec, const SessionUpdate& u) {
    spec.limits = u.limits;
    spec.idle_timeout_s = u.idle_timeout_s;
    for (int i = 0; i < 2; ++i) {
        spec.sides[i].allowed_source = u.allowed_source[i];
        spec.sides[i].allowed_port = u.allowed_port[i];
    }
    return spec;
}

const SessionRegistry::Entry* SessionRegistry::find(uint64_t id) const {
    const auto it = entries_.find(id);
    return it == entries_.end() ? nullptr : &it->second;
}

uint64_t SessionRegistry::holder_of(Ipv4 relay_ip, uint16_t relay_port) const {
    const auto it = holders_.find({relay_ip, relay_port});
    return it == holders_.end() ? 0 : it->second;
}

void SessionRegistry::pin(const SessionCommand& c, int delta) {
    if (c.kind == SessionCommand::Kind::snapshot) {
        for (uint32_t slot : c.snapshot_slots) pins_[slot] += delta;
    } else {
        pins_[c.slot] += delta;
    }
}

bool SessionRegistry::post(uint8_t worker, SessionCommandRef command, uint64_t id) {
    if (!rings_.post(worker, command)) return false;
    pin(*command, +1);
    in_flight_.push_back({std::move(command), id});
    return true;
}

SessionRegistry::Posted SessionRegistry::install(const SessionSpec& spec) {
    const uint32_t slot = table_.allocate_slot();
    if (slot == kNoSlot) return Posted::table_full;
    auto cmd = std::make_shared<SessionCommand>();
    cmd->kind = SessionCommand::Kind::install;
    cmd->slot = slot;
    cmd->id = spec.id;
    cmd->spec = spec;
    const uint8_t worker = owner_of(spec.relay_port);
    if (!post(worker, std::move(cmd), spec.id)) {
        table_.free_slot(slot);
        return Posted::queue_full;
    }
    Entry& e = entries_[spec.id];
    e.spec = spec;
    e.slot = slot;
    e.worker = worker;
    e.phase = Phase::installing;
    e.resident = false;
    e.pending = 1;
    holders_[{spec.relay_ip, spec.relay_port}] = spec.id;
    return Posted::ok;
}

SessionRegistry::Posted SessionRegistry::update(const SessionUpdate& u) {
    Entry& e = entries_.at(u.id);
    auto cmd = std::make_shared<SessionCommand>();
    cmd->kind = SessionCommand::Kind::update;
    cmd->slot = e.slot;
    cmd->id = u.id;
    cmd->update = u;
    if (!post(e.worker, std::move(cmd), u.id)) return Posted::queue_full;
    ++e.pending;
    e.spec = with_update(e.spec, u);
    return Posted::ok;
}

SessionRegistry::Posted SessionRegistry::uninstall(uint64_t id) {
    Entry& e = entries_.at(id);
    // Behind any install or update still queued: a worker applies its commands in order.
    auto cmd = std::make_shared<SessionCommand>();
    cmd->kind = SessionCommand::Kind::uninstall;
    cmd->slot = e.slot;
    cmd->id = id;
    if (!post(e.worker, std::move(cmd), id)) return Posted::queue_full;
    ++e.pending;
    e.phase = Phase::removing;
    return Posted::ok;
}

SessionCommandRef SessionRegistry::snapshot(uint8_t worker, std::vector<uint32_t> slots) {
    auto cmd = std::make_shared<SessionCommand>();
    cmd->kind = SessionCommand::Kind::snapshot;
    cmd->snapshot_slots = std::move(slots);
    if (!post(worker, cmd, 0)) return nullptr;
    return cmd;
}

void SessionRegistry::on_expired(const ExpiredSession& e) {
    auto it = entries_.find(e.id);
    // Exactly one of "uninstall done" and "expired" happens to a resident
    // session, so a notice always finds its entry; the check guards the books
    // against a worker bug rather than trusting it.
    if (it == entries_.end() || it->second.slot != e.slot) return;
    it->second.resident = false;
    it->second.expired = true;
    touched_.push_back(e.id);
}

void SessionRegistry::on_finished(const InFlight& f) {
    const SessionCommand& c = *f.command;
    pin(c, -1);
    if (f.id == 0) return;  // a snapshot
    Entry& e = entries_.at(f.id);
    --e.pending;
    const bool done = c.state.load(std::memory_order_acquire) == SessionCommand::State::done;
    switch (c.kind) {
        case SessionCommand::Kind::install:
            // A notice may be read before the install it follows (they travel
            // apart): an expired session stays gone.
            if (done) {
                e.resident = !e.expired;
                if (e.phase == Phase::installing) e.phase = Phase::live;
            }
            break;
        case SessionCommand::Kind::uninstall:
            // Failed: the slot no longer held it (expired, or never installed);
            // the expiry notice, or the failed install, already said so.
            if (done) e.resident = false;
            break;
        case SessionCommand::Kind::update:
        case SessionCommand::Kind::snapshot:
            break;
    }
    touched_.push_back(f.id);
}

void SessionRegistry::release_slot(uint32_t slot) {
    if (pins_[slot] == 0)
        table_.free_slot(slot);
    else
        retired_.push_back(slot);
}

void SessionRegistry::maybe_finish(uint64_t id) {
    const auto it = entries_.find(id);
    if (it == entries_.end()) return;
    const Entry& e = it->second;
    if (e.pending != 0 || e.resident) return;
    holders_.erase({e.spec.relay_ip, e.spec.relay_port});
    release_slot(e.slot);
    entries_.erase(it);
}

void SessionRegistry::settle() {
    touched_.clear();
    // Either order works (see on_finished); each event is applied once.
    rings_.drain_expired([this](const ExpiredSession& e) { on_expired(e); });
    size_t kept = 0;
    for (size_t i = 0; i < in_flight_.size(); ++i) {
        if (in_flight_[i].command->finished())
            on_finished(in_flight_[i]);
        else
            in_flight_[kept++] = std::move(in_flight_[i]);
    }
    in_flight_.resize(kept);
    for (uint64_t id : touched_) maybe_finish(id);
    if (!retired_.empty()) {
        auto unpinned = std::partition(retired_.begin(), retired_.end(),
                                       [this](uint32_t slot) { return pins_[slot] != 0; });
        for (auto it = unpinned; it != retired_.end(); ++it) table_.free_slot(*it);
        retired_.erase(unpinned, retired_.end());
    }
}

}  // namespace relay::dp
