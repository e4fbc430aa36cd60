// `relay`: the operator's command-line tool.  Each subcommand is one function
// in the table below; adding one (run, status, sessions, peers, drain) means
// writing its function and adding a row.
//
// Exit codes: 0 success, 1 the command ran and found a problem (e.g. a bad
// config), 2 the command line itself was wrong.
#include <exception>
#include <iostream>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "relay/config.hpp"
#include "supervisor.hpp"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

using Args = std::span<const std::string>;  // the subcommand's arguments, without its name

struct Subcommand {
    std::string_view name;
    std::string_view arguments;  // synopsis, e.g. "FILE"
    std::string_view summary;
    int (*run)(Args args);
};

int check_config(Args args);
int run(Args args);
int help(Args args);

constexpr Subcommand kSubcommands[] = {
    {"check-config", "FILE", "validate a node config file and summarise it", check_config},
    {"run", "FILE", "run the node's processes from FILE until SIGINT/SIGTERM", run},
    {"help", "[SUBCOMMAND]", "show this help", help},
};

const Subcommand* find_subcommand(std::string_view name) {
    for (const Subcommand& sub : kSubcommands) {
        if (sub.name == name) return &sub;
    }
    return nullptr;
}

void print_usage(std::ostream& out) {
    out << "usage: relay SUBCOMMAND [ARGS...]\n\nsubcommands:\n";
    for (const Subcommand& sub : kSubcommands) {
        std::string synopsis = std::string(sub.name) + " " + std::string(sub.arguments);
        out << "  " << synopsis << std::string(synopsis.size() < 28 ? 28 - synopsis.size() : 1, ' ')
            << sub.summary << "\n";
    }
    out << "\nrelay --help prints this text.  Exit status: 0 ok, 1 failure, 2 usage error.\n";
}

// A wrong command line: say what was wrong, then how to use it, on stderr.
int usage_error(const std::string& problem) {
    std::cerr << "relay: " << problem << "\n\n";
    print_usage(std::cerr);
    return kExitUsage;
}

bool is_help_flag(std::string_view arg) {
    return arg == "--help" || arg == "-h";
}

std::string count(size_t n, std::string_view one, std::string_view many) {
    return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

// "node relay-dev: 1 port (dev0), 1 address, 1 worker (lcores 1)"
std::string summarise(const relay::Config& config) {
    const relay::DataplaneConfig& dp = config.dataplane;
    std::ostringstream port_names;
    size_t addresses = 0;
    for (const relay::PortConfig& port : dp.ports) {
        port_names << (port_names.tellp() > 0 ? ", " : "") << port.name;
        addresses += port.addresses.size();
    }
    std::ostringstream lcores;
    for (unsigned lcore : dp.workers) lcores << (lcores.tellp() > 0 ? "," : "") << lcore;
    std::ostringstream summary;
    summary << "node " << config.node.name << ": " << count(dp.ports.size(), "port", "ports")
            << " (" << port_names.str() << "), " << count(addresses, "address", "addresses") << ", "
            << count(dp.workers.size(), "worker", "workers") << " (lcores " << lcores.str() << ")";
    return summary.str();
}

int check_config(Args args) {
    if (args.size() == 1 && is_help_flag(args[0])) {
        std::cout << "usage: relay check-config FILE\n"
                     "Validates FILE; prints \"FILE: ok\" and a summary, or the first problem\n"
                     "as FILE:LINE: KEY: MESSAGE and exits 1.\n";
        return kExitOk;
    }
    if (args.empty()) return usage_error("check-config: missing FILE");
    if (args.size() > 1) return usage_error("check-config: unexpected argument '" + args[1] + "'");
    const std::string& path = args[0];
    try {
        relay::Config config = relay::load_config_file(path);
        std::cout << path << ": ok\n" << summarise(config) << "\n";
        return kExitOk;
    } catch (const relay::ConfigError& e) {
        std::cerr << relay::describe(e) << "\n";
        return kExitFailure;
    }
}

int run(Args args) {
    if (args.size() == 1 && is_help_flag(args[0])) {
        std::cout << "usage: relay run FILE\n"
                     "Validates FILE, then starts relay-dataplane with it and keeps it running:\n"
                     "a process that dies is restarted (1 s, 2 s, ... up to 30 s apart); one that\n"
                     "fails 3 times right at start stops the node (exit 1).  SIGINT/SIGTERM stop\n"
                     "every process and then relay run (exit 0).\n";
        return kExitOk;
    }
    if (args.empty()) return usage_error("run: missing FILE");
    if (args.size() > 1) return usage_error("run: unexpected argument '" + args[1] + "'");
    const std::string& path = args[0];
    try {
        relay::Config config = relay::load_config_file(path);
        std::cout << "relay run: " << summarise(config) << "\n";
    } catch (const relay::ConfigError& e) {
        std::cerr << relay::describe(e) << "\n";
        return kExitFailure;
    }
    const std::string dataplane = relay::find_program("relay-dataplane", "dataplane");
    if (dataplane.empty()) {
        std::cerr << "relay run: relay-dataplane not found next to relay or in the build tree\n";
        return kExitFailure;
    }
    std::cout.flush();
    return relay::supervise({{"relay-dataplane", {dataplane, "--config", path}}});
}

int help(Args args) {
    if (args.size() > 1) return usage_error("help: unexpected argument '" + args[1] + "'");
    if (args.size() == 1 && !is_help_flag(args[0])) {
        const Subcommand* sub = find_subcommand(args[0]);
        if (!sub) return usage_error("help: unknown subcommand '" + args[0] + "'");
        std::string help_flag = "--help";
        return sub->run(Args(&help_flag, 1));
    }
    print_usage(std::cout);
    return kExitOk;
}

int dispatch(const std::vector<std::string>& argv) {
    if (argv.empty()) return usage_error("missing SUBCOMMAND");
    const std::string& name = argv[0];
    if (is_help_flag(name)) return help({});
    const Subcommand* sub = find_subcommand(name);
    if (!sub) return usage_error("unknown subcommand '" + name + "'");
    return sub->run(Args(argv).subspan(1));
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return dispatch(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const std::exception& e) {
        // Anything else is a bug or the environment (out of memory), not the operator's input.
        std::cerr << "relay: error: " << e.what() << "\n";
        return kExitFailure;
    }
}
