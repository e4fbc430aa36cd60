#include "session_service.hpp"

#include <rte_ring.h>

#include <thread>

namespace relay::dp {

using ipc::Status;

namespace {

constexpr auto kWorkerTimeout = std::chrono::seconds(2);

ipc::Response error(Status status, std::string message) {
    ipc::Response r;
    r.status = status;
    r.error = std::move(message);
    return r;
}

ipc::Response ok(ipc::ResponseBody body = ipc::EmptyReply{}) {
    ipc::Response r;
    r.body = std::move(body);
    return r;
}

}  // namespace

SessionService::SessionService(DataplaneState& state, uint64_t instance_id)
    : state_(state), instance_id_(instance_id), started_(std::chrono::steady_clock::now()) {}

bool SessionService::execute(uint8_t worker, const SessionCommandRef& command, Status& failure) {
    auto* ref = new SessionCommandRef(command);  // owned by the ring until the worker deletes it
    if (rte_ring_sp_enqueue(state_.rings[worker].commands, ref) != 0) {
        delete ref;
        failure = Status::busy;
        return false;
    }
    const auto deadline = std::chrono::steady_clock::now() + kWorkerTimeout;
    for (;;) {
        auto s = command->state.load(std::memory_order_acquire);
        if (s == SessionCommand::State::done) return true;
        if (s == SessionCommand::State::failed) {
            failure = Status::internal;
            return false;
        }
        if (std::chrono::steady_clock::now() > deadline) {
            failure = Status::busy;
            return false;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
}

void SessionService::forget(uint64_t id) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;
    const SessionSpec& spec = state_.sessions->cold(it->second.slot).spec;
    endpoints_in_use_.erase({spec.relay_ip, spec.relay_port});
    state_.sessions->free_slot(it->second.slot);
    sessions_.erase(it);
    state_.session_count.store(static_cast<uint32_t>(sessions_.size()), std::memory_order_relaxed);
}

void SessionService::drain_expired() {
    ExpiredSession expired[64];
    for (const WorkerRings& rings : state_.rings) {
        unsigned n;
        while ((n = rte_ring_sc_dequeue_burst_elem(rings.expired, expired, sizeof(ExpiredSession),
                                                   64, nullptr)) > 0)
            for (unsigned i = 0; i < n; ++i) forget(expired[i].id);
    }
}

ipc::Response SessionService::handle(const ipc::Request& request) {
    // Expiries first, so that a request never sees a session a worker already removed.
    drain_expired();
    return std::visit(
        [this](const auto& body) -> ipc::Response {
            using T = std::decay_t<decltype(body)>;
            if constexpr (std::is_same_v<T, ipc::HealthRequest>)
                return health();
            else if constexpr (std::is_same_v<T, ipc::AddSessionRequest>)
                return add(body.spec);
            else if constexpr (std::is_same_v<T, ipc::UpdateSessionRequest>)
                return update(body.update);
            else if constexpr (std::is_same_v<T, ipc::RemoveSessionRequest>)
                return remove(body.id);
            else if constexpr (std::is_same_v<T, ipc::GetSessionRequest>)
                return get(body.id);
            else
                return list(body);
        },
        request.body);
}

ipc::Response SessionService::health() const {
    ipc::HealthReply h;
    h.instance_id = instance_id_;
    h.uptime_ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::steady_clock::now() - started_)
                                            .count());
    h.workers = state_.workers();
    h.ports = static_cast<uint32_t>(state_.ports.size());
    h.sessions = static_cast<uint32_t>(sessions_.size());
    h.max_sessions = state_.sessions->capacity();
    h.relay_addresses = state_.sessions->relay_addresses();
    return ok(h);
}

ipc::Response SessionService::add(const SessionSpec& spec) {
    if (state_.sessions->address_index(spec.relay_ip) < 0)
        return error(Status::unknown_address, "relay_ip " + format_ipv4(spec.relay_ip) +
                                                  " is not an address of this data plane");
    if (spec.policy == LatchPolicy::wireguard &&
        spec.sides[0].public_key == spec.sides[1].public_key)
        return error(Status::invalid_argument, "sides[0] and sides[1] have the same public key");
    if (sessions_.count(spec.id))
        return error(Status::exists, "session id " + std::to_string(spec.id) + " exists");
    if (endpoints_in_use_.count({spec.relay_ip, spec.relay_port}))
        return error(Status::exists, "relay endpoint " +
                                         format_socket_address({spec.relay_ip, spec.relay_port}) +
                                         " is in use");
    const uint32_t slot = state_.sessions->allocate_slot();
    if (slot == kNoSlot)
        return error(Status::table_full,
                     "session table full (" + std::to_string(state_.sessions->capacity()) + ")");
    auto cmd = std::make_shared<SessionCommand>();
    cmd->kind = SessionCommand::Kind::install;
    cmd->slot = slot;
    cmd->spec = spec;
    const uint8_t worker = owner_of(spec.relay_port);
    Status failure = Status::internal;
    if (!execute(worker, cmd, failure)) {
        // A timed-out install may still happen later; keep the slot reserved
        // rather than hand it out twice.
        if (failure != Status::busy) state_.sessions->free_slot(slot);
        return error(failure, failure == Status::busy ? "worker did not answer" : "install failed");
    }
    sessions_[spec.id] = {slot, worker};
    endpoints_in_use_.insert({spec.relay_ip, spec.relay_port});
    state_.session_count.store(static_cast<uint32_t>(sessions_.size()), std::memory_order_relaxed);
    return ok();
}

ipc::Response SessionService::update(const SessionUpdate& u) {
    auto it = sessions_.find(u.id);
    if (it == sessions_.end())
        return error(Status::not_found, "no session " + std::to_string(u.id));
    auto cmd = std::make_shared<SessionCommand>();
    cmd->kind = SessionCommand::Kind::update;
    cmd->slot = it->second.slot;
    cmd->id = u.id;
    cmd->update = u;
    Status failure = Status::internal;
    if (!execute(it->second.worker, cmd, failure)) {
        drain_expired();
        if (!sessions_.count(u.id))
            return error(Status::not_found, "session " + std::to_string(u.id) + " expired");
        return error(failure, "update failed");
    }
    return ok();
}

ipc::Response SessionService::remove(uint64_t id) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return error(Status::not_found, "no session " + std::to_string(id));
    auto cmd = std::make_shared<SessionCommand>();
    cmd->kind = SessionCommand::Kind::uninstall;
    cmd->slot = it->second.slot;
    cmd->id = id;
    Status failure = Status::internal;
    if (execute(it->second.worker, cmd, failure)) {
        forget(id);
        return ok();
    }
    if (failure == Status::busy) return error(Status::busy, "worker did not answer");
    // The worker had already expired it; its notice frees the slot.
    drain_expired();
    return ok();
}

ipc::Response SessionService::get(uint64_t id) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return error(Status::not_found, "no session " + std::to_string(id));
    auto cmd = std::make_shared<SessionCommand>();
    cmd->kind = SessionCommand::Kind::snapshot;
    cmd->snapshot_slots = {it->second.slot};
    Status failure = Status::internal;
    if (!execute(it->second.worker, cmd, failure)) return error(failure, "worker did not answer");
    if (cmd->snapshot.empty() || cmd->snapshot[0].spec.id != id)
        return error(Status::not_found, "session " + std::to_string(id) + " expired");
    return ok(ipc::SessionReply{cmd->snapshot[0]});
}

ipc::Response SessionService::list(const ipc::ListSessionsRequest& r) {
    // Collect the page, then ask each worker for its share in one command.
    std::vector<std::vector<std::pair<uint64_t, uint32_t>>> per_worker(state_.workers());
    std::vector<uint64_t> order;
    auto it = sessions_.upper_bound(r.after_id);
    for (; it != sessions_.end() && order.size() < r.max_count; ++it) {
        per_worker[it->second.worker].push_back({it->first, it->second.slot});
        order.push_back(it->first);
    }
    const bool more = it != sessions_.end();
    std::map<uint64_t, SessionStats> found;
    for (unsigned w = 0; w < per_worker.size(); ++w) {
        if (per_worker[w].empty()) continue;
        auto cmd = std::make_shared<SessionCommand>();
        cmd->kind = SessionCommand::Kind::snapshot;
        for (auto& [id, slot] : per_worker[w]) cmd->snapshot_slots.push_back(slot);
        Status failure = Status::internal;
        if (!execute(static_cast<uint8_t>(w), cmd, failure))
            return error(failure, "worker did not answer");
        for (size_t i = 0; i < cmd->snapshot.size(); ++i)
            if (cmd->snapshot[i].spec.id == per_worker[w][i].first)
                found[per_worker[w][i].first] = cmd->snapshot[i];
    }
    ipc::ListSessionsReply reply;
    reply.more = more;
    for (uint64_t id : order)
        if (auto f = found.find(id); f != found.end()) reply.sessions.push_back(f->second);
    return ok(reply);
}

}  // namespace relay::dp
