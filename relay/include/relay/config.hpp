// The node's typed configuration, read from one YAML file and shared by every
// program (relay, relay-dataplane, relay-control).  Parsing validates
// every key: an unknown key, a wrong type or an out-of-range value raises
// ConfigError naming the key path and its line.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "relay/net.hpp"

namespace relay {

class ConfigError : public std::runtime_error {
  public:
    // `line` is 1-based; 0 when the problem has no single place (e.g. a missing file).
    ConfigError(std::string file, int line, std::string key, std::string message);
    const std::string& file() const { return file_; }
    int line() const { return line_; }
    const std::string& key() const { return key_; }  // dotted path, e.g. dataplane.ports[0].vlan

  private:
    std::string file_;
    int line_;
    std::string key_;
};

struct EalConfig {
    std::string lcores = "0";  // passed as -l; must include main_lcore and every worker
    // CPUs the lcores run on; empty: lcore i runs on CPU i (-l).  Set, every
    // lcore floats over these CPUs (--lcores), e.g. to run more lcores than a
    // small test machine has CPUs.  Not for production: workers then share CPUs.
    std::string lcore_cpus;
    unsigned main_lcore = 0;              // --main-lcore
    bool hugepages = false;               // false: --no-huge
    unsigned memory_mb = 512;             // -m (required with hugepages: false)
    std::string file_prefix = "relay";    // --file-prefix, distinct per instance on one host
    bool pci = false;                     // false: --no-pci (virtual devices only)
    std::vector<std::string> allow;       // -a PCI addresses (only with pci: true)
    std::vector<std::string> vdevs;       // --vdev arguments, e.g. "net_tap0,iface=rly0"
    std::vector<std::string> extra_args;  // appended verbatim (e.g. "--log-level=lib.eal:debug")
};

struct PortConfig {
    std::string name;            // label in metrics and logs: [a-z0-9_-]{1,32}
    std::string device;          // DPDK device name: a vdev name ("net_tap0") or a PCI address
    std::optional<MacAddr> mac;  // override the device's MAC
    uint16_t vlan = 0;           // 802.1Q VLAN id; 0 = untagged
    std::vector<Ipv4Prefix> addresses;  // relay addresses on this port, with on-link prefix
    std::optional<Ipv4> gateway;        // next hop for off-link destinations
    uint16_t rx_descriptors = 1024;
    uint16_t tx_descriptors = 1024;
    uint16_t mtu = 1500;
};

struct DataplaneConfig {
    EalConfig eal;
    std::vector<unsigned> workers = {0};  // worker lcore ids
    std::vector<PortConfig> ports;
    unsigned burst_size = 32;           // 1..64
    unsigned idle_sleep_max_us = 1000;  // 0 = pure busy polling
    unsigned mbufs = 16383;             // mbufs in the packet pool
    unsigned max_sessions = 65536;      // session table capacity
    unsigned arp_cache_ttl_s = 300;     // neighbour entry lifetime
    std::string ipc_socket = "/run/relay/dataplane.sock";
    SocketAddress metrics_listen{0x7f000001, 9477};
};

struct NodeConfig {
    std::string name = "relay";
};

// One network secret (network tokens are MACed with it).  Exactly one of `secret`
// (base64, 32 bytes; for development configs) and `secret_file` (a file holding the
// base64 secret, mode 0600 or stricter; read when the config is loaded) is set in
// the YAML; after loading, `value` holds the bytes.
struct NetworkSecretConfig {
    uint8_t id = 0;  // named in tokens; unique within the network
    std::array<uint8_t, 32> value{};
    std::string secret_file;  // where it came from, if from a file
    bool retired = false;     // retired: tokens under it are refused (rotation done)
};

// A tenant: peers of one network see only each other.
struct NetworkConfig {
    std::string name;                          // [a-z0-9_-]{1,32}
    std::vector<NetworkSecretConfig> secrets;  // token secrets (may be empty with allowed_peers)
    std::vector<std::array<uint8_t, 32>> allowed_peers;  // static allow-list of WireGuard keys
    unsigned max_peers = 1000;                           // peers registered at once
};

struct ControlLimits {
    unsigned sessions_per_peer = 16;                 // relay sessions a peer may hold at once
    unsigned registrations_per_s_per_source = 20;    // per source IP (new registrations)
    unsigned unauthenticated_per_s_per_source = 50;  // STUN and unopened envelopes, per source IP
    // Key agreements (X25519) for unknown senders and WireGuard probe scans, all sources
    // together: what a flood of self-made keys can make control spend, whatever its sources.
    unsigned unauthenticated_per_s = 100;
    unsigned requests_per_s_per_peer = 20;  // sealed requests of one registered agent
    unsigned connects_per_s_per_peer = 10;  // connects of one registered agent
    unsigned max_peers = 100000;            // all networks together (bounds memory)
};

// The relay sessions control allocates in the data plane.
struct RelaySessionConfig {
    Ipv4 relay_address = 0;     // 0 = the data plane's first address (from its health reply)
    uint16_t port_min = 40000;  // relay ports are taken from [port_min, port_max]
    uint16_t port_max = 49999;
    uint32_t idle_timeout_s = 180;
    // Also expect each side's source *port* where its NAT maps endpoint-independently and
    // kept WireGuard's port (control_core.cpp, expect_sources).  Off by default: a NAT
    // that preserves ports gives WireGuard's socket a port of its own per destination
    // after a clash (Linux masquerade once the host changed its LAN address), and the
    // side would be refused until it registered again.
    bool pin_source_port = false;
    uint64_t packets_per_s = 0;  // per direction; 0 = unlimited
    uint64_t bytes_per_s = 0;
};

struct ControlConfig {
    Ipv4 listen_address = 0x7f000001;              // management address
    std::array<uint16_t, 2> ports = {3478, 3479};  // STUN + product messages, both
    // Server X25519 secret key, mode 0600 (`relay keygen`).  Not opened by config
    // loading: relay-control reads it at start.  State, not configuration, hence
    // /var/lib (writable under the unit's ProtectSystem=full, unlike /etc).
    std::string key_file = "/var/lib/relay/control.key";
    std::string admin_socket = "/run/relay/control.sock";
    SocketAddress metrics_listen{0x7f000001, 9478};
    unsigned keepalive_interval_s = 20;  // told to peers; inside the NAT's 30 s unreplied timeout
    unsigned peer_timeout_s = 75;        // a peer silent this long is forgotten
    unsigned punch_lead_ms = 150;        // margin before the common fire instant
    unsigned punch_deadline_ms = 2500;   // how long a peer waits for the direct handshake
    unsigned promotion_interval_s = 60;  // how often a relayed pair may retry direct
    unsigned timestamp_window_s = 30;    // accepted clock difference of a message
    RelaySessionConfig relay;
    ControlLimits limits;
    std::vector<NetworkConfig> networks;
};

struct Config {
    std::string source;  // file it came from, for messages
    NodeConfig node;
    DataplaneConfig dataplane;
    ControlConfig control;
    bool has_control = false;  // the file has a control: section (relay run then starts control)
};

// Reads and validates a config file.  Throws ConfigError.
Config load_config_file(const std::string& path);
// Same, from text (`source_name` appears in messages).  Throws ConfigError.
Config load_config_text(const std::string& yaml_text, const std::string& source_name = "<text>");

// A duration as operators type it on the command line: a positive whole number
// with a unit s, m, h or d ("90s", "30m", "24h", "7d"), in seconds.  std::nullopt
// for anything else (no unit, zero, overflow).
std::optional<uint64_t> parse_duration_s(std::string_view text);

// "FILE:LINE: KEY: MESSAGE" as printed by `relay check-config`.
std::string describe(const ConfigError& e);

// The EAL argv (without argv[0]) the data plane passes to rte_eal_init.
std::vector<std::string> eal_arguments(const DataplaneConfig& dp);

}  // namespace relay
