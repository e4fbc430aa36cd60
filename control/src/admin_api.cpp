#include "admin_api.hpp"

#include <map>

#include "relay/control/credentials.hpp"

namespace relay::control {

using nlohmann::json;

namespace {

std::string addr(const SocketAddress& a) {
    return format_socket_address(a);
}

json peer_json(const Peer& p, const ControlCore& core, uint64_t now_ms) {
    json locals = json::array();
    for (const auto& l : p.local_addresses) locals.push_back(addr(l));
    return {
        {"wg_key", key_to_base64(p.wg_key)},
        {"agent_key", key_to_base64(p.agent_key)},
        {"network", core.config().control.networks[p.network].name},
        {"nat_class", to_string(p.nat_class)},
        {"reflexive", addr(p.notify_to)},
        {"wg_reflexive", p.wg_reflexive ? addr(*p.wg_reflexive) : ""},
        {"wg_listen_port", p.wg_listen_port},
        {"local_addresses", locals},
        {"rtt_ms", p.rtt_us / 1000.0},
        {"registered_s", (now_ms - p.registered_ms) / 1000},
        {"last_seen_s", (now_ms - p.last_seen_ms) / 1000},
        {"relay_sessions", p.sessions.size()},
    };
}

json side_stats_json(const SideStats& s) {
    return {{"latched", s.latched},
            {"endpoint", s.latched ? addr(s.endpoint) : ""},
            {"rx_packets", s.rx_packets},
            {"rx_bytes", s.rx_bytes},
            {"tx_packets", s.tx_packets},
            {"tx_bytes", s.tx_bytes},
            {"dropped_packets", s.dropped_packets}};
}

// offset/limit paging of a list of n items.
std::pair<size_t, size_t> page(const json& request, size_t n) {
    const size_t offset = request.value("offset", size_t{0});
    const size_t limit = std::min(request.value("limit", kAdminPageMax), kAdminPageMax);
    const size_t begin = std::min(offset, n);
    return {begin, std::min(n, begin + limit)};
}

json error(const std::string& text) {
    return {{"ok", false}, {"error", text}};
}

}  // namespace

json handle_admin(const json& request, ControlCore& core, SessionProgrammer& dataplane,
                  uint64_t now_ms, uint64_t started_ms) {
    if (!request.is_object() || !request.contains("command") || !request["command"].is_string())
        return error("request must be a JSON object with a string \"command\"");
    const std::string command = request["command"];
    if (command == "status") {
        std::map<std::string, size_t> classes;
        for (const auto& [k, p] : core.peers()) ++classes[to_string(p.nat_class)];
        const auto health = dataplane.health();
        return {{"ok", true},
                {"node", core.config().node.name},
                {"server_public_key", key_to_base64(core.server_public_key())},
                {"uptime_s", (now_ms - started_ms) / 1000},
                {"draining", core.draining()},
                {"peers", core.peers().size()},
                {"peers_by_nat_class", classes},
                {"relay_sessions", core.allocations().size()},
                {"relay_address", format_ipv4(core.relay_address())},
                {"dataplane_up", health.has_value()},
                {"networks", core.config().control.networks.size()}};
    }
    if (command == "peers") {
        std::vector<const Peer*> sorted;
        for (const auto& [k, p] : core.peers()) sorted.push_back(&p);
        std::sort(sorted.begin(), sorted.end(),
                  [](const Peer* a, const Peer* b) { return a->registered_ms < b->registered_ms; });
        const auto [begin, end] = page(request, sorted.size());
        json list = json::array();
        for (size_t i = begin; i < end; ++i) list.push_back(peer_json(*sorted[i], core, now_ms));
        return {{"ok", true}, {"total", sorted.size()}, {"offset", begin}, {"peers", list}};
    }
    if (command == "sessions") {
        std::map<uint64_t, SessionStats> live;
        if (auto all = dataplane.list_sessions())
            for (auto& s : *all) live[s.spec.id] = s;
        const auto& allocations = core.allocations();
        const auto [begin, end] = page(request, allocations.size());
        json list = json::array();
        size_t i = 0;
        for (const auto& [id, a] : allocations) {
            if (i++ < begin) continue;
            if (i > end) break;
            json sides = json::array();
            for (size_t s = 0; s < 2; ++s) {
                json side = {{"wg_key", key_to_base64(a.spec.sides[s].public_key)}};
                if (live.count(id)) side.update(side_stats_json(live[id].sides[s]));
                sides.push_back(side);
            }
            list.push_back(
                {{"id", id},
                 {"relay", addr({a.spec.relay_ip, a.spec.relay_port})},
                 {"network", a.adopted ? "" : core.config().control.networks[a.network].name},
                 {"adopted", a.adopted},
                 {"in_dataplane", live.count(id) > 0},
                 {"idle_ms", live.count(id) ? live[id].idle_ms : 0},
                 {"age_s", (now_ms - a.created_ms) / 1000},
                 {"sides", sides}});
        }
        return {{"ok", true}, {"total", allocations.size()}, {"offset", begin}, {"sessions", list}};
    }
    if (command == "drain") {
        if (!request.contains("on") || !request["on"].is_boolean())
            return error("drain needs a boolean \"on\"");
        core.set_draining(request["on"].get<bool>());
        return {{"ok", true}, {"draining", core.draining()}};
    }
    return error("unknown command \"" + command + "\" (status, peers, sessions, drain)");
}

std::vector<uint8_t> handle_admin_datagram(std::span<const uint8_t> in, ControlCore& core,
                                           SessionProgrammer& dataplane, uint64_t now_ms,
                                           uint64_t started_ms) {
    json reply;
    try {
        reply =
            handle_admin(json::parse(in.begin(), in.end()), core, dataplane, now_ms, started_ms);
    } catch (const json::exception& e) {
        reply = error(std::string("bad request: ") + e.what());
    }
    const std::string text = reply.dump();
    return {text.begin(), text.end()};
}

}  // namespace relay::control
