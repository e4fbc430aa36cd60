// relay-control: registration, STUN, NAT classes, rendezvous and relay allocation
// (docs/ARCHITECTURE.md).  Usage: relay-control --config FILE
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "control_server.hpp"
#include "relay/config.hpp"
#include "relay/control/credentials.hpp"

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) {
    g_stop.store(true);
}

int usage(const char* problem) {
    std::fprintf(stderr, "relay-control: %s\nusage: relay-control --config FILE\n", problem);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::string config_path;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::printf(
                "usage: relay-control --config FILE\n"
                "Serves STUN and the control protocol on the control: section's ports.\n");
            return 0;
        }
        if (arg == "--config" && i + 1 < argc) {
            config_path = argv[++i];
        } else {
            return usage(("unexpected argument '" + arg + "'").c_str());
        }
    }
    if (config_path.empty()) return usage("missing --config FILE");

    try {
        const relay::Config config = relay::load_config_file(config_path);
        if (!config.has_control) {
            std::fprintf(stderr, "relay-control: %s has no control: section\n",
                         config_path.c_str());
            return 1;
        }
        auto keys = relay::control::read_key_file(config.control.key_file);
        if (!keys) {
            std::fprintf(stderr, "relay-control: %s\n", keys.error().c_str());
            return 1;
        }
        struct sigaction sa {};
        sa.sa_handler = on_signal;
        sigaction(SIGINT, &sa, nullptr);
        sigaction(SIGTERM, &sa, nullptr);
        signal(SIGPIPE, SIG_IGN);

        relay::control::ControlServer server(config, *keys);
        const auto& c = config.control;
        std::printf(
            "relay-control: listening on %s ports %u and %u, metrics on http://%s/metrics, "
            "admin socket %s\nrelay-control: server public key %s\n",
            relay::format_ipv4(c.listen_address).c_str(), c.ports[0], c.ports[1],
            relay::format_socket_address(c.metrics_listen).c_str(), c.admin_socket.c_str(),
            relay::control::key_to_base64(keys->public_key).c_str());
        std::fflush(stdout);
        server.run(g_stop);
        std::printf("relay-control: stopped\n");
        return 0;
    } catch (const relay::ConfigError& e) {
        std::fprintf(stderr, "%s\n", relay::describe(e).c_str());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "relay-control: %s\n", e.what());
        return 1;
    }
}
