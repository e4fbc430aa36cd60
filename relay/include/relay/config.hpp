// The node's typed configuration, read from one YAML file and shared by every
// program (relay, relay-dataplane, and later relay-control).  Parsing validates
// every key: an unknown key, a wrong type or an out-of-range value raises
// ConfigError naming the key path and its line.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
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

struct Config {
    std::string source;  // file it came from, for messages
    NodeConfig node;
    DataplaneConfig dataplane;
};

// Reads and validates a config file.  Throws ConfigError.
Config load_config_file(const std::string& path);
// Same, from text (`source_name` appears in messages).  Throws ConfigError.
Config load_config_text(const std::string& yaml_text, const std::string& source_name = "<text>");

// "FILE:LINE: KEY: MESSAGE" as printed by `relay check-config`.
std::string describe(const ConfigError& e);

// The EAL argv (without argv[0]) the data plane passes to rte_eal_init.
std::vector<std::string> eal_arguments(const DataplaneConfig& dp);

}  // namespace relay
