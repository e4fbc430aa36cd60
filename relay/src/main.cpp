// `relay`: the operator's command-line tool.  Each subcommand is one function
// in the table below; adding one (status, sessions, peers, drain) means
// writing its function and adding a row.
//
// Exit codes: 0 success, 1 the command ran and found a problem (e.g. a bad
// config), 2 the command line itself was wrong.
#include <algorithm>
#include <charconv>
#include <ctime>
#include <exception>
#include <iostream>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "relay/config.hpp"
#include "relay/control/credentials.hpp"
#include "admin_commands.hpp"
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
int keygen(Args args);
int pubkey(Args args);
int token(Args args);
int help(Args args);

constexpr Subcommand kSubcommands[] = {
    {"check-config", "FILE", "validate a node config file and summarise it", check_config},
    {"run", "FILE", "run the node's processes from FILE until SIGINT/SIGTERM", run},
    {"keygen", "FILE", "write a new control key pair to FILE and print its public key", keygen},
    {"pubkey", "FILE", "print the public key of a key file", pubkey},
    {"token", "CONFIG --network NAME [--ttl D] [--secret-id N]",
     "issue a token that lets peers join network NAME", token},
    {"status", "[CONFIG] [--socket P] [--json]", "relay-control's state: peers, sessions, data plane",
     relay::cli::status_command},
    {"peers", "[CONFIG] [--socket P] [--json]", "registered peers and their NAT classes",
     relay::cli::peers_command},
    {"sessions", "[CONFIG] [--socket P] [--json]", "relay sessions with their data-plane counters",
     relay::cli::sessions_command},
    {"drain", "on|off [CONFIG] [--socket P]", "stop (or resume) allocating relay sessions",
     relay::cli::drain_command},
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
        // A long synopsis gets the summary on a line of its own, aligned with the others.
        if (synopsis.size() < 28)
            out << "  " << synopsis << std::string(28 - synopsis.size(), ' ');
        else
            out << "  " << synopsis << "\n" << std::string(30, ' ');
        out << sub.summary << "\n";
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
    if (config.has_control) {
        const relay::ControlConfig& control = config.control;
        std::ostringstream network_names;
        for (const relay::NetworkConfig& network : control.networks)
            network_names << (network_names.tellp() > 0 ? ", " : "") << network.name;
        summary << "; control on " << relay::format_ipv4(control.listen_address) << ":"
                << control.ports[0] << "," << control.ports[1] << ", "
                << count(control.networks.size(), "network", "networks") << " ("
                << network_names.str() << ")";
    }
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
                     "Validates FILE, then starts relay-dataplane with it, and relay-control too\n"
                     "when FILE has a control: section, and keeps them running: a process that\n"
                     "dies is restarted (1 s, 2 s, ... up to 30 s apart); one that fails 3 times\n"
                     "right at start stops the node (exit 1).  SIGINT/SIGTERM stop every process\n"
                     "and then relay run (exit 0).\n";
        return kExitOk;
    }
    if (args.empty()) return usage_error("run: missing FILE");
    if (args.size() > 1) return usage_error("run: unexpected argument '" + args[1] + "'");
    const std::string& path = args[0];
    bool has_control = false;
    try {
        relay::Config config = relay::load_config_file(path);
        has_control = config.has_control;
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
    // The data plane first: control programs sessions into it (and keeps trying
    // until its socket answers, so the order is a courtesy, not a requirement).
    std::vector<relay::ChildSpec> children = {{"relay-dataplane", {dataplane, "--config", path}}};
    if (has_control) {
        const std::string control = relay::find_program("relay-control", "control");
        if (control.empty()) {
            // Starting the data plane alone would look like a running node that
            // no peer can register with.
            std::cerr << "relay run: " << path
                      << " has a control: section, but relay-control was not found next to\n"
                         "relay or in the build tree (remove the section to run the data plane "
                         "alone)\n";
            return kExitFailure;
        }
        children.push_back({"relay-control", {control, "--config", path}});
    }
    std::cout.flush();
    return relay::supervise(children);
}

int keygen(Args args) {
    if (args.size() == 1 && is_help_flag(args[0])) {
        std::cout << "usage: relay keygen FILE\n"
                     "Writes a new X25519 key pair's secret key to FILE (mode 0600; an existing\n"
                     "FILE is never overwritten) and prints the public key in base64: the key\n"
                     "peers are configured with.  For control.key_file.\n";
        return kExitOk;
    }
    if (args.empty()) return usage_error("keygen: missing FILE");
    if (args.size() > 1) return usage_error("keygen: unexpected argument '" + args[1] + "'");
    auto pair = relay::control::write_new_key_file(args[0]);
    if (!pair) {
        std::cerr << "relay keygen: " << pair.error() << "\n";
        return kExitFailure;
    }
    std::cout << relay::control::key_to_base64(pair->public_key) << "\n";
    return kExitOk;
}

int pubkey(Args args) {
    if (args.size() == 1 && is_help_flag(args[0])) {
        std::cout << "usage: relay pubkey FILE\n"
                     "Prints the base64 public key of the key file FILE (as written by relay\n"
                     "keygen).  Refuses a file that group or others may access.\n";
        return kExitOk;
    }
    if (args.empty()) return usage_error("pubkey: missing FILE");
    if (args.size() > 1) return usage_error("pubkey: unexpected argument '" + args[1] + "'");
    auto pair = relay::control::read_key_file(args[0]);
    if (!pair) {
        std::cerr << "relay pubkey: " << pair.error() << "\n";
        return kExitFailure;
    }
    std::cout << relay::control::key_to_base64(pair->public_key) << "\n";
    return kExitOk;
}

// What `relay token` was asked for, from its command line.
struct TokenRequest {
    std::string config;
    std::string network;
    uint64_t ttl_s = 24 * 3600;
    std::optional<uint8_t> secret_id;
};

// Parses `relay token`'s arguments; on a usage error returns it in `problem`.
std::optional<TokenRequest> parse_token_args(Args args, std::string& problem) {
    TokenRequest request;
    std::optional<std::string> config, network, ttl, secret_id;
    for (size_t i = 0; i < args.size(); ++i) {
        std::string_view arg = args[i];
        std::optional<std::string>* option = nullptr;
        std::string_view name = arg.substr(0, arg.find('='));
        if (name == "--network") option = &network;
        if (name == "--ttl") option = &ttl;
        if (name == "--secret-id") option = &secret_id;
        if (!option) {
            if (arg.starts_with("-")) {
                problem = "token: unknown option '" + std::string(arg) + "'";
                return std::nullopt;
            }
            if (config) {
                problem = "token: unexpected argument '" + std::string(arg) + "'";
                return std::nullopt;
            }
            config = std::string(arg);
            continue;
        }
        if (*option) {
            problem = "token: " + std::string(name) + " given twice";
            return std::nullopt;
        }
        if (name.size() < arg.size()) {
            *option = std::string(arg.substr(name.size() + 1));  // --name=VALUE
        } else if (i + 1 < args.size()) {
            *option = args[++i];
        } else {
            problem = "token: " + std::string(name) + " needs a value";
            return std::nullopt;
        }
    }
    if (!config) {
        problem = "token: missing CONFIG";
        return std::nullopt;
    }
    if (!network) {
        problem = "token: missing --network NAME";
        return std::nullopt;
    }
    request.config = *config;
    request.network = *network;
    if (ttl) {
        auto seconds = relay::parse_duration_s(*ttl);
        if (!seconds) {
            problem = "token: --ttl '" + *ttl +
                      "' is not a duration: a whole number with s, m, h or d, e.g. 90s, 30m, "
                      "24h, 7d";
            return std::nullopt;
        }
        request.ttl_s = *seconds;
    }
    if (secret_id) {
        unsigned id = 0;
        const std::string& text = *secret_id;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
        if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || id > 255) {
            problem = "token: --secret-id '" + text + "' is not a secret id (0..255)";
            return std::nullopt;
        }
        request.secret_id = uint8_t(id);
    }
    return request;
}

// The secret to sign with: the given id, or the last active one listed (new
// secrets are appended, so that is the newest).  Empty `problem` on success.
const relay::NetworkSecretConfig* choose_secret(const relay::NetworkConfig& network,
                                                std::optional<uint8_t> id, std::string& problem) {
    const std::string name = "network '" + network.name + "'";
    if (network.secrets.empty()) {
        problem = name +
                  " has no secrets (its peers are admitted by allowed_peers), so it "
                  "has no tokens";
        return nullptr;
    }
    if (id) {
        for (const relay::NetworkSecretConfig& secret : network.secrets) {
            if (secret.id != *id) continue;
            if (secret.retired) {
                problem = "secret " + std::to_string(*id) + " of " + name +
                          " is retired: tokens under it are refused";
                return nullptr;
            }
            return &secret;
        }
        std::string ids;
        for (const relay::NetworkSecretConfig& secret : network.secrets)
            ids += (ids.empty() ? "" : ", ") + std::to_string(secret.id);
        problem = name + " has no secret " + std::to_string(*id) + " (its secrets: " + ids + ")";
        return nullptr;
    }
    auto active = std::find_if(network.secrets.rbegin(), network.secrets.rend(),
                               [](const relay::NetworkSecretConfig& s) { return !s.retired; });
    if (active == network.secrets.rend()) {
        problem = "every secret of " + name + " is retired";
        return nullptr;
    }
    return &*active;
}

std::string format_utc(uint64_t unix_s) {
    std::time_t t = std::time_t(unix_s);
    std::tm tm{};
    char text[32] = "?";
    if (gmtime_r(&t, &tm)) std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return text;
}

int token(Args args) {
    if (args.size() == 1 && is_help_flag(args[0])) {
        std::cout
            << "usage: relay token CONFIG --network NAME [--ttl DURATION] [--secret-id N]\n"
               "Prints a token that lets a peer join network NAME of CONFIG's control: section\n"
               "until it expires.  It is signed with secret N of the network, or by default\n"
               "with the last secret listed that is not retired.  DURATION is a whole number\n"
               "with s, m, h or d (90s, 30m, 24h, 7d); the default is 24h.  The token goes to\n"
               "stdout, its network, secret and expiry to stderr.  Reads the network's\n"
               "secret_file, so run it as a user that may.\n";
        return kExitOk;
    }
    std::string problem;
    std::optional<TokenRequest> request = parse_token_args(args, problem);
    if (!request) return usage_error(problem);

    relay::Config config;
    try {
        config = relay::load_config_file(request->config);
    } catch (const relay::ConfigError& e) {
        std::cerr << relay::describe(e) << "\n";
        return kExitFailure;
    }
    if (!config.has_control) {
        std::cerr << "relay token: " << request->config
                  << " has no control: section, so no networks\n";
        return kExitFailure;
    }
    const auto& networks = config.control.networks;
    auto network =
        std::find_if(networks.begin(), networks.end(),
                     [&](const relay::NetworkConfig& n) { return n.name == request->network; });
    if (network == networks.end()) {
        std::string names;
        for (const relay::NetworkConfig& n : networks)
            names += (names.empty() ? "" : ", ") + n.name;
        std::cerr << "relay token: unknown network '" << request->network << "' ("
                  << request->config << " has: " << names << ")\n";
        return kExitFailure;
    }
    const relay::NetworkSecretConfig* secret = choose_secret(*network, request->secret_id, problem);
    if (!secret) {
        std::cerr << "relay token: " << problem << "\n";
        return kExitFailure;
    }
    const uint64_t now = uint64_t(std::time(nullptr));
    if (request->ttl_s > UINT64_MAX - now) {
        std::cerr << "relay token: --ttl is too long\n";
        return kExitFailure;
    }
    relay::control::TokenClaims claims{network->name, secret->id, now + request->ttl_s};
    std::cout << relay::control::issue_token(claims, secret->value) << "\n";
    std::cerr << "relay token: network " << claims.network << ", secret "
              << unsigned(claims.secret_id) << ", expires " << format_utc(claims.expires_unix_s)
              << "\n";
    return kExitOk;
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
