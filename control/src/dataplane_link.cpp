#include "dataplane_link.hpp"

#include <utility>
#include <variant>

namespace relay::control {

DataplaneLink::DataplaneLink(std::string socket_path, int timeout_ms)
    : path_(std::move(socket_path)), timeout_ms_(timeout_ms) {}

std::optional<ipc::Response> DataplaneLink::call(const ipc::RequestBody& body, std::string& error) {
    if (!client_) {
        auto connected = ipc::DataplaneClient::connect(path_);
        if (!connected) {
            error = connected.error();
            return std::nullopt;
        }
        client_.emplace(std::move(*connected));
    }
    auto response = client_->call(body, timeout_ms_);
    if (!response) {
        error = response.error();
        client_.reset();
        return std::nullopt;
    }
    return std::move(*response);
}

std::optional<ipc::Response> DataplaneLink::call_idempotent(const ipc::RequestBody& body,
                                                            std::string& error) {
    std::optional<ipc::Response> r;
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        r = call(body, error);
        if (r && r->status != ipc::Status::busy) break;
    }
    return r;
}

namespace {
std::optional<ProgramError> refused(const ipc::Response& r) {
    if (r.status == ipc::Status::ok) return std::nullopt;
    // Still `busy` after the retry: the data plane cannot do it now (a stalled worker).
    return ProgramError{r.status == ipc::Status::busy, r.status,
                        std::string(ipc::to_string(r.status)) + ": " + r.error};
}
}  // namespace

std::optional<ProgramError> DataplaneLink::add_session(const SessionSpec& spec) {
    std::string error;
    auto r = call_idempotent(ipc::AddSessionRequest{spec}, error);
    if (!r) return ProgramError{true, ipc::Status::internal, error};
    if (r->status == ipc::Status::busy) {
        // Control reports the add as failed, so the data plane must not keep it either:
        // the remove queues behind the install in the worker's order, and undoes it
        // whenever the worker gets there.  Its answer does not matter (reconcile
        // removes what is left).
        std::string ignored;
        call(ipc::RemoveSessionRequest{spec.id}, ignored);
    }
    return refused(*r);
}

std::optional<ProgramError> DataplaneLink::remove_session(uint64_t id) {
    std::string error;
    auto r = call_idempotent(ipc::RemoveSessionRequest{id}, error);
    if (!r) return ProgramError{true, ipc::Status::internal, error};
    if (r->status == ipc::Status::not_found) return std::nullopt;  // gone: what was asked
    return refused(*r);
}

std::optional<ProgramError> DataplaneLink::update_session(const SessionUpdate& update) {
    std::string error;
    auto r = call_idempotent(ipc::UpdateSessionRequest{update}, error);  // same values: ok
    if (!r) return ProgramError{true, ipc::Status::internal, error};
    return refused(*r);
}

std::optional<std::vector<SessionStats>> DataplaneLink::list_sessions() {
    std::vector<SessionStats> all;
    uint64_t after = 0;
    for (;;) {
        std::string error;
        auto r = call(ipc::ListSessionsRequest{after, ipc::kMaxListPage}, error);
        if (!r || r->status != ipc::Status::ok) return std::nullopt;
        const auto* page = std::get_if<ipc::ListSessionsReply>(&r->body);
        if (!page) return std::nullopt;
        for (const auto& s : page->sessions) {
            after = s.spec.id;
            all.push_back(s);
        }
        if (!page->more || page->sessions.empty()) return all;
    }
}

std::optional<DataplaneHealth> DataplaneLink::health() {
    std::string error;
    auto r = call(ipc::HealthRequest{}, error);
    if (!r || r->status != ipc::Status::ok) return std::nullopt;
    const auto* h = std::get_if<ipc::HealthReply>(&r->body);
    if (!h) return std::nullopt;
    return DataplaneHealth{h->instance_id, h->relay_addresses};
}

}  // namespace relay::control
