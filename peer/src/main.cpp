// relay-peer: the peer agent (docs/OPERATIONS.md, "The peer agent").
//   relay-peer run --config FILE        drive the WireGuard interface until SIGINT/SIGTERM
//   relay-peer status (--config FILE | --socket PATH) [--json]
// Exit status: 0 ok, 1 failure, 2 usage error.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent.hpp"
#include "relay/ipc/json_socket.hpp"

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) {
    g_stop.store(true);
}

int usage(const std::string& problem) {
    std::cerr << "relay-peer: " << problem
              << "\nusage: relay-peer run --config FILE\n"
                 "       relay-peer status (--config FILE | --socket PATH) [--json]\n";
    return 2;
}

int status(const std::string& socket_path, bool as_json) {
    auto reply = relay::ipc::json_socket_call(socket_path, R"({"command":"status"})");
    if (!reply) {
        std::cerr << "relay-peer: " << reply.error() << "\n";
        return 1;
    }
    if (as_json) {
        std::cout << *reply << "\n";
        return 0;
    }
    const auto s = nlohmann::json::parse(*reply);
    std::printf(
        "interface %s  key %s\nregistered %s  reflexive %s  wireguard port seen as %s  "
        "NAT %s  rtt %.1f ms\n\n",
        s["interface"].get<std::string>().c_str(), s["public_key"].get<std::string>().c_str(),
        s["registered"].get<bool>() ? "yes" : "no", s["reflexive"].get<std::string>().c_str(),
        s["wg_reflexive"].get<std::string>().c_str(), s["nat_class"].get<std::string>().c_str(),
        s["rtt_ms"].get<double>());
    std::printf("%-46s %-11s %-22s %-8s %s\n", "PEER", "PATH", "ENDPOINT", "SINCE",
                "LAST HANDSHAKE");
    const auto now = static_cast<uint64_t>(std::time(nullptr));
    for (const auto& p : s["peers"]) {
        const uint64_t hs = p["latest_handshake_s"];
        const std::string handshake = hs ? std::to_string(now - hs) + "s ago" : "never";
        std::printf("%-46s %-11s %-22s %-8s %s\n", p["peer"].get<std::string>().c_str(),
                    p["path"].get<std::string>().c_str(), p["endpoint"].get<std::string>().c_str(),
                    (std::to_string(p["since_s"].get<uint64_t>()) + "s").c_str(),
                    handshake.c_str());
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty()) return usage("missing command (run, status)");
    std::string config_path, socket_path;
    bool as_json = false;
    for (size_t i = 1; i < args.size(); ++i) {
        if (args[i] == "--config" && i + 1 < args.size())
            config_path = args[++i];
        else if (args[i] == "--socket" && i + 1 < args.size())
            socket_path = args[++i];
        else if (args[i] == "--json")
            as_json = true;
        else
            return usage("unexpected argument '" + args[i] + "'");
    }
    try {
        if (args[0] == "status") {
            if (socket_path.empty() && config_path.empty())
                return usage("status needs --config or --socket");
            if (socket_path.empty())
                socket_path = relay::peer::load_agent_config(config_path).status_socket;
            return status(socket_path, as_json);
        }
        if (args[0] != "run") return usage("unknown command '" + args[0] + "'");
        if (config_path.empty()) return usage("run needs --config FILE");
        relay::peer::Agent agent(relay::peer::load_agent_config(config_path));
        struct sigaction sa {};
        sa.sa_handler = on_signal;
        sigaction(SIGINT, &sa, nullptr);
        sigaction(SIGTERM, &sa, nullptr);
        signal(SIGPIPE, SIG_IGN);
        agent.run(g_stop);
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "relay-peer: " << e.what() << "\n";
        return 1;
    }
}
