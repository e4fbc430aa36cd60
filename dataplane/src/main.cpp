// relay-dataplane: the DPDK poll-mode data plane of a relay node.
//   relay-dataplane --config FILE
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "dataplane.hpp"
#include "relay/config.hpp"

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) {
    g_stop.store(true);
}

int usage(FILE* out, int code) {
    std::fprintf(out,
                 "usage: relay-dataplane --config FILE\n"
                 "  Runs the data plane described by the dataplane section of FILE until\n"
                 "  SIGTERM or SIGINT.\n");
    return code;
}

}  // namespace

int main(int argc, char** argv) {
    std::string config_path;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") return usage(stdout, 0);
        if (arg == "--config" || arg == "-c") {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "relay-dataplane: %s needs a file name\n", arg.c_str());
                return usage(stderr, 2);
            }
            config_path = argv[++i];
        } else {
            std::fprintf(stderr, "relay-dataplane: unknown argument '%s'\n", arg.c_str());
            return usage(stderr, 2);
        }
    }
    if (config_path.empty()) {
        std::fprintf(stderr, "relay-dataplane: --config FILE is required\n");
        return usage(stderr, 2);
    }

    relay::Config config;
    try {
        config = relay::load_config_file(config_path);
    } catch (const relay::ConfigError& e) {
        std::fprintf(stderr, "relay-dataplane: %s\n", relay::describe(e).c_str());
        return 1;
    }

    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    try {
        relay::dp::Dataplane dataplane(config);
        return dataplane.run(g_stop);
    } catch (const std::exception& e) {
        std::fflush(stdout);  // DPDK's own output first, so that the reason comes last
        std::fprintf(stderr, "relay-dataplane: %s\n", e.what());
        return 1;
    }
}
