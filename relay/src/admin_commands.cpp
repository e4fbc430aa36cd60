#include "admin_commands.hpp"

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "relay/config.hpp"
#include "relay/ipc/json_socket.hpp"

namespace relay::cli {

namespace {

using nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

struct Options {
    std::string socket = ControlConfig{}.admin_socket;
    bool json = false;
    std::vector<std::string> positional;
};

// [CONFIG] [--socket PATH] [--json]: the socket comes from --socket, else from CONFIG's
// control.admin_socket, else the default.
std::optional<Options> parse(const char* name, Args args, int& exit_code) {
    Options o;
    std::string config;
    for (size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--help" || args[i] == "-h") {
            std::cout
                << "usage: relay " << name
                << " [CONFIG] [--socket PATH] [--json]\n"
                   "Asks relay-control's admin socket (from CONFIG's control.admin_socket, or "
                   "PATH, default /run/relay/control.sock).\n";
            exit_code = kExitOk;
            return std::nullopt;
        }
        if (args[i] == "--json") {
            o.json = true;
        } else if (args[i] == "--socket" && i + 1 < args.size()) {
            o.socket = args[++i];
        } else if (!args[i].empty() && args[i][0] == '-') {
            std::cerr << "relay " << name << ": unknown option '" << args[i] << "'\n";
            exit_code = kExitUsage;
            return std::nullopt;
        } else if (config.empty() && args[i].find(".y") != std::string::npos) {
            config = args[i];
        } else {
            o.positional.push_back(args[i]);
        }
    }
    if (!config.empty()) {
        try {
            o.socket = load_config_file(config).control.admin_socket;
        } catch (const ConfigError& e) {
            std::cerr << describe(e) << "\n";
            exit_code = kExitFailure;
            return std::nullopt;
        }
    }
    return o;
}

std::optional<json> ask(const Options& o, const json& request) {
    auto reply = ipc::json_socket_call(o.socket, request.dump());
    if (!reply) {
        std::cerr << "relay: cannot reach relay-control: " << reply.error() << "\n";
        return std::nullopt;
    }
    json j = json::parse(*reply, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        std::cerr << "relay: relay-control sent a reply that is not JSON\n";
        return std::nullopt;
    }
    if (!j.value("ok", false)) {
        std::cerr << "relay: relay-control: " << j.value("error", std::string("refused")) << "\n";
        return std::nullopt;
    }
    return j;
}

// Every page of a list command, joined.
std::optional<json> ask_all(const Options& o, const std::string& command, const std::string& key) {
    json all = json::array();
    for (size_t offset = 0;;) {
        auto page = ask(o, {{"command", command}, {"offset", offset}});
        if (!page) return std::nullopt;
        for (auto& item : (*page)[key]) all.push_back(item);
        offset = all.size();
        if (offset >= page->value("total", size_t{0}) || (*page)[key].empty()) break;
    }
    return all;
}

std::string text(const json& j, const char* key) {
    const auto it = j.find(key);
    if (it == j.end()) return "";
    return it->is_string() ? it->get<std::string>() : it->dump();
}

}  // namespace

int status_command(Args args) {
    int exit_code = kExitUsage;
    auto o = parse("status", args, exit_code);
    if (!o) return exit_code;
    auto s = ask(*o, {{"command", "status"}});
    if (!s) return kExitFailure;
    if (o->json) {
        std::cout << s->dump(2) << "\n";
        return kExitOk;
    }
    std::cout << "node " << text(*s, "node") << ", up " << text(*s, "uptime_s") << " s"
              << (s->value("draining", false) ? ", DRAINING (no new relay sessions)" : "") << "\n"
              << "server public key " << text(*s, "server_public_key") << "\n"
              << "data plane " << (s->value("dataplane_up", false) ? "up" : "DOWN")
              << ", relay address " << text(*s, "relay_address") << "\n"
              << "peers " << text(*s, "peers") << " " << (*s)["peers_by_nat_class"].dump()
              << ", relay sessions " << text(*s, "relay_sessions") << ", networks "
              << text(*s, "networks") << "\n";
    return kExitOk;
}

int peers_command(Args args) {
    int exit_code = kExitUsage;
    auto o = parse("peers", args, exit_code);
    if (!o) return exit_code;
    auto peers = ask_all(*o, "peers", "peers");
    if (!peers) return kExitFailure;
    if (o->json) {
        std::cout << peers->dump(2) << "\n";
        return kExitOk;
    }
    std::printf("%-45s %-10s %-16s %-22s %-22s %8s %6s\n", "WIREGUARD KEY", "NETWORK", "NAT",
                "REFLEXIVE", "WG REFLEXIVE", "RTT ms", "RELAYS");
    for (const json& p : *peers)
        std::printf("%-45s %-10s %-16s %-22s %-22s %8.1f %6s\n", text(p, "wg_key").c_str(),
                    text(p, "network").c_str(), text(p, "nat_class").c_str(),
                    text(p, "reflexive").c_str(), text(p, "wg_reflexive").c_str(),
                    p.value("rtt_ms", 0.0), text(p, "relay_sessions").c_str());
    return kExitOk;
}

int sessions_command(Args args) {
    int exit_code = kExitUsage;
    auto o = parse("sessions", args, exit_code);
    if (!o) return exit_code;
    auto sessions = ask_all(*o, "sessions", "sessions");
    if (!sessions) return kExitFailure;
    if (o->json) {
        std::cout << sessions->dump(2) << "\n";
        return kExitOk;
    }
    std::printf("%-20s %-21s %-10s %-8s %-22s %-22s %10s %10s\n", "ID", "RELAY", "NETWORK", "STATE",
                "SIDE A", "SIDE B", "A->B pkts", "B->A pkts");
    for (const json& s : *sessions) {
        const json& a = s["sides"][0];
        const json& b = s["sides"][1];
        const std::string state = s.value("adopted", false)        ? "adopted"
                                  : s.value("in_dataplane", false) ? "active"
                                                                   : "missing";
        std::printf("%-20s %-21s %-10s %-8s %-22s %-22s %10s %10s\n", text(s, "id").c_str(),
                    text(s, "relay").c_str(), text(s, "network").c_str(), state.c_str(),
                    text(a, "endpoint").c_str(), text(b, "endpoint").c_str(),
                    text(a, "rx_packets").c_str(), text(b, "rx_packets").c_str());
    }
    return kExitOk;
}

int drain_command(Args args) {
    int exit_code = kExitUsage;
    auto o = parse("drain", args, exit_code);
    if (!o) return exit_code;
    if (o->positional.size() != 1 || (o->positional[0] != "on" && o->positional[0] != "off")) {
        std::cerr << "relay drain: say 'on' (no new relay sessions; existing ones kept) or 'off'\n";
        return kExitUsage;
    }
    auto r = ask(*o, {{"command", "drain"}, {"on", o->positional[0] == "on"}});
    if (!r) return kExitFailure;
    std::cout << (r->value("draining", false) ? "draining: no new relay sessions\n"
                                              : "not draining\n");
    return kExitOk;
}

}  // namespace relay::cli
