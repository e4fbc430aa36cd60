// Reading and validating the node's YAML config (schema: docs/OPERATIONS.md).
//
// yaml-cpp's own conversions are too forgiving for operator input (as<unsigned>
// wraps "-1", as<bool> takes "yes" and "on", as<int> takes a quoted "64"), so
// every value is read from the scalar text here and checked against the
// schema, and every error carries the dotted key path and the 1-based line.
#include "relay/config.hpp"

#include <sys/stat.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <bitset>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <map>
#include <sstream>
#include <string_view>
#include <utility>

#include "relay/control/credentials.hpp"

namespace relay {

ConfigError::ConfigError(std::string file, int line, std::string key, std::string message)
    : std::runtime_error(std::move(message)),
      file_(std::move(file)),
      line_(line),
      key_(std::move(key)) {}

std::string describe(const ConfigError& e) {
    std::string text = e.file();
    if (e.line() > 0) text += ":" + std::to_string(e.line());
    text += ": ";
    if (!e.key().empty()) text += e.key() + ": ";
    text += e.what();
    return text;
}

namespace {

// DPDK's RTE_MAX_LCORE is smaller in most builds; 1024 bounds what a config may name.
constexpr unsigned kMaxLcore = 1024;
constexpr size_t kMaxWorkers = 64;
constexpr size_t kMaxPorts = 16;
constexpr size_t kMaxAddressesPerPort = 64;
// sockaddr_un::sun_path is 108 bytes including the terminating NUL.
constexpr size_t kMaxUnixSocketPath = 107;
constexpr size_t kMaxNetworks = 4096;
// Secret ids are one byte in a token, so a network cannot have more.
constexpr size_t kMaxSecretsPerNetwork = 256;
// Relay ports below 1024 are the well-known services'; a relay session there
// could shadow one on a host that shares the address.
constexpr uint16_t kMinRelayPort = 1024;
// A rate limiter's bucket holds one second's worth (RelaySessionConfig), so a
// byte rate below one full-size packet would never let such a packet through.
constexpr uint64_t kMinBytesPerSecond = 1500;

using LcoreSet = std::bitset<kMaxLcore>;

int line_of(const YAML::Mark& mark) {
    return mark.is_null() ? 0 : mark.line + 1;
}

// A node of the document with the key path and line to report problems with it at.
struct Value {
    YAML::Node node;
    std::string path;
    int line = 0;
};

std::string child_path(const std::string& parent, std::string_view key) {
    return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

std::string item_path(const std::string& parent, size_t index) {
    return parent + "[" + std::to_string(index) + "]";
}

std::string in_quotes(std::string_view text) {
    return "\"" + std::string(text) + "\"";
}

// How a node reads to an operator, for "expected X, got Y" messages.
std::string kind_of(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Null:
            return "nothing (null)";
        case YAML::NodeType::Sequence:
            return "a list";
        case YAML::NodeType::Map:
            return "a map";
        case YAML::NodeType::Scalar:
            return in_quotes(node.Scalar());
        case YAML::NodeType::Undefined:
            break;
    }
    return "nothing";
}

// Only plain (unquoted, untagged) scalars may be numbers or booleans: `"64"` is a string.
bool is_plain_scalar(const YAML::Node& node) {
    return node.IsScalar() && node.Tag() == "?";
}

class Reader {
  public:
    // `text` is the document being read; it must outlive the Reader.
    Reader(std::string source, std::string_view text) : source_(std::move(source)) {
        while (!text.empty()) {
            size_t end = text.find('\n');
            lines_.push_back(text.substr(0, end));
            text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
        }
    }

    [[noreturn]] void fail(int line, const std::string& path, const std::string& message) const {
        throw ConfigError(source_, line, path, message);
    }
    [[noreturn]] void fail(const Value& value, const std::string& message) const {
        fail(value.line, value.path, message);
    }

    std::string read_string(const Value& value) const {
        if (!value.node.IsScalar()) fail(value, "expected a string, got " + kind_of(value.node));
        return value.node.Scalar();
    }

    // Range-checked integer.  Parsed as a wide signed number so that "-1" is an
    // error instead of wrapping to 4294967295.
    int64_t read_integer(const Value& value, int64_t min, int64_t max) const {
        auto number =
            is_plain_scalar(value.node) ? parse_integer(value.node.Scalar()) : std::nullopt;
        if (!number) fail(value, "expected an integer, got " + kind_of(value.node));
        if (*number < min || *number > max) {
            fail(value, "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                            ", got " + value.node.Scalar());
        }
        return *number;
    }

    // YAML 1.2 booleans only: "yes", "on" or 1 are rejected rather than guessed at.
    bool read_bool(const Value& value) const {
        if (is_plain_scalar(value.node)) {
            const std::string& text = value.node.Scalar();
            if (text == "true" || text == "True" || text == "TRUE") return true;
            if (text == "false" || text == "False" || text == "FALSE") return false;
        }
        fail(value, "expected true or false, got " + kind_of(value.node));
    }

    // The items of a list; an empty value (`key:` with nothing after it) is an empty list.
    std::vector<Value> read_list(const Value& value) const {
        if (value.node.IsNull()) return {};
        if (!value.node.IsSequence()) fail(value, "expected a list, got " + kind_of(value.node));
        std::vector<Value> items;
        for (YAML::Node item : value.node) {
            int line = item.IsNull() ? empty_item_line(item.Mark()) : line_of(item.Mark());
            items.push_back({item, item_path(value.path, items.size()), line});
        }
        return items;
    }

  private:
    // YAML 1.2 core-schema integers: decimal with optional sign, 0x hex, 0o octal.
    // Too-large magnitudes saturate so that the range check reports them.
    static std::optional<int64_t> parse_integer(std::string_view text) {
        bool negative = false;
        int base = 10;
        if (text.starts_with("0x")) {
            base = 16;
            text.remove_prefix(2);
        } else if (text.starts_with("0o")) {
            base = 8;
            text.remove_prefix(2);
        } else if (!text.empty() && (text[0] == '-' || text[0] == '+')) {
            negative = text[0] == '-';
            text.remove_prefix(1);
        }
        if (text.empty()) return std::nullopt;
        uint64_t magnitude = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), magnitude, base);
        if (end != text.data() + text.size()) return std::nullopt;
        constexpr auto kMax = std::numeric_limits<int64_t>::max();
        if (ec == std::errc::result_out_of_range || magnitude > uint64_t(kMax)) {
            return negative ? std::numeric_limits<int64_t>::min() : kMax;
        }
        if (ec != std::errc{}) return std::nullopt;
        return negative ? -int64_t(magnitude) : int64_t(magnitude);
    }

    // yaml-cpp marks an empty list item ("-" alone on its line) at the next
    // token, a line or more later; find the dash the operator wrote instead.
    int empty_item_line(const YAML::Mark& mark) const {
        if (mark.is_null()) return 0;
        auto blank_or_comment = [](std::string_view line) {
            size_t first = line.find_first_not_of(" \t\r");
            return first == std::string_view::npos || line[first] == '#';
        };
        auto bare_dash = [](std::string_view line) {
            size_t dash = line.find_first_not_of(" \t");
            if (dash == std::string_view::npos || line[dash] != '-') return false;
            size_t rest = line.find_first_not_of(" \t\r", dash + 1);
            return rest == std::string_view::npos || line[rest] == '#';
        };
        // Only when the marked token starts its line; "- ~" is marked correctly.
        size_t marked = size_t(mark.line);
        if (marked < lines_.size()) {
            std::string_view before_token = lines_[marked].substr(0, size_t(mark.column));
            if (before_token.find_first_not_of(" \t") != std::string_view::npos)
                return line_of(mark);
        }
        for (size_t i = std::min(marked, lines_.size()); i-- > 0;) {
            if (blank_or_comment(lines_[i])) continue;
            return bare_dash(lines_[i]) ? int(i) + 1 : line_of(mark);
        }
        return line_of(mark);
    }

    std::string source_;
    std::vector<std::string_view> lines_;
};

// One YAML map of the schema: on construction every key is checked to be known
// and not repeated (yaml-cpp keeps duplicate keys silently), then values are
// looked up by name.
class MapReader {
  public:
    MapReader(const Reader& reader, const Value& map, std::initializer_list<std::string_view> known)
        : reader_(reader), map_(map) {
        if (map.node.IsNull()) return;  // `eal:` with nothing after it: all defaults
        if (!map.node.IsMap()) reader.fail(map, "expected a map, got " + kind_of(map.node));
        for (auto it = map.node.begin(); it != map.node.end(); ++it) {
            // Copies: the iterator yields a temporary pair (Nodes are shared handles).
            YAML::Node key = it->first;
            YAML::Node value = it->second;
            int key_line = line_of(key.Mark());
            if (!key.IsScalar()) reader.fail(key_line, map.path, "keys must be plain names");
            const std::string& name = key.Scalar();
            std::string path = child_path(map.path, name);
            if (!is_known(name, known)) {
                reader.fail(key_line, path, "unknown key (known keys: " + join(known) + ")");
            }
            if (fields_.count(name)) reader.fail(key_line, path, "duplicate key");
            // A scalar is reported where it is written; a block list or map, and an
            // empty value (whose mark yaml-cpp puts at the next token), at its key.
            int line = value.IsScalar() ? line_of(value.Mark()) : key_line;
            fields_.emplace(name, Value{value, std::move(path), line});
        }
    }

    std::optional<Value> get(std::string_view name) const {
        auto it = fields_.find(std::string(name));
        if (it == fields_.end()) return std::nullopt;
        return it->second;
    }

    Value require(std::string_view name) const {
        if (auto value = get(name)) return *value;
        reader_.fail(map_.line, child_path(map_.path, name), "missing required key");
    }

  private:
    static bool is_known(const std::string& name, std::initializer_list<std::string_view> known) {
        for (std::string_view k : known) {
            if (name == k) return true;
        }
        return false;
    }
    static std::string join(std::initializer_list<std::string_view> names) {
        std::string text;
        for (std::string_view n : names) text += (text.empty() ? "" : ", ") + std::string(n);
        return text;
    }

    const Reader& reader_;
    Value map_;
    std::map<std::string, Value> fields_;
};

bool all_chars_in(std::string_view text, std::string_view extra_allowed, bool allow_upper) {
    for (char c : text) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (allow_upper && c >= 'A' && c <= 'Z') ||
                  extra_allowed.find(c) != std::string_view::npos;
        if (!ok) return false;
    }
    return true;
}

bool is_power_of_two(int64_t n) {
    return n > 0 && (n & (n - 1)) == 0;
}

// DPDK's -l syntax: comma-separated lcore ids and inclusive ranges, e.g. "0-3,5".
std::optional<LcoreSet> parse_lcore_list(std::string_view text) {
    auto parse_id = [](std::string_view digits) -> std::optional<unsigned> {
        unsigned id = 0;
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
        if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() ||
            id >= kMaxLcore)
            return std::nullopt;
        return id;
    };
    if (text.empty()) return std::nullopt;
    LcoreSet set;
    while (true) {
        size_t comma = text.find(',');
        std::string_view item = text.substr(0, comma);
        size_t dash = item.find('-');
        auto first = parse_id(item.substr(0, dash));
        auto last = dash == std::string_view::npos ? first : parse_id(item.substr(dash + 1));
        if (!first || !last || *first > *last) return std::nullopt;
        for (unsigned id = *first; id <= *last; ++id) set.set(id);
        if (comma == std::string_view::npos) break;
        text.remove_prefix(comma + 1);
    }
    return set;
}

// "0000:03:00.0" or "03:00.0"; normalised to the long form for comparisons.
std::optional<std::string> normalise_pci_address(std::string_view text) {
    auto hex = [](std::string_view s) {
        for (char c : s) {
            if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
        }
        return true;
    };
    std::string full = text.size() == 7 ? "0000:" + std::string(text) : std::string(text);
    std::string_view f = full;
    if (f.size() != 12 || f[4] != ':' || f[7] != ':' || f[10] != '.' || !hex(f.substr(0, 4)) ||
        !hex(f.substr(5, 2)) || !hex(f.substr(8, 2)) || f[11] < '0' || f[11] > '7')
        return std::nullopt;
    for (char& c : full) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return full;
}

std::string lcore_list_text(const std::string& lcores) {
    return "dataplane.eal.lcores " + in_quotes(lcores);
}

// Host bits of `ip` within `prefix` all 0 (network) or all 1 (broadcast); /31 and /32 have none.
std::optional<std::string> special_address_in(Ipv4 ip, const Ipv4Prefix& prefix) {
    if (prefix.len > 30) return std::nullopt;
    uint32_t host = ip & ~prefix.mask();
    std::string network = format_prefix(Ipv4Prefix{ip & prefix.mask(), prefix.len});
    if (host == 0) return "the network address of " + network;
    if (host == ~prefix.mask()) return "the broadcast address of " + network;
    return std::nullopt;
}

std::optional<std::string> relay_address_problem(const Ipv4Prefix& prefix) {
    Ipv4 ip = prefix.addr;
    uint32_t first_octet = ip >> 24;
    if (prefix.len < 1) return std::string("prefix length must be between 1 and 32");
    if (first_octet == 0) return std::string("0.0.0.0/8 addresses cannot be used");
    if (first_octet == 127) return std::string("loopback addresses cannot be used");
    if (first_octet >= 224 && first_octet < 240)
        return std::string("multicast addresses cannot be used");
    if (ip == 0xffffffff) return std::string("the broadcast address cannot be used");
    if (first_octet >= 240) return std::string("reserved (240.0.0.0/4) addresses cannot be used");
    if (auto special = special_address_in(ip, prefix)) return "address is " + *special;
    return std::nullopt;
}

// What earlier ports claimed, value -> key path, so that later ports can name the clash.
struct Claims {
    std::map<std::string, std::string> names;
    std::map<std::string, std::string> devices;
    std::map<Ipv4, std::string> addresses;
};

class ConfigParser {
  public:
    ConfigParser(const std::string& source, std::string_view text) : reader_(source, text) {}

    Config parse(const YAML::Node& root) {
        Config config;
        MapReader top(reader_, Value{root, "", line_of(root.Mark())},
                      {"node", "dataplane", "control"});
        if (auto node = top.get("node")) config.node = parse_node(*node);
        config.dataplane = parse_dataplane(top.require("dataplane"));
        // Without the section the file describes a data plane alone, as before
        // control existed; `relay run` then starts only relay-dataplane.
        if (auto control = top.get("control")) {
            config.control = parse_control(*control, config.dataplane);
            config.has_control = true;
        }
        return config;
    }

  private:
    NodeConfig parse_node(const Value& value) {
        MapReader map(reader_, value, {"name"});
        NodeConfig node;
        if (auto name = map.get("name")) {
            node.name = reader_.read_string(*name);
            if (node.name.empty() || node.name.size() > 64 || !all_chars_in(node.name, "._-", true))
                reader_.fail(*name, "must be 1 to 64 characters of A-Z a-z 0-9 . _ -");
        }
        return node;
    }

    DataplaneConfig parse_dataplane(const Value& value) {
        MapReader map(reader_, value,
                      {"eal", "workers", "ports", "burst_size", "idle_sleep_max_us", "mbufs",
                       "max_sessions", "arp_cache_ttl_s", "ipc_socket", "metrics_listen"});
        DataplaneConfig dp;
        LcoreSet lcores;
        if (auto eal = map.get("eal")) {
            dp.eal = parse_eal(*eal, lcores);
        } else {
            dp.eal =
                parse_eal(Value{YAML::Node(), child_path(value.path, "eal"), value.line}, lcores);
        }
        dp.workers = parse_workers(map.require("workers"), dp.eal, lcores);
        dp.ports = parse_ports(map.require("ports"), dp.eal);
        if (auto v = map.get("burst_size"))
            dp.burst_size = unsigned(reader_.read_integer(*v, 1, 64));
        if (auto v = map.get("idle_sleep_max_us"))
            dp.idle_sleep_max_us = unsigned(reader_.read_integer(*v, 0, 100000));
        if (auto v = map.get("mbufs"))
            dp.mbufs = unsigned(reader_.read_integer(*v, 1023, 16777215));
        if (auto v = map.get("max_sessions"))
            dp.max_sessions = unsigned(reader_.read_integer(*v, 1, 16777216));
        if (auto v = map.get("arp_cache_ttl_s"))
            dp.arp_cache_ttl_s = unsigned(reader_.read_integer(*v, 10, 86400));
        if (auto v = map.get("ipc_socket")) dp.ipc_socket = read_socket_path(*v);
        if (auto v = map.get("metrics_listen"))
            dp.metrics_listen = read_listen_address(*v, "127.0.0.1:9477");
        return dp;
    }

    std::string read_absolute_path(const Value& value) {
        std::string path = reader_.read_string(value);
        // Relative paths would depend on the directory each program happens to start in.
        if (!path.starts_with('/')) reader_.fail(value, "must be an absolute path");
        return path;
    }

    std::string read_socket_path(const Value& value) {
        std::string path = read_absolute_path(value);
        if (path.size() > kMaxUnixSocketPath)
            reader_.fail(value, "a Unix socket path is limited to " +
                                    std::to_string(kMaxUnixSocketPath) + " bytes");
        return path;
    }

    SocketAddress read_listen_address(const Value& value, const std::string& example) {
        auto address = parse_socket_address(reader_.read_string(value));
        if (!address) reader_.fail(value, "expected IPv4 host:port, e.g. " + example);
        if (address->port == 0) reader_.fail(value, "port must not be 0");
        return *address;
    }

    // The value at `name` of `map`, or a stand-in reported at the section's line
    // when the key is absent (a default that clashes with another key's value).
    static Value value_or_section(const MapReader& map, const Value& section,
                                  std::string_view name) {
        return map.get(name).value_or(
            Value{YAML::Node(), child_path(section.path, name), section.line});
    }

    ControlConfig parse_control(const Value& value, const DataplaneConfig& dp) {
        MapReader map(
            reader_, value,
            {"listen_address", "ports", "key_file", "admin_socket", "metrics_listen",
             "keepalive_interval_s", "peer_timeout_s", "punch_lead_ms", "punch_deadline_ms",
             "promotion_interval_s", "timestamp_window_s", "relay", "limits", "networks"});
        ControlConfig control;
        if (auto v = map.get("listen_address"))
            control.listen_address = read_management_address(*v, dp);
        if (auto v = map.get("ports")) control.ports = read_control_ports(*v);
        // Only the path: a missing key file is relay-control's to report when it
        // starts, so that a config can be checked before `relay keygen` has run.
        if (auto v = map.get("key_file")) control.key_file = read_absolute_path(*v);

        if (auto v = map.get("admin_socket")) control.admin_socket = read_socket_path(*v);
        if (control.admin_socket == dp.ipc_socket)
            reader_.fail(
                value_or_section(map, value, "admin_socket"),
                "socket " + in_quotes(control.admin_socket) + " is also dataplane.ipc_socket");

        if (auto v = map.get("metrics_listen"))
            control.metrics_listen = read_listen_address(*v, "127.0.0.1:9478");
        const SocketAddress& ours = control.metrics_listen;
        const SocketAddress& theirs = dp.metrics_listen;
        // 0.0.0.0 binds every address, so it clashes with any address on the same port.
        if (ours.port == theirs.port && (ours.ip == theirs.ip || ours.ip == 0 || theirs.ip == 0))
            reader_.fail(value_or_section(map, value, "metrics_listen"),
                         format_socket_address(ours) + " clashes with dataplane.metrics_listen " +
                             format_socket_address(theirs) + " (each process serves its own)");

        parse_peer_timing(map, value, control);
        if (auto v = map.get("punch_lead_ms"))
            control.punch_lead_ms = unsigned(reader_.read_integer(*v, 1, 10000));
        if (auto v = map.get("punch_deadline_ms"))
            control.punch_deadline_ms = unsigned(reader_.read_integer(*v, 100, 60000));
        if (auto v = map.get("promotion_interval_s"))
            control.promotion_interval_s = unsigned(reader_.read_integer(*v, 10, 86400));
        if (auto v = map.get("timestamp_window_s"))
            control.timestamp_window_s = unsigned(reader_.read_integer(*v, 1, 3600));

        if (auto v = map.get("relay")) {
            control.relay = parse_relay_sessions(*v, dp);
        }
        if (auto v = map.get("limits")) control.limits = parse_limits(*v);
        control.networks = parse_networks(map.require("networks"));
        return control;
    }

    Ipv4 read_management_address(const Value& value, const DataplaneConfig& dp) {
        auto ip = parse_ipv4(reader_.read_string(value));
        if (!ip) reader_.fail(value, "expected an IPv4 address, e.g. 192.0.2.5");
        // STUN answers must leave from the address the request came to; a socket
        // bound to 0.0.0.0 lets the kernel pick, and a NAT drops the answer.
        if (*ip == 0)
            reader_.fail(value,
                         "must be one address of this host, not 0.0.0.0 (STUN replies "
                         "must come from the address the peer sent to)");
        uint32_t first_octet = *ip >> 24;
        if (first_octet >= 224) reader_.fail(value, "must be a unicast address");
        for (size_t i = 0; i < dp.ports.size(); ++i) {
            for (const Ipv4Prefix& prefix : dp.ports[i].addresses) {
                // The data plane owns its addresses: the kernel never sees their packets.
                if (prefix.addr == *ip)
                    reader_.fail(value, format_ipv4(*ip) + " is a relay address of " +
                                            item_path("dataplane.ports", i) +
                                            "; control needs the host's management address");
            }
        }
        return *ip;
    }

    std::array<uint16_t, 2> read_control_ports(const Value& value) {
        std::vector<Value> items = reader_.read_list(value);
        // Two ports let a peer compare its mapped address as seen from each, which
        // is how endpoint-dependent mapping (symmetric NAT) is told apart.
        if (items.size() != 2)
            reader_.fail(value, "expected exactly two ports, e.g. [3478, 3479], got " +
                                    std::to_string(items.size()));
        std::array<uint16_t, 2> ports{};
        for (size_t i = 0; i < 2; ++i)
            ports[i] = uint16_t(reader_.read_integer(items[i], 1, 65535));
        if (ports[0] == ports[1])
            reader_.fail(items[1],
                         "port " + std::to_string(ports[1]) + " is also " + items[0].path);
        return ports;
    }

    void parse_peer_timing(const MapReader& map, const Value& section, ControlConfig& control) {
        std::optional<Value> keepalive = map.get("keepalive_interval_s");
        std::optional<Value> timeout = map.get("peer_timeout_s");
        // RFC 4787 lets a NAT forget an idle UDP mapping after 2 minutes (many do
        // after 30 s); a longer interval could not keep the mapping open.
        if (keepalive)
            control.keepalive_interval_s = unsigned(reader_.read_integer(*keepalive, 1, 120));
        if (timeout) control.peer_timeout_s = unsigned(reader_.read_integer(*timeout, 3, 86400));
        // A peer must survive one lost keepalive: it is forgotten only after at
        // least two intervals passed in silence.
        if (control.peer_timeout_s <= 2 * control.keepalive_interval_s) {
            std::string rule = "peer_timeout_s (" + std::to_string(control.peer_timeout_s) +
                               ") must be more than twice keepalive_interval_s (" +
                               std::to_string(control.keepalive_interval_s) +
                               "), so that one lost keepalive does not make control forget a peer";
            reader_.fail(timeout
                             ? *timeout
                             : keepalive.value_or(value_or_section(map, section, "peer_timeout_s")),
                         rule);
        }
    }

    RelaySessionConfig parse_relay_sessions(const Value& value, const DataplaneConfig& dp) {
        MapReader map(reader_, value,
                      {"address", "ports", "idle_timeout_s", "pin_source_port", "packets_per_s",
                       "bytes_per_s"});
        RelaySessionConfig relay;
        if (auto v = map.get("address")) relay.relay_address = read_relay_address(*v, dp);
        if (auto v = map.get("ports")) {
            auto range = parse_port_range(reader_.read_string(*v));
            if (!range) reader_.fail(*v, "expected a port range MIN-MAX, e.g. 40000-49999");
            auto [min, max] = *range;
            if (min < kMinRelayPort || max < kMinRelayPort || max > 65535)
                reader_.fail(
                    *v, "ports must be between " + std::to_string(kMinRelayPort) + " and 65535");
            if (min > max)
                reader_.fail(*v, "the range is reversed: " + std::to_string(min) + " > " +
                                     std::to_string(max));
            relay.port_min = uint16_t(min);
            relay.port_max = uint16_t(max);
        }
        if (auto v = map.get("idle_timeout_s"))
            relay.idle_timeout_s = uint32_t(reader_.read_integer(*v, 1, 86400));
        if (auto v = map.get("pin_source_port")) relay.pin_source_port = reader_.read_bool(*v);
        if (auto v = map.get("packets_per_s"))
            relay.packets_per_s = uint64_t(reader_.read_integer(*v, 0, 1000000000));
        if (auto v = map.get("bytes_per_s")) {
            relay.bytes_per_s = uint64_t(reader_.read_integer(*v, 0, 1000000000000));
            if (relay.bytes_per_s != 0 && relay.bytes_per_s < kMinBytesPerSecond)
                reader_.fail(*v, "must be 0 (unlimited) or at least " +
                                     std::to_string(kMinBytesPerSecond) +
                                     ": the bucket holds one second's worth, so a full-size "
                                     "packet could never pass");
        }
        return relay;
    }

    Ipv4 read_relay_address(const Value& value, const DataplaneConfig& dp) {
        auto ip = parse_ipv4(reader_.read_string(value));
        if (!ip) reader_.fail(value, "expected an IPv4 address, e.g. 198.51.100.10");
        std::string addresses;
        for (const PortConfig& port : dp.ports) {
            for (const Ipv4Prefix& prefix : port.addresses) {
                if (prefix.addr == *ip) return *ip;
                addresses += (addresses.empty() ? "" : ", ") + format_ipv4(prefix.addr);
            }
        }
        reader_.fail(value, format_ipv4(*ip) +
                                " is not one of the data plane's addresses (dataplane.ports[*]."
                                "addresses: " +
                                addresses + ")");
    }

    // "40000-49999"; digits only (the caller checks the range, to say what it is).
    static std::optional<std::pair<uint32_t, uint32_t>> parse_port_range(std::string_view text) {
        auto number = [](std::string_view digits) -> std::optional<uint32_t> {
            uint32_t n = 0;
            auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
            if (digits.empty() || !std::isdigit(static_cast<unsigned char>(digits[0])) ||
                ec != std::errc{} || end != digits.data() + digits.size())
                return std::nullopt;
            return n;
        };
        size_t dash = text.find('-');
        if (dash == std::string_view::npos) return std::nullopt;
        auto min = number(text.substr(0, dash));
        auto max = number(text.substr(dash + 1));
        if (!min || !max) return std::nullopt;
        return std::pair{*min, *max};
    }

    ControlLimits parse_limits(const Value& value) {
        MapReader map(reader_, value,
                      {"sessions_per_peer", "registrations_per_s_per_source",
                       "unauthenticated_per_s_per_source", "unauthenticated_per_s",
                       "requests_per_s_per_peer", "connects_per_s_per_peer", "max_peers"});
        ControlLimits limits;
        if (auto v = map.get("sessions_per_peer"))
            limits.sessions_per_peer = unsigned(reader_.read_integer(*v, 1, 1024));
        if (auto v = map.get("registrations_per_s_per_source"))
            limits.registrations_per_s_per_source = unsigned(reader_.read_integer(*v, 1, 1000000));
        if (auto v = map.get("unauthenticated_per_s_per_source"))
            limits.unauthenticated_per_s_per_source =
                unsigned(reader_.read_integer(*v, 1, 1000000));
        if (auto v = map.get("unauthenticated_per_s"))
            limits.unauthenticated_per_s = unsigned(reader_.read_integer(*v, 1, 10000000));
        if (auto v = map.get("requests_per_s_per_peer"))
            limits.requests_per_s_per_peer = unsigned(reader_.read_integer(*v, 1, 1000000));
        if (auto v = map.get("connects_per_s_per_peer"))
            limits.connects_per_s_per_peer = unsigned(reader_.read_integer(*v, 1, 1000000));
        if (auto v = map.get("max_peers"))
            limits.max_peers = unsigned(reader_.read_integer(*v, 1, 10000000));
        return limits;
    }

    std::vector<NetworkConfig> parse_networks(const Value& value) {
        std::vector<Value> items = reader_.read_list(value);
        if (items.empty()) reader_.fail(value, "at least one network is required");
        if (items.size() > kMaxNetworks)
            reader_.fail(value,
                         "at most " + std::to_string(kMaxNetworks) + " networks are supported");
        std::vector<NetworkConfig> networks;
        std::map<std::string, std::string> names;
        for (const Value& item : items) networks.push_back(parse_network(item, names));
        return networks;
    }

    NetworkConfig parse_network(const Value& value, std::map<std::string, std::string>& names) {
        if (value.node.IsNull()) reader_.fail(value, "expected a map, got " + kind_of(value.node));
        MapReader map(reader_, value, {"name", "max_peers", "secrets", "allowed_peers"});
        NetworkConfig network;
        Value name = map.require("name");
        network.name = reader_.read_string(name);
        if (network.name.empty() || network.name.size() > 32 ||
            !all_chars_in(network.name, "_-", false))
            reader_.fail(name, "must be 1 to 32 characters of a-z 0-9 _ -");
        claim(names, network.name, name, "network");
        if (auto v = map.get("max_peers"))
            network.max_peers = unsigned(reader_.read_integer(*v, 1, 10000000));

        std::optional<Value> secrets = map.get("secrets");
        if (secrets) network.secrets = parse_secrets(*secrets);
        if (auto v = map.get("allowed_peers")) network.allowed_peers = parse_allowed_peers(*v);

        if (network.secrets.empty() && network.allowed_peers.empty())
            reader_.fail(value, "network " + in_quotes(network.name) +
                                    " needs at least one secret (for tokens) or one allowed peer");
        bool any_active = std::any_of(network.secrets.begin(), network.secrets.end(),
                                      [](const NetworkSecretConfig& s) { return !s.retired; });
        if (!any_active && network.allowed_peers.empty())
            reader_.fail(*secrets,
                         "every secret is retired and there are no allowed_peers, so "
                         "no peer could join network " +
                             in_quotes(network.name));
        return network;
    }

    std::vector<NetworkSecretConfig> parse_secrets(const Value& value) {
        std::vector<Value> items = reader_.read_list(value);
        if (items.size() > kMaxSecretsPerNetwork)
            reader_.fail(value, "at most " + std::to_string(kMaxSecretsPerNetwork) +
                                    " secrets per network are supported");
        std::vector<NetworkSecretConfig> secrets;
        std::map<std::string, std::string> ids;
        for (const Value& item : items) {
            if (item.node.IsNull()) reader_.fail(item, "expected a map, got " + kind_of(item.node));
            MapReader map(reader_, item, {"id", "secret", "secret_file", "retired"});
            NetworkSecretConfig secret;
            Value id = map.require("id");
            secret.id = uint8_t(reader_.read_integer(id, 0, 255));
            claim(ids, std::to_string(secret.id), id, "secret id");

            std::optional<Value> inline_value = map.get("secret");
            std::optional<Value> file = map.get("secret_file");
            if (inline_value && file)
                reader_.fail(*file, "give either secret or secret_file, not both");
            if (inline_value) {
                // The message never quotes the value: errors end up in journals.
                secret.value = read_key(*inline_value,
                                        "a base64 secret of 32 bytes "
                                        "(head -c32 /dev/urandom | base64)");
            } else if (file) {
                secret.secret_file = read_absolute_path(*file);
                secret.value = read_secret_file(*file, secret.secret_file);
            } else {
                reader_.fail(item.line, child_path(item.path, "secret"),
                             "missing: give secret (base64) or secret_file");
            }
            if (auto v = map.get("retired")) secret.retired = reader_.read_bool(*v);
            secrets.push_back(secret);
        }
        return secrets;
    }

    std::vector<std::array<uint8_t, 32>> parse_allowed_peers(const Value& value) {
        std::vector<std::array<uint8_t, 32>> peers;
        std::map<std::string, std::string> seen;
        for (const Value& item : reader_.read_list(value)) {
            auto key = read_key(item,
                                "a WireGuard public key (base64 of 32 bytes, as wg pubkey "
                                "prints it)");
            // A repeated key is harmless to control but almost always a paste
            // mistake that hides a missing one.
            auto [it, inserted] = seen.emplace(std::string(key.begin(), key.end()), item.path);
            if (!inserted) reader_.fail(item, "the key is also " + it->second);
            peers.push_back(key);
        }
        return peers;
    }

    // 32 bytes in standard base64 (with padding), the form wg(8) and base64(1) print.
    std::array<uint8_t, 32> read_key(const Value& value, const std::string& expected) {
        auto key = control::key_from_base64(reader_.read_string(value));
        if (!key) reader_.fail(value, "expected " + expected);
        // All zeros is a placeholder left in, never a key anyone generated.
        if (*key == std::array<uint8_t, 32>{}) reader_.fail(value, "must not be all zeros");
        return *key;
    }

    // Read now rather than when relay-control starts, so that check-config
    // catches a missing or unprotected file before a start fails on it.
    std::array<uint8_t, 32> read_secret_file(const Value& value, const std::string& path) {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0)
            reader_.fail(value, "cannot read " + path + ": " + std::strerror(errno));
        if (!S_ISREG(st.st_mode)) reader_.fail(value, path + " is not a regular file");
        // Anyone who can read a network secret can mint tokens for that network.
        if ((st.st_mode & 077) != 0) {
            char mode[8];
            std::snprintf(mode, sizeof mode, "%04o", unsigned(st.st_mode & 07777));
            reader_.fail(value, path + " has mode " + mode +
                                    ", which lets group or others access it; it must be 0600 "
                                    "or stricter (chmod 600 " +
                                    path + ")");
        }
        std::ifstream file(path, std::ios::binary);
        if (!file) reader_.fail(value, "cannot read " + path + ": " + std::strerror(errno));
        std::ostringstream contents;
        contents << file.rdbuf();
        std::string text = contents.str();
        // `base64` and editors end the file with a newline.
        size_t first = text.find_first_not_of(" \t\r\n");
        size_t last = text.find_last_not_of(" \t\r\n");
        text = first == std::string::npos ? "" : text.substr(first, last - first + 1);
        auto key = control::key_from_base64(text);
        if (!key)
            reader_.fail(value, path +
                                    " does not hold a base64 secret of 32 bytes (head -c32 "
                                    "/dev/urandom | base64 > FILE)");
        if (*key == std::array<uint8_t, 32>{})
            reader_.fail(value, path + " holds an all-zero secret");
        return *key;
    }

    EalConfig parse_eal(const Value& value, LcoreSet& lcores) {
        MapReader map(reader_, value,
                      {"lcores", "lcore_cpus", "main_lcore", "hugepages", "memory_mb",
                       "file_prefix", "pci", "allow", "vdevs", "extra_args"});
        EalConfig eal;
        std::optional<Value> lcores_value = map.get("lcores");
        if (lcores_value) eal.lcores = reader_.read_string(*lcores_value);
        auto parsed = parse_lcore_list(eal.lcores);
        if (!parsed) {
            reader_.fail(lcores_value ? *lcores_value : value,
                         "expected DPDK lcore list syntax, e.g. \"0-3,5\" (ids below " +
                             std::to_string(kMaxLcore) + ")");
        }
        lcores = *parsed;
        if (auto v = map.get("lcore_cpus")) {
            eal.lcore_cpus = reader_.read_string(*v);
            if (!parse_lcore_list(eal.lcore_cpus))
                reader_.fail(*v, "expected a CPU list, e.g. \"0-1\" (ids below " +
                                     std::to_string(kMaxLcore) + ")");
        }

        // Without a main_lcore key the default (0) must still be in the list; that
        // mistake is reported where the list was written.
        std::optional<Value> main_lcore_value = map.get("main_lcore");
        if (main_lcore_value)
            eal.main_lcore = unsigned(reader_.read_integer(*main_lcore_value, 0, kMaxLcore - 1));
        Value main_lcore =
            main_lcore_value.value_or(Value{YAML::Node(), child_path(value.path, "main_lcore"),
                                            lcores_value ? lcores_value->line : value.line});
        if (!lcores.test(eal.main_lcore))
            reader_.fail(main_lcore, "lcore " + std::to_string(eal.main_lcore) + " is not in " +
                                         lcore_list_text(eal.lcores));
        if (auto v = map.get("hugepages")) eal.hugepages = reader_.read_bool(*v);
        if (auto v = map.get("memory_mb"))
            eal.memory_mb = unsigned(reader_.read_integer(*v, 64, 1048576));
        if (auto v = map.get("file_prefix")) {
            eal.file_prefix = reader_.read_string(*v);
            // DPDK puts it in Unix socket paths (/var/run/dpdk/<prefix>/mp_socket), whose
            // length is limited, so a long prefix would only fail later inside rte_eal_init.
            if (eal.file_prefix.empty() || eal.file_prefix.size() > 64 ||
                !all_chars_in(eal.file_prefix, "_-", true))
                reader_.fail(*v, "must be 1 to 64 characters of A-Z a-z 0-9 _ -");
        }
        if (auto v = map.get("pci")) eal.pci = reader_.read_bool(*v);
        if (auto v = map.get("allow")) {
            for (const Value& item : reader_.read_list(*v)) {
                std::string entry = reader_.read_string(item);
                // An entry may carry device arguments after a comma ("0000:03:00.0,x=y").
                if (!normalise_pci_address(std::string_view(entry).substr(0, entry.find(','))))
                    reader_.fail(item, "expected a PCI address, e.g. 0000:03:00.0");
                eal.allow.push_back(std::move(entry));
            }
            if (!eal.allow.empty() && !eal.pci)
                reader_.fail(*v, "allow needs pci: true (with pci: false no PCI device is probed)");
        }
        if (auto v = map.get("vdevs")) eal.vdevs = read_non_empty_strings(*v);
        if (auto v = map.get("extra_args")) eal.extra_args = read_non_empty_strings(*v);
        return eal;
    }

    std::vector<std::string> read_non_empty_strings(const Value& list) {
        std::vector<std::string> strings;
        for (const Value& item : reader_.read_list(list)) {
            strings.push_back(reader_.read_string(item));
            if (strings.back().empty()) reader_.fail(item, "must not be empty");
        }
        return strings;
    }

    std::vector<unsigned> parse_workers(const Value& value, const EalConfig& eal,
                                        const LcoreSet& lcores) {
        std::vector<Value> items = reader_.read_list(value);
        if (items.empty()) reader_.fail(value, "at least one worker lcore is required");
        if (items.size() > kMaxWorkers)
            reader_.fail(value,
                         "at most " + std::to_string(kMaxWorkers) + " workers are supported");
        std::vector<unsigned> workers;
        LcoreSet seen;
        for (const Value& item : items) {
            auto lcore = unsigned(reader_.read_integer(item, 0, kMaxLcore - 1));
            if (seen.test(lcore))
                reader_.fail(item, "lcore " + std::to_string(lcore) + " is listed twice");
            if (lcore == eal.main_lcore)
                reader_.fail(item, "lcore " + std::to_string(lcore) +
                                       " is dataplane.eal.main_lcore, which does not poll ports");
            if (!lcores.test(lcore))
                reader_.fail(item, "lcore " + std::to_string(lcore) + " is not in " +
                                       lcore_list_text(eal.lcores));
            seen.set(lcore);
            workers.push_back(lcore);
        }
        return workers;
    }

    std::vector<PortConfig> parse_ports(const Value& value, const EalConfig& eal) {
        std::vector<Value> items = reader_.read_list(value);
        if (items.empty()) reader_.fail(value, "at least one port is required");
        if (items.size() > kMaxPorts)
            reader_.fail(value, "at most " + std::to_string(kMaxPorts) + " ports are supported");
        std::vector<PortConfig> ports;
        Claims claims;
        for (const Value& item : items) ports.push_back(parse_port(item, eal, claims));
        return ports;
    }

    PortConfig parse_port(const Value& value, const EalConfig& eal, Claims& claims) {
        // A bare "-" list item is a mistake, not a port with defaults.
        if (value.node.IsNull()) reader_.fail(value, "expected a map, got " + kind_of(value.node));
        MapReader map(reader_, value,
                      {"name", "device", "mac", "vlan", "addresses", "gateway", "rx_descriptors",
                       "tx_descriptors", "mtu"});
        PortConfig port;

        Value name = map.require("name");
        port.name = reader_.read_string(name);
        if (port.name.empty() || port.name.size() > 32 || !all_chars_in(port.name, "_-", false))
            reader_.fail(name, "must be 1 to 32 characters of a-z 0-9 _ -");
        claim(claims.names, port.name, name, "port name");

        Value device = map.require("device");
        port.device = reader_.read_string(device);
        if (port.device.empty()) reader_.fail(device, "must not be empty");
        check_device_is_probed(port.device, device, eal);
        claim(claims.devices, port.device, device, "device");

        if (auto v = map.get("mac")) {
            auto mac = parse_mac(reader_.read_string(*v));
            if (!mac) reader_.fail(*v, "expected a MAC address, e.g. 02:00:00:00:00:01");
            if (mac->is_zero() || (mac->bytes[0] & 1))
                reader_.fail(*v, "must be a non-zero unicast MAC address");
            port.mac = *mac;
        }
        if (auto v = map.get("vlan")) port.vlan = uint16_t(reader_.read_integer(*v, 0, 4094));

        Value addresses = map.require("addresses");
        std::vector<Value> address_items = reader_.read_list(addresses);
        if (address_items.empty()) reader_.fail(addresses, "at least one address is required");
        if (address_items.size() > kMaxAddressesPerPort)
            reader_.fail(addresses, "at most " + std::to_string(kMaxAddressesPerPort) +
                                        " addresses per port are supported");
        for (const Value& item : address_items) {
            auto prefix = parse_ipv4_prefix(reader_.read_string(item));
            if (!prefix)
                reader_.fail(item,
                             "expected an IPv4 address with prefix length, e.g. 198.51.100.10/24");
            if (auto problem = relay_address_problem(*prefix)) reader_.fail(item, *problem);
            auto [it, inserted] = claims.addresses.emplace(prefix->addr, item.path);
            if (!inserted)
                reader_.fail(item,
                             "address " + format_ipv4(prefix->addr) + " is also " + it->second);
            port.addresses.push_back(*prefix);
        }

        if (auto v = map.get("gateway")) port.gateway = parse_gateway(*v, port.addresses);
        if (auto v = map.get("rx_descriptors")) port.rx_descriptors = read_descriptor_count(*v);
        if (auto v = map.get("tx_descriptors")) port.tx_descriptors = read_descriptor_count(*v);
        if (auto v = map.get("mtu")) port.mtu = uint16_t(reader_.read_integer(*v, 576, 9000));
        return port;
    }

    void claim(std::map<std::string, std::string>& claimed, const std::string& what,
               const Value& value, const std::string& noun) {
        auto [it, inserted] = claimed.emplace(what, value.path);
        if (!inserted) reader_.fail(value, noun + " " + in_quotes(what) + " is also " + it->second);
    }

    // A PCI device that the EAL will not probe can never be found at start-up.
    void check_device_is_probed(const std::string& device, const Value& value,
                                const EalConfig& eal) {
        auto pci_address = normalise_pci_address(device);
        if (!pci_address) return;  // a vdev name; the EAL reports unknown ones itself
        if (!eal.pci) reader_.fail(value, "PCI device needs dataplane.eal.pci: true");
        if (eal.allow.empty()) return;
        for (const std::string& entry : eal.allow) {
            if (normalise_pci_address(std::string_view(entry).substr(0, entry.find(','))) ==
                pci_address)
                return;
        }
        reader_.fail(value, "PCI device is not in dataplane.eal.allow");
    }

    Ipv4 parse_gateway(const Value& value, const std::vector<Ipv4Prefix>& addresses) {
        auto gateway = parse_ipv4(reader_.read_string(value));
        if (!gateway) reader_.fail(value, "expected an IPv4 address, e.g. 198.51.100.1");
        const Ipv4Prefix* on_link = nullptr;
        for (const Ipv4Prefix& prefix : addresses) {
            if (prefix.addr == *gateway)
                reader_.fail(value, "gateway is one of the port's own addresses");
            if (!on_link && prefix.contains(*gateway)) on_link = &prefix;
        }
        if (!on_link) {
            std::string prefixes;
            for (const Ipv4Prefix& prefix : addresses)
                prefixes += (prefixes.empty() ? "" : ", ") + format_prefix(prefix);
            reader_.fail(value, "gateway " + format_ipv4(*gateway) +
                                    " is not inside any of the port's prefixes (" + prefixes + ")");
        }
        if (auto special = special_address_in(*gateway, *on_link))
            reader_.fail(value, "gateway is " + *special);
        return *gateway;
    }

    uint16_t read_descriptor_count(const Value& value) {
        auto count = reader_.read_integer(value, 64, 16384);
        if (!is_power_of_two(count))
            reader_.fail(value, "must be a power of two, got " + std::to_string(count));
        return uint16_t(count);
    }

    Reader reader_;
};

}  // namespace

namespace {

// Records where each document starts and ignores everything else.
class DocumentStarts : public YAML::EventHandler {
  public:
    std::vector<YAML::Mark> starts;

    void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
};

std::string character_at(const std::string& text, const YAML::Mark& mark) {
    size_t line_start = 0;
    for (int line = 0; line < mark.line && line_start != std::string::npos; ++line) {
        line_start = text.find('\n', line_start);
        if (line_start != std::string::npos) ++line_start;
    }
    size_t at = line_start == std::string::npos ? text.size() : line_start + size_t(mark.column);
    return at < text.size() ? in_quotes(std::string(1, text[at])) : "end of file";
}

// The file's one document (a null node when there is none).  Not YAML::LoadAll:
// in yaml-cpp 0.7 a stray "," makes it loop forever adding null documents until
// memory runs out (jbeder/yaml-cpp#1040, fixed upstream after 0.8 by PR #1319).
// Instead the documents are counted with at most two parser calls, then the
// first is loaded.
YAML::Node load_single_document(const std::string& text, const std::string& source) {
    try {
        std::istringstream stream(text);
        YAML::Parser parser(stream);
        DocumentStarts documents;
        if (parser.HandleNextDocument(documents) && parser.HandleNextDocument(documents) &&
            documents.starts.size() >= 2) {
            const YAML::Mark& first = documents.starts[0];
            const YAML::Mark& second = documents.starts[1];
            // A "document" that starts where the previous one did means the parser
            // consumed nothing: it is stuck on a token it cannot use.
            if (second.pos == first.pos)
                throw ConfigError(source, line_of(second), "",
                                  "YAML syntax error: unexpected " + character_at(text, second));
            throw ConfigError(source, line_of(second), "", "only one YAML document is allowed");
        }
        return YAML::Load(text);
    } catch (const YAML::Exception& e) {
        throw ConfigError(source, line_of(e.mark), "", "YAML syntax error: " + e.msg);
    }
}

}  // namespace

Config load_config_text(const std::string& yaml_text, const std::string& source_name) {
    YAML::Node root = load_single_document(yaml_text, source_name);
    if (root.IsNull())
        throw ConfigError(source_name, 0, "dataplane", "missing required key (the file is empty)");
    Config config = ConfigParser(source_name, yaml_text).parse(root);
    config.source = source_name;
    return config;
}

Config load_config_file(const std::string& path) {
    // An ifstream opens a directory happily and then reads nothing from it.
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) throw ConfigError(path, 0, "", "is a directory");
    std::ifstream file(path, std::ios::binary);
    if (!file) throw ConfigError(path, 0, "", std::string("cannot open: ") + std::strerror(errno));
    std::ostringstream text;
    text << file.rdbuf();
    if (file.bad()) throw ConfigError(path, 0, "", "cannot read the file");
    return load_config_text(text.str(), path);
}

std::optional<uint64_t> parse_duration_s(std::string_view text) {
    if (text.size() < 2) return std::nullopt;
    uint64_t unit = 0;
    switch (text.back()) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        default:
            return std::nullopt;
    }
    text.remove_suffix(1);
    // from_chars would take a leading '-'; only digits are a count.
    if (!std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    uint64_t count = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), count);
    if (ec != std::errc{} || end != text.data() + text.size() || count == 0 ||
        count > std::numeric_limits<uint64_t>::max() / unit)
        return std::nullopt;
    return count * unit;
}

std::vector<std::string> eal_arguments(const DataplaneConfig& dp) {
    const EalConfig& eal = dp.eal;
    std::vector<std::string> args;
    if (eal.lcore_cpus.empty()) {
        args = {"-l", eal.lcores};
    } else {
        // Every lcore floats over the given CPUs: DPDK's --lcores "ID@(CPUS),...".
        std::string map;
        for (unsigned id = 0; id < kMaxLcore; ++id)
            if (parse_lcore_list(eal.lcores)->test(id))
                map += (map.empty() ? "" : ",") + std::to_string(id) + "@(" + eal.lcore_cpus + ")";
        args = {"--lcores", map};
    }
    args.insert(args.end(),
                {"--main-lcore", std::to_string(eal.main_lcore), "--file-prefix", eal.file_prefix});
    if (!eal.hugepages) args.push_back("--no-huge");
    args.insert(args.end(), {"-m", std::to_string(eal.memory_mb)});
    if (!eal.pci) {
        args.push_back("--no-pci");
    } else {
        for (const std::string& address : eal.allow) args.insert(args.end(), {"-a", address});
    }
    for (const std::string& vdev : eal.vdevs) args.insert(args.end(), {"--vdev", vdev});
    args.insert(args.end(), eal.extra_args.begin(), eal.extra_args.end());
    return args;
}

}  // namespace relay
