#include "session_service.hpp"

#include <map>
#include <string>
#include <thread>

namespace relay::dp {

using ipc::Status;
using Phase = SessionRegistry::Phase;
using Posted = SessionRegistry::Posted;

namespace {

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

std::string session(uint64_t id) {
    return "session " + std::to_string(id);
}

}  // namespace

void TimedWait::begin() {
    deadline_ = std::chrono::steady_clock::now() + budget_;
}

bool TimedWait::pause() {
    if (std::chrono::steady_clock::now() >= deadline_) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(20));
    return true;
}

SessionService::SessionService(const Setup& setup, CommandRings rings)
    : setup_(setup),
      rings_(std::move(rings)),
      registry_(*setup.table, setup.shard_map, rings_),
      started_(std::chrono::steady_clock::now()) {}

void SessionService::tend() {
    registry_.settle();
    setup_.stats->sessions.store(static_cast<uint32_t>(registry_.size()),
                                 std::memory_order_relaxed);
    setup_.stats->commands_in_flight.store(static_cast<uint32_t>(registry_.commands_in_flight()),
                                           std::memory_order_relaxed);
}

template <typename F>
bool SessionService::wait_until(F&& done) {
    for (;;) {
        registry_.settle();
        if (done()) return true;
        if (!setup_.wait->pause()) return false;
    }
}

ipc::Response SessionService::busy(std::string message) {
    setup_.stats->busy_replies.add();
    return error(Status::busy, std::move(message));
}

ipc::Response SessionService::handle(const ipc::Request& request) {
    // Late completions and expiries first, so that a request sees the latest state.
    tend();
    setup_.wait->begin();  // one budget per request, however many waits it has
    ipc::Response r = std::visit(
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
    tend();
    return r;
}

ipc::Response SessionService::health() const {
    ipc::HealthReply h;
    h.instance_id = setup_.instance_id;
    h.uptime_ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::steady_clock::now() - started_)
                                            .count());
    h.workers = rings_.workers();
    h.ports = setup_.ports;
    h.sessions = static_cast<uint32_t>(registry_.size());
    h.max_sessions = setup_.table->capacity();
    h.relay_addresses = setup_.table->relay_addresses();
    return ok(h);
}

ipc::Response SessionService::add(const SessionSpec& spec) {
    if (setup_.table->address_index(spec.relay_ip) < 0)
        return error(Status::unknown_address, "relay_ip " + format_ipv4(spec.relay_ip) +
                                                  " is not an address of this data plane");
    if (spec.policy == LatchPolicy::wireguard &&
        spec.sides[0].public_key == spec.sides[1].public_key)
        return error(Status::invalid_argument, "sides[0] and sides[1] have the same public key");
    // A removal in the way (of this id, or of the session on this endpoint)
    // is waited for like our own command: control's add right after its
    // remove then usually succeeds at once.
    uint64_t in_the_way = 0;
    if (const auto* e = registry_.find(spec.id); e && e->phase == Phase::removing)
        in_the_way = spec.id;
    else if (const uint64_t h = registry_.holder_of(spec.relay_ip, spec.relay_port);
             h && registry_.find(h)->phase == Phase::removing)
        in_the_way = h;
    if (in_the_way && !wait_until([&] { return registry_.find(in_the_way) == nullptr; }))
        return busy(session(in_the_way) + ", in the way of " + session(spec.id) +
                    ", is still being removed; retry");
    if (const auto* e = registry_.find(spec.id)) {
        if (!(e->spec == spec))
            return error(Status::exists, session(spec.id) + " exists with another spec");
        // The same add again (control retrying): wait for the first one below.
    } else {
        const SocketAddress endpoint{spec.relay_ip, spec.relay_port};
        if (const uint64_t holder = registry_.holder_of(spec.relay_ip, spec.relay_port))
            return error(Status::exists, "relay endpoint " + format_socket_address(endpoint) +
                                             " is in use by " + session(holder));
        switch (registry_.install(spec)) {
            case Posted::ok:
                break;
            case Posted::table_full:
                return error(
                    Status::table_full,
                    "session table full (" + std::to_string(setup_.table->capacity()) + ")");
            case Posted::queue_full:
                return busy("worker's command queue is full");
        }
    }
    wait_until([&] {
        const auto* e = registry_.find(spec.id);
        return !e || e->phase != Phase::installing;
    });
    const auto* e = registry_.find(spec.id);
    if (!e) return error(Status::internal, "the worker could not install " + session(spec.id));
    if (e->phase == Phase::installing)
        return busy("worker has not installed " + session(spec.id) + " yet; retry");
    return ok();
}

ipc::Response SessionService::update(const SessionUpdate& u) {
    const auto* e = registry_.find(u.id);
    if (!e || e->phase == Phase::removing) return error(Status::not_found, "no " + session(u.id));
    // The same values again (control retrying) post nothing: it only waits for
    // whatever of this session is still in flight.
    if (!(SessionRegistry::with_update(e->spec, u) == e->spec) &&
        registry_.update(u) == Posted::queue_full)
        return busy("worker's command queue is full");
    wait_until([&] {
        const auto* now = registry_.find(u.id);
        return !now || now->pending == 0;
    });
    e = registry_.find(u.id);
    if (!e) return error(Status::not_found, session(u.id) + " expired");
    if (e->pending != 0) return busy("worker has not applied the update yet; retry");
    return ok();
}

ipc::Response SessionService::remove(uint64_t id) {
    const auto* e = registry_.find(id);
    if (!e) return error(Status::not_found, "no " + session(id));
    if (e->phase != Phase::removing && registry_.uninstall(id) == Posted::queue_full)
        return busy("worker's command queue is full");
    if (!wait_until([&] { return registry_.find(id) == nullptr; }))
        return busy("worker has not removed " + session(id) + " yet; it will; retry");
    return ok();
}

ipc::Response SessionService::get(uint64_t id) {
    const auto* e = registry_.find(id);
    if (!e || e->phase == Phase::removing) return error(Status::not_found, "no " + session(id));
    // Behind a pending install in the worker's queue, so it sees the result.
    SessionCommandRef cmd = registry_.snapshot(e->worker, {e->slot});
    if (!cmd) return busy("worker's command queue is full");
    if (!wait_until([&] { return cmd->finished(); }))
        return busy("worker did not answer in time; retry");
    if (cmd->snapshot.empty() || cmd->snapshot[0].spec.id != id)
        return error(Status::not_found, session(id) + " expired");
    return ok(ipc::SessionReply{cmd->snapshot[0]});
}

ipc::Response SessionService::list(const ipc::ListSessionsRequest& r) {
    // Collect the page, then ask each worker for its share in one command.
    std::vector<std::vector<std::pair<uint64_t, uint32_t>>> per_worker(rings_.workers());
    std::vector<uint64_t> order;
    const auto& entries = registry_.entries();
    auto it = entries.upper_bound(r.after_id);
    for (; it != entries.end() && order.size() < r.max_count; ++it) {
        if (it->second.phase == Phase::removing) continue;  // gone as far as control is concerned
        per_worker[it->second.worker].push_back({it->first, it->second.slot});
        order.push_back(it->first);
    }
    bool more = false;
    for (; it != entries.end() && !more; ++it) more = it->second.phase != Phase::removing;
    std::vector<SessionCommandRef> cmds(per_worker.size());
    for (unsigned w = 0; w < per_worker.size(); ++w) {
        if (per_worker[w].empty()) continue;
        std::vector<uint32_t> slots;
        for (const auto& [id, slot] : per_worker[w]) slots.push_back(slot);
        cmds[w] = registry_.snapshot(static_cast<uint8_t>(w), std::move(slots));
        if (!cmds[w]) return busy("worker " + std::to_string(w) + "'s command queue is full");
    }
    const bool answered = wait_until([&] {
        for (const auto& c : cmds)
            if (c && !c->finished()) return false;
        return true;
    });
    if (!answered) return busy("a worker did not answer in time; retry");
    std::map<uint64_t, const SessionStats*> found;
    for (unsigned w = 0; w < per_worker.size(); ++w) {
        if (!cmds[w]) continue;
        for (size_t i = 0; i < cmds[w]->snapshot.size(); ++i)
            if (cmds[w]->snapshot[i].spec.id == per_worker[w][i].first)
                found[per_worker[w][i].first] = &cmds[w]->snapshot[i];
    }
    ipc::ListSessionsReply reply;
    reply.more = more;
    for (uint64_t id : order)
        if (auto f = found.find(id); f != found.end()) reply.sessions.push_back(*f->second);
    return ok(reply);
}

}  // namespace relay::dp
