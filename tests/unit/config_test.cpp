// Config loading: the shipped configs, a table of broken snippets (each must
// name the right key path and line), eal_arguments, and the `relay
// check-config` exit codes.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "relay/config.hpp"

namespace relay {
namespace {

namespace fs = std::filesystem;

const std::string kDevConfig = RELAY_SOURCE_DIR "/configs/dev.yaml";
const std::string kBaremetalConfig = RELAY_SOURCE_DIR "/configs/baremetal.yaml";

// A valid config that exercises every key.  The bad cases below are edits of
// it by line number, so the numbers in the comments matter.
const std::vector<std::string> kBaseLines = {
    "node:",                                                            // 1
    "  name: t1",                                                       // 2
    "dataplane:",                                                       // 3
    "  eal:",                                                           // 4
    "    lcores: \"0-2\"",                                              // 5
    "    main_lcore: 0",                                                // 6
    "    hugepages: false",                                             // 7
    "    memory_mb: 512",                                               // 8
    "    file_prefix: relay-test",                                      // 9
    "    pci: false",                                                   // 10
    "    vdevs: [\"net_tap0,iface=rlyt0\", \"net_tap1,iface=rlyt1\"]",  // 11
    "  workers: [1, 2]",                                                // 12
    "  burst_size: 32",                                                 // 13
    "  idle_sleep_max_us: 1000",                                        // 14
    "  mbufs: 8191",                                                    // 15
    "  max_sessions: 65536",                                            // 16
    "  arp_cache_ttl_s: 300",                                           // 17
    "  ipc_socket: /run/relay/test.sock",                               // 18
    "  metrics_listen: 127.0.0.1:9477",                                 // 19
    "  ports:",                                                         // 20
    "    - name: p0",                                                   // 21
    "      device: net_tap0",                                           // 22
    "      vlan: 0",                                                    // 23
    "      addresses: [198.51.100.10/24, 198.51.100.11/24]",            // 24
    "      gateway: 198.51.100.1",                                      // 25
    "      rx_descriptors: 1024",                                       // 26
    "      tx_descriptors: 1024",                                       // 27
    "      mtu: 1500",                                                  // 28
    "    - name: p1",                                                   // 29
    "      device: net_tap1",                                           // 30
    "      addresses:",                                                 // 31
    "        - 203.0.113.10/24",                                        // 32
    "      mac: 02:00:00:00:00:01",                                     // 33
};

std::string join_lines(const std::vector<std::string>& lines) {
    std::string text;
    for (const std::string& line : lines) text += line + "\n";
    return text;
}

const std::string kBase = join_lines(kBaseLines);

// The base with lines first..last (1-based, inclusive) replaced by `text`
// (any number of lines; "" deletes them).  last == first - 1 inserts before `first`.
std::string replace_lines(int first, int last, const std::string& text) {
    std::vector<std::string> lines(kBaseLines.begin(), kBaseLines.begin() + (first - 1));
    std::istringstream replacement(text);
    for (std::string line; std::getline(replacement, line);) lines.push_back(line);
    lines.insert(lines.end(), kBaseLines.begin() + last, kBaseLines.end());
    return join_lines(lines);
}
std::string replace_line(int line, const std::string& text) {
    return replace_lines(line, line, text);
}
std::string insert_after(int line, const std::string& text) {
    return replace_lines(line + 1, line, text);
}

// "[10.0.0.1/16, 10.0.0.2/16, ...]" with `n` distinct addresses.
std::string address_list(int n) {
    std::string list = "[";
    for (int i = 1; i <= n; ++i)
        list += (i > 1 ? ", " : "") + std::string("10.0.") + std::to_string(i / 200) + "." +
                std::to_string(i % 200 + 1) + "/16";
    return list + "]";
}

std::string number_list(int first, int last) {
    std::string list = "[";
    for (int i = first; i <= last; ++i) list += (i > first ? ", " : "") + std::to_string(i);
    return list + "]";
}

std::string many_ports(int n) {
    std::string text =
        "dataplane:\n  eal: {lcores: \"0-1\"}\n  workers: [1]\n  ports:\n";  // ports: line 4
    for (int i = 0; i < n; ++i) {
        std::string id = std::to_string(i);
        text += "    - {name: p" + id + ", device: net_ring" + id + ", addresses: [10.0." + id +
                ".1/24]}\n";
    }
    return text;
}

Config load(const std::string& text) {
    return load_config_text(text, "test.yaml");
}

TEST(ConfigShipped, DevLoads) {
    Config c = load_config_file(kDevConfig);
    EXPECT_EQ(c.source, kDevConfig);
    EXPECT_EQ(c.node.name, "relay-dev");
    const DataplaneConfig& dp = c.dataplane;
    EXPECT_EQ(dp.eal.lcores, "0-1");
    EXPECT_EQ(dp.eal.main_lcore, 0u);
    EXPECT_FALSE(dp.eal.hugepages);
    EXPECT_EQ(dp.eal.memory_mb, 512u);
    EXPECT_EQ(dp.eal.file_prefix, "relay-dev");
    EXPECT_FALSE(dp.eal.pci);
    EXPECT_EQ(dp.eal.vdevs, std::vector<std::string>{"net_tap0,iface=rlydev0"});
    EXPECT_EQ(dp.workers, std::vector<unsigned>{1});
    EXPECT_EQ(dp.idle_sleep_max_us, 1000u);
    EXPECT_EQ(dp.mbufs, 8191u);
    EXPECT_EQ(dp.max_sessions, 65536u);
    EXPECT_EQ(dp.ipc_socket, "/run/relay/dataplane.sock");
    EXPECT_EQ(dp.metrics_listen, (SocketAddress{0x7f000001, 9477}));
    ASSERT_EQ(dp.ports.size(), 1u);
    EXPECT_EQ(dp.ports[0].name, "dev0");
    EXPECT_EQ(dp.ports[0].device, "net_tap0");
    EXPECT_EQ(dp.ports[0].addresses, std::vector<Ipv4Prefix>{(Ipv4Prefix{0xc633640a, 24})});
    EXPECT_EQ(dp.ports[0].gateway, Ipv4{0xc6336401});
}

TEST(ConfigShipped, BaremetalLoads) {
    Config c = load_config_file(kBaremetalConfig);
    const DataplaneConfig& dp = c.dataplane;
    EXPECT_TRUE(dp.eal.hugepages);
    EXPECT_TRUE(dp.eal.pci);
    EXPECT_EQ(dp.eal.memory_mb, 2048u);
    EXPECT_EQ(dp.eal.allow, std::vector<std::string>{"0000:03:00.0"});
    EXPECT_EQ(dp.workers, (std::vector<unsigned>{1, 2, 3, 4}));
    EXPECT_EQ(dp.idle_sleep_max_us, 0u);
    EXPECT_EQ(dp.max_sessions, 1048576u);
    ASSERT_EQ(dp.ports.size(), 1u);
    EXPECT_EQ(dp.ports[0].device, "0000:03:00.0");
    EXPECT_EQ(dp.ports[0].addresses.size(), 2u);
    EXPECT_EQ(dp.ports[0].rx_descriptors, 2048);
}

TEST(ConfigShipped, DevEalArguments) {
    EXPECT_EQ(eal_arguments(load_config_file(kDevConfig).dataplane),
              (std::vector<std::string>{"-l", "0-1", "--main-lcore", "0", "--file-prefix",
                                        "relay-dev", "--no-huge", "-m", "512", "--no-pci", "--vdev",
                                        "net_tap0,iface=rlydev0"}));
}

TEST(ConfigShipped, BaremetalEalArguments) {
    EXPECT_EQ(
        eal_arguments(load_config_file(kBaremetalConfig).dataplane),
        (std::vector<std::string>{"-l", "0-4", "--main-lcore", "0", "--file-prefix", "relay", "-m",
                                  "2048", "-a", "0000:03:00.0", "--log-level=lib.eal:notice"}));
}

TEST(ConfigEal, VdevsAndExtraArgsFollowInOrder) {
    DataplaneConfig dp;
    dp.eal.lcores = "2-3";
    dp.eal.main_lcore = 2;
    dp.eal.hugepages = true;
    dp.eal.pci = true;
    dp.eal.allow = {"0000:03:00.0", "0000:03:00.1"};
    dp.eal.vdevs = {"net_ring0"};
    dp.eal.extra_args = {"--log-level=8"};
    EXPECT_EQ(eal_arguments(dp),
              (std::vector<std::string>{"-l", "2-3", "--main-lcore", "2", "--file-prefix", "relay",
                                        "-m", "512", "-a", "0000:03:00.0", "-a", "0000:03:00.1",
                                        "--vdev", "net_ring0", "--log-level=8"}));
}

TEST(ConfigBase, LoadsEveryKey) {
    Config c = load(kBase);
    EXPECT_EQ(c.source, "test.yaml");
    EXPECT_EQ(c.node.name, "t1");
    ASSERT_EQ(c.dataplane.ports.size(), 2u);
    const PortConfig& p1 = c.dataplane.ports[1];
    EXPECT_EQ(p1.mac, (MacAddr{{0x02, 0, 0, 0, 0, 0x01}}));
    EXPECT_EQ(p1.gateway, std::nullopt);
    EXPECT_EQ(p1.mtu, 1500);  // default
    EXPECT_EQ(c.dataplane.ports[0].addresses.size(), 2u);
}

TEST(ConfigBase, DefaultsForOptionalKeys) {
    Config c = load(
        "dataplane:\n  eal: {lcores: \"0-1\"}\n  workers: [1]\n"
        "  ports: [{name: a, device: net_ring0, addresses: [10.1.2.3/8]}]\n");
    const DataplaneConfig defaults;
    EXPECT_EQ(c.node.name, NodeConfig{}.name);
    EXPECT_EQ(c.dataplane.burst_size, defaults.burst_size);
    EXPECT_EQ(c.dataplane.mbufs, defaults.mbufs);
    EXPECT_EQ(c.dataplane.ipc_socket, defaults.ipc_socket);
    EXPECT_EQ(c.dataplane.metrics_listen, defaults.metrics_listen);
    EXPECT_EQ(c.dataplane.eal.file_prefix, EalConfig{}.file_prefix);
    EXPECT_EQ(c.dataplane.ports[0].rx_descriptors, PortConfig{}.rx_descriptors);
    EXPECT_EQ(c.dataplane.ports[0].vlan, 0);
}

// Values at the edges of their ranges, and forms that must be accepted.
struct GoodCase {
    const char* name;
    std::string yaml;
};

std::ostream& operator<<(std::ostream& out, const GoodCase& c) {
    return out << c.name;
}

class ConfigAccepts : public testing::TestWithParam<GoodCase> {};

TEST_P(ConfigAccepts, Snippet) {
    try {
        load(GetParam().yaml);
    } catch (const ConfigError& e) {
        ADD_FAILURE() << describe(e) << "\n" << GetParam().yaml;
    }
}

INSTANTIATE_TEST_SUITE_P(
    Config, ConfigAccepts,
    testing::Values(
        GoodCase{"vlan_max", replace_line(23, "      vlan: 4094")},
        GoodCase{"burst_min", replace_line(13, "  burst_size: 1")},
        GoodCase{"burst_max", replace_line(13, "  burst_size: 64")},
        GoodCase{"idle_busy_poll", replace_line(14, "  idle_sleep_max_us: 0")},
        GoodCase{"idle_max", replace_line(14, "  idle_sleep_max_us: 100000")},
        GoodCase{"mbufs_min", replace_line(15, "  mbufs: 1023")},
        GoodCase{"mbufs_max", replace_line(15, "  mbufs: 16777215")},
        GoodCase{"sessions_min", replace_line(16, "  max_sessions: 1")},
        GoodCase{"sessions_max", replace_line(16, "  max_sessions: 16777216")},
        GoodCase{"ttl_min", replace_line(17, "  arp_cache_ttl_s: 10")},
        GoodCase{"ttl_max", replace_line(17, "  arp_cache_ttl_s: 86400")},
        GoodCase{"rx_min", replace_line(26, "      rx_descriptors: 64")},
        GoodCase{"tx_max", replace_line(27, "      tx_descriptors: 16384")},
        GoodCase{"mtu_min", replace_line(28, "      mtu: 576")},
        GoodCase{"mtu_max", replace_line(28, "      mtu: 9000")},
        GoodCase{"memory_min", replace_line(8, "    memory_mb: 64")},
        GoodCase{"memory_max", replace_line(8, "    memory_mb: 1048576")},
        GoodCase{"hex_integer", replace_line(13, "  burst_size: 0x20")},
        GoodCase{"numeric_name", replace_line(2, "  name: 123")},
        GoodCase{"quoted_name", replace_line(2, "  name: \"relay.one\"")},
        GoodCase{"capital_bool", replace_line(7, "    hugepages: False")},
        GoodCase{"lcore_list", replace_lines(5, 6, "    lcores: \"0-2,5,7\"\n    main_lcore: 7")},
        GoodCase{"main_lcore_not_zero",
                 replace_lines(5, 6, "    lcores: \"1-3\"\n    main_lcore: 3")},
        GoodCase{"max_workers",
                 replace_lines(5, 12, "    lcores: \"0-64\"\n  workers: " + number_list(1, 64))},
        GoodCase{"bare_address_is_32", replace_line(32, "        - 203.0.113.10")},
        GoodCase{
            "point_to_point_31",
            replace_lines(24, 25, "      addresses: [192.0.2.0/31]\n      gateway: 192.0.2.1")},
        GoodCase{"gateway_in_second_prefix",
                 replace_lines(24, 25,
                               "      addresses: [10.0.0.1/24, 192.0.2.10/24]\n"
                               "      gateway: 192.0.2.1")},
        GoodCase{"max_addresses", replace_lines(24, 25, "      addresses: " + address_list(64))},
        GoodCase{"max_ports", many_ports(16)},
        GoodCase{"pci_short_form",
                 replace_lines(10, 11, "    pci: true\n    allow: [\"03:00.0\"]") +
                     "    - {name: nic, device: \"0000:03:00.0\", addresses: [192.0.2.9/24]}\n"},
        GoodCase{"pci_without_allow_list",
                 replace_line(10, "    pci: true") +
                     "    - {name: nic, device: \"0000:03:00.0\", addresses: [192.0.2.9/24]}\n"},
        GoodCase{"empty_lists", replace_line(11, "    vdevs:\n    extra_args: []")},
        GoodCase{"empty_node_map", replace_lines(1, 2, "node: {}")},
        GoodCase{"comments_and_flow_style",
                 "# comment\ndataplane: {eal: {lcores: '0-1'}, workers: [1],  # trailing\n"
                 "  ports: [{name: a, device: net_ring0, addresses: [10.1.2.3/8]}]}\n"}),
    [](const testing::TestParamInfo<GoodCase>& info) { return std::string(info.param.name); });

// A snippet that must be rejected, with the key path and line the error must name.
struct BadCase {
    const char* name;
    std::string yaml;
    std::string key;
    int line;
};

std::ostream& operator<<(std::ostream& out, const BadCase& c) {
    return out << c.name;
}

class ConfigRejects : public testing::TestWithParam<BadCase> {};

TEST(ConfigEal, LcoreCpusFloatEveryLcoreOverThoseCpus) {
    const Config c = load(
        "dataplane:\n  eal: {lcores: \"0-2\", lcore_cpus: \"0-1\"}\n  workers: [1, 2]\n"
        "  ports:\n    - {name: p0, device: net_ring0, addresses: [10.0.0.1/24]}\n");
    EXPECT_EQ(c.dataplane.eal.lcore_cpus, "0-1");
    const auto args = eal_arguments(c.dataplane);
    ASSERT_GE(args.size(), 2u);
    EXPECT_EQ(args[0], "--lcores");
    EXPECT_EQ(args[1], "0@(0-1),1@(0-1),2@(0-1)");
}

TEST(ConfigEal, BadLcoreCpusNamesTheKey) {
    try {
        load(
            "dataplane:\n  eal:\n    lcores: \"0-1\"\n    lcore_cpus: \"one\"\n"
            "  workers: [1]\n  ports:\n"
            "    - {name: p0, device: net_ring0, addresses: [10.0.0.1/24]}\n");
        ADD_FAILURE() << "accepted a bad lcore_cpus";
    } catch (const ConfigError& e) {
        EXPECT_EQ(e.key(), "dataplane.eal.lcore_cpus") << describe(e);
        EXPECT_EQ(e.line(), 4) << describe(e);
    }
}

TEST_P(ConfigRejects, Snippet) {
    const BadCase& c = GetParam();
    try {
        load(c.yaml);
        ADD_FAILURE() << "accepted:\n" << c.yaml;
    } catch (const ConfigError& e) {
        RecordProperty("error", describe(e));  // in the JUnit XML, to review the messages
        EXPECT_EQ(e.key(), c.key) << describe(e);
        EXPECT_EQ(e.line(), c.line) << describe(e);
        EXPECT_EQ(e.file(), "test.yaml");
        EXPECT_FALSE(std::string(e.what()).empty());
    }
}

const std::string kPort0 = "dataplane.ports[0].";
const std::string kPort1 = "dataplane.ports[1].";
const std::string kEal = "dataplane.eal.";

INSTANTIATE_TEST_SUITE_P(
    Config, ConfigRejects,
    testing::Values(
        // Unknown and repeated keys, at every level.
        BadCase{"unknown_top_level", kBase + "control:\n  admin: /x\n", "control", 34},
        BadCase{"unknown_in_node", replace_line(2, "  nmae: t1"), "node.nmae", 2},
        BadCase{"unknown_in_dataplane", insert_after(13, "  bursts: 3"), "dataplane.bursts", 14},
        BadCase{"unknown_in_eal", insert_after(11, "    hugepage: true"), kEal + "hugepage", 12},
        BadCase{"unknown_in_port", insert_after(28, "      speed: 10000"), kPort0 + "speed", 29},
        BadCase{"duplicate_key", insert_after(13, "  burst_size: 16"), "dataplane.burst_size", 14},

        // Wrong types.
        BadCase{"string_for_number", replace_line(13, "  burst_size: lots"), "dataplane.burst_size",
                13},
        BadCase{"quoted_number", replace_line(13, "  burst_size: \"32\""), "dataplane.burst_size",
                13},
        BadCase{"float_for_integer", replace_line(13, "  burst_size: 3.5"), "dataplane.burst_size",
                13},
        BadCase{"null_for_number", replace_line(13, "  burst_size:"), "dataplane.burst_size", 13},
        BadCase{"list_for_map_node", replace_lines(1, 2, "node: [t1]"), "node", 1},
        BadCase{"scalar_for_map_eal", replace_lines(4, 11, "  eal: default"), "dataplane.eal", 4},
        BadCase{"map_for_list_ports", replace_lines(20, 33, "  ports: {name: p0}"),
                "dataplane.ports", 20},
        BadCase{"scalar_port_item", replace_lines(29, 33, "    - p1"), "dataplane.ports[1]", 29},
        BadCase{"scalar_for_list_workers", replace_line(12, "  workers: 1"), "dataplane.workers",
                12},
        BadCase{"string_worker", replace_line(12, "  workers: [1, two]"), "dataplane.workers[1]",
                12},
        BadCase{"map_for_string", replace_line(2, "  name: {a: 1}"), "node.name", 2},
        BadCase{"null_for_string", replace_line(2, "  name:"), "node.name", 2},
        BadCase{"yes_is_not_bool", replace_line(7, "    hugepages: yes"), kEal + "hugepages", 7},
        BadCase{"number_is_not_bool", replace_line(7, "    hugepages: 1"), kEal + "hugepages", 7},
        BadCase{"quoted_bool", replace_line(7, "    hugepages: \"true\""), kEal + "hugepages", 7},
        BadCase{"scalar_for_list_addresses", replace_line(24, "      addresses: 198.51.100.10/24"),
                kPort0 + "addresses", 24},
        BadCase{"scalar_for_list_vdevs", replace_line(11, "    vdevs: net_tap0"), kEal + "vdevs",
                11},
        BadCase{"empty_extra_arg", insert_after(11, "    extra_args: [\"\"]"),
                kEal + "extra_args[0]", 12},

        // Negative and huge numbers (as<unsigned> would wrap them).
        BadCase{"negative_main_lcore", replace_line(6, "    main_lcore: -1"), kEal + "main_lcore",
                6},
        BadCase{"negative_memory", replace_line(8, "    memory_mb: -512"), kEal + "memory_mb", 8},
        BadCase{"negative_worker", replace_line(12, "  workers: [-1, 2]"), "dataplane.workers[0]",
                12},
        BadCase{"negative_vlan", replace_line(23, "      vlan: -1"), kPort0 + "vlan", 23},
        BadCase{"negative_idle", replace_line(14, "  idle_sleep_max_us: -1"),
                "dataplane.idle_sleep_max_us", 14},
        BadCase{"huge_number", replace_line(16, "  max_sessions: 99999999999999999999999"),
                "dataplane.max_sessions", 16},
        BadCase{"wrapping_number", replace_line(16, "  max_sessions: 4294967297"),
                "dataplane.max_sessions", 16},

        // Ranges.
        BadCase{"vlan_4095", replace_line(23, "      vlan: 4095"), kPort0 + "vlan", 23},
        BadCase{"burst_0", replace_line(13, "  burst_size: 0"), "dataplane.burst_size", 13},
        BadCase{"burst_65", replace_line(13, "  burst_size: 65"), "dataplane.burst_size", 13},
        BadCase{"idle_too_long", replace_line(14, "  idle_sleep_max_us: 100001"),
                "dataplane.idle_sleep_max_us", 14},
        BadCase{"mbufs_too_few", replace_line(15, "  mbufs: 1022"), "dataplane.mbufs", 15},
        BadCase{"mbufs_too_many", replace_line(15, "  mbufs: 16777216"), "dataplane.mbufs", 15},
        BadCase{"sessions_0", replace_line(16, "  max_sessions: 0"), "dataplane.max_sessions", 16},
        BadCase{"sessions_too_many", replace_line(16, "  max_sessions: 16777217"),
                "dataplane.max_sessions", 16},
        BadCase{"ttl_too_short", replace_line(17, "  arp_cache_ttl_s: 9"),
                "dataplane.arp_cache_ttl_s", 17},
        BadCase{"ttl_too_long", replace_line(17, "  arp_cache_ttl_s: 86401"),
                "dataplane.arp_cache_ttl_s", 17},
        BadCase{"rx_too_few", replace_line(26, "      rx_descriptors: 32"),
                kPort0 + "rx_descriptors", 26},
        BadCase{"rx_too_many", replace_line(26, "      rx_descriptors: 32768"),
                kPort0 + "rx_descriptors", 26},
        BadCase{"rx_not_power_of_two", replace_line(26, "      rx_descriptors: 1000"),
                kPort0 + "rx_descriptors", 26},
        BadCase{"tx_not_power_of_two", replace_line(27, "      tx_descriptors: 100"),
                kPort0 + "tx_descriptors", 27},
        BadCase{"mtu_575", replace_line(28, "      mtu: 575"), kPort0 + "mtu", 28},
        BadCase{"mtu_9001", replace_line(28, "      mtu: 9001"), kPort0 + "mtu", 28},
        BadCase{"memory_too_small", replace_line(8, "    memory_mb: 63"), kEal + "memory_mb", 8},
        BadCase{"memory_too_big", replace_line(8, "    memory_mb: 1048577"), kEal + "memory_mb", 8},

        // Workers and lcores.
        BadCase{"no_workers", replace_line(12, "  workers: []"), "dataplane.workers", 12},
        BadCase{"too_many_workers",
                replace_lines(5, 12, "    lcores: \"0-65\"\n  workers: " + number_list(1, 65)),
                "dataplane.workers", 6},
        BadCase{"duplicate_worker", replace_line(12, "  workers: [1, 1]"), "dataplane.workers[1]",
                12},
        BadCase{"worker_1024", replace_line(12, "  workers: [1, 1024]"), "dataplane.workers[1]",
                12},
        BadCase{"worker_is_main_lcore", replace_line(12, "  workers: [0, 1]"),
                "dataplane.workers[0]", 12},
        BadCase{"worker_not_in_lcores", replace_line(12, "  workers: [1, 3]"),
                "dataplane.workers[1]", 12},
        BadCase{"main_lcore_not_in_lcores", replace_line(6, "    main_lcore: 5"),
                kEal + "main_lcore", 6},
        BadCase{"default_main_lcore_not_in_lcores", replace_lines(5, 6, "    lcores: \"1-2\""),
                kEal + "main_lcore", 5},
        BadCase{"lcores_open_range", replace_line(5, "    lcores: \"0-\""), kEal + "lcores", 5},
        BadCase{"lcores_word", replace_line(5, "    lcores: all"), kEal + "lcores", 5},
        BadCase{"lcores_reversed", replace_line(5, "    lcores: \"2-0\""), kEal + "lcores", 5},
        BadCase{"lcores_empty", replace_line(5, "    lcores: \"\""), kEal + "lcores", 5},
        BadCase{"lcores_double_comma", replace_line(5, "    lcores: \"0,,1\""), kEal + "lcores", 5},
        BadCase{"lcores_too_big", replace_line(5, "    lcores: \"0-1024\""), kEal + "lcores", 5},

        // EAL strings.
        BadCase{"empty_file_prefix", replace_line(9, "    file_prefix: \"\""), kEal + "file_prefix",
                9},
        BadCase{"file_prefix_slash", replace_line(9, "    file_prefix: relay/test"),
                kEal + "file_prefix", 9},
        BadCase{"long_file_prefix", replace_line(9, "    file_prefix: " + std::string(65, 'r')),
                kEal + "file_prefix", 9},
        BadCase{"allow_without_pci", insert_after(10, "    allow: [\"0000:03:00.0\"]"),
                kEal + "allow", 11},
        BadCase{"allow_not_pci_address", replace_line(10, "    pci: true\n    allow: [\"03:00\"]"),
                kEal + "allow[0]", 11},
        BadCase{"pci_device_without_pci", replace_line(22, "      device: \"0000:03:00.0\""),
                kPort0 + "device", 22},
        BadCase{"pci_device_not_allowed",
                replace_line(10, "    pci: true\n    allow: [\"0000:03:00.0\"]") +
                    "    - {name: nic, device: \"0000:04:00.0\", addresses: [192.0.2.9/24]}\n",
                "dataplane.ports[2].device", 35},

        // Ports: required keys, names, devices.
        BadCase{"no_ports_key", replace_lines(20, 33, ""), "dataplane.ports", 3},
        BadCase{"empty_ports", replace_lines(20, 33, "  ports: []"), "dataplane.ports", 20},
        BadCase{"too_many_ports", many_ports(17), "dataplane.ports", 4},
        BadCase{"missing_port_name", replace_lines(21, 22, "    - device: net_tap0"),
                kPort0 + "name", 21},
        BadCase{"missing_device", replace_lines(29, 30, "    - name: p1"), kPort1 + "device", 29},
        BadCase{"missing_addresses", replace_lines(31, 32, ""), kPort1 + "addresses", 29},
        BadCase{"empty_addresses", replace_line(24, "      addresses: []"), kPort0 + "addresses",
                24},
        BadCase{"too_many_addresses", replace_lines(24, 25, "      addresses: " + address_list(65)),
                kPort0 + "addresses", 24},
        BadCase{"null_port_item", replace_lines(29, 33, "    -"), "dataplane.ports[1]", 29},
        BadCase{"null_item_before_item", replace_line(32, "        -\n        - 203.0.113.10/24"),
                kPort1 + "addresses[0]", 32},
        BadCase{"explicit_null_item", replace_line(32, "        - ~"), kPort1 + "addresses[0]", 32},
        BadCase{"uppercase_port_name", replace_line(21, "    - name: P0"), kPort0 + "name", 21},
        BadCase{"long_port_name", replace_line(21, "    - name: " + std::string(33, 'a')),
                kPort0 + "name", 21},
        BadCase{"empty_port_name", replace_line(21, "    - name: \"\""), kPort0 + "name", 21},
        BadCase{"duplicate_port_name", replace_line(29, "    - name: p0"), kPort1 + "name", 29},
        BadCase{"duplicate_device", replace_line(30, "      device: net_tap0"), kPort1 + "device",
                30},

        // Addresses.
        BadCase{"address_on_two_ports", replace_line(32, "        - 198.51.100.11/24"),
                kPort1 + "addresses[0]", 32},
        BadCase{"address_twice_on_port",
                replace_line(24, "      addresses: [198.51.100.10/24, 198.51.100.10/25]"),
                kPort0 + "addresses[1]", 24},
        BadCase{"prefix_33", replace_line(32, "        - 203.0.113.10/33"), kPort1 + "addresses[0]",
                32},
        BadCase{"prefix_0", replace_line(32, "        - 203.0.113.10/0"), kPort1 + "addresses[0]",
                32},
        BadCase{"octet_256", replace_line(32, "        - 256.0.113.10/24"), kPort1 + "addresses[0]",
                32},
        BadCase{"ipv6", replace_line(32, "        - 2001:db8::1/64"), kPort1 + "addresses[0]", 32},
        BadCase{"zero_address", replace_line(32, "        - 0.0.0.0/24"), kPort1 + "addresses[0]",
                32},
        BadCase{"multicast_address", replace_line(32, "        - 224.0.0.5/24"),
                kPort1 + "addresses[0]", 32},
        BadCase{"limited_broadcast", replace_line(32, "        - 255.255.255.255/32"),
                kPort1 + "addresses[0]", 32},
        BadCase{"subnet_broadcast", replace_line(32, "        - 203.0.113.255/24"),
                kPort1 + "addresses[0]", 32},
        BadCase{"network_address", replace_line(32, "        - 203.0.113.0/24"),
                kPort1 + "addresses[0]", 32},
        BadCase{"gateway_outside_prefix", replace_line(25, "      gateway: 203.0.113.1"),
                kPort0 + "gateway", 25},
        BadCase{"gateway_is_own_address", replace_line(25, "      gateway: 198.51.100.11"),
                kPort0 + "gateway", 25},
        BadCase{"gateway_is_broadcast", replace_line(25, "      gateway: 198.51.100.255"),
                kPort0 + "gateway", 25},
        BadCase{"gateway_not_address", replace_line(25, "      gateway: 198.51.100"),
                kPort0 + "gateway", 25},
        BadCase{"mac_dashes", replace_line(33, "      mac: 02-00-00-00-00-01"), kPort1 + "mac", 33},
        BadCase{"mac_multicast", replace_line(33, "      mac: 01:00:5e:00:00:01"), kPort1 + "mac",
                33},
        BadCase{"mac_zero", replace_line(33, "      mac: 00:00:00:00:00:00"), kPort1 + "mac", 33},

        // Other dataplane strings.
        BadCase{"relative_ipc_socket", replace_line(18, "  ipc_socket: run/relay.sock"),
                "dataplane.ipc_socket", 18},
        BadCase{"long_ipc_socket", replace_line(18, "  ipc_socket: /" + std::string(107, 's')),
                "dataplane.ipc_socket", 18},
        BadCase{"metrics_no_port", replace_line(19, "  metrics_listen: 127.0.0.1"),
                "dataplane.metrics_listen", 19},
        BadCase{"metrics_port_0", replace_line(19, "  metrics_listen: 127.0.0.1:0"),
                "dataplane.metrics_listen", 19},
        BadCase{"metrics_port_70000", replace_line(19, "  metrics_listen: 127.0.0.1:70000"),
                "dataplane.metrics_listen", 19},
        BadCase{"metrics_hostname", replace_line(19, "  metrics_listen: localhost:9477"),
                "dataplane.metrics_listen", 19},
        BadCase{"node_name_space", replace_line(2, "  name: my relay"), "node.name", 2},

        // Document structure.
        BadCase{"missing_dataplane", "node:\n  name: x\n", "dataplane", 1},
        BadCase{"missing_workers", replace_line(12, ""), "dataplane.workers", 3},
        BadCase{"empty_document", "", "dataplane", 0},
        BadCase{"comment_only_document", "# nothing here\n", "dataplane", 0},
        BadCase{"top_level_list", "- dataplane\n", "", 1},
        BadCase{"syntax_error", replace_line(13, "  burst_size: 3: 2"), "", 13},
        BadCase{"unclosed_flow_list", replace_line(12, "  workers: [1, 2"), "", 13},
        BadCase{"tab_indent", replace_line(13, "\tburst_size: 32"), "", 13},
        BadCase{"two_documents", kBase + "---\nnode: {}\n", "", 34},
        BadCase{"trailing_empty_document", kBase + "---\n", "", 34},
        // yaml-cpp 0.7's LoadAll loops forever on these (jbeder/yaml-cpp#1040).
        BadCase{"stray_comma", ",\n", "", 1},
        BadCase{"stray_comma_before_config", ",# note\n" + kBase, "", 1}),
    [](const testing::TestParamInfo<BadCase>& info) { return std::string(info.param.name); });

TEST(ConfigErrors, MessagesNameTheProblem) {
    auto message_of = [](const std::string& yaml) {
        try {
            load(yaml);
        } catch (const ConfigError& e) {
            return describe(e);
        }
        return std::string("accepted");
    };
    EXPECT_EQ(message_of(replace_line(23, "      vlan: 4095")),
              "test.yaml:23: dataplane.ports[0].vlan: must be between 0 and 4094, got 4095");
    EXPECT_EQ(message_of(replace_line(13, "  burst_size: \"32\"")),
              "test.yaml:13: dataplane.burst_size: expected an integer, got \"32\"");
    EXPECT_NE(message_of(kBase + "control: {}\n").find("unknown key"), std::string::npos);
    EXPECT_NE(message_of(replace_line(29, "    - name: p0")).find("dataplane.ports[0].name"),
              std::string::npos);
}

TEST(ConfigErrors, DescribeFormats) {
    EXPECT_EQ(describe(ConfigError("a.yaml", 7, "dataplane.mbufs", "too few")),
              "a.yaml:7: dataplane.mbufs: too few");
    EXPECT_EQ(describe(ConfigError("a.yaml", 0, "dataplane", "missing")),
              "a.yaml: dataplane: missing");
    EXPECT_EQ(describe(ConfigError("a.yaml", 3, "", "YAML syntax error: x")),
              "a.yaml:3: YAML syntax error: x");
}

TEST(ConfigErrors, MissingFileIsLineZero) {
    try {
        load_config_file("/nonexistent/relay.yaml");
        FAIL() << "loaded a missing file";
    } catch (const ConfigError& e) {
        EXPECT_EQ(e.line(), 0);
        EXPECT_EQ(e.file(), "/nonexistent/relay.yaml");
        EXPECT_EQ(describe(e).rfind("/nonexistent/relay.yaml: ", 0), 0u) << describe(e);
    }
}

// --- `relay check-config`, run as a separate process -------------------------

// A scratch directory removed when the test ends.
class TempDir {
  public:
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "relay-config-test-XXXXXX").string();
        if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    fs::path write(const std::string& name, const std::string& text) const {
        fs::path file = path_ / name;
        std::ofstream(file) << text;
        return file;
    }
    const fs::path& path() const { return path_; }

  private:
    fs::path path_;
};

struct RunResult {
    int exit_code = -1;
    std::string out;
    std::string err;
};

std::string read_file(const fs::path& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

class ConfigCli : public testing::Test {
  protected:
    void SetUp() override {
        // The unit-test binary lives in <build>/tests, the CLI in <build>/relay.
        relay_binary_ =
            fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "relay" / "relay";
        if (!fs::exists(relay_binary_)) GTEST_SKIP() << relay_binary_ << " is not built";
    }

    RunResult run(const std::vector<std::string>& args) const {
        std::string command = "'" + relay_binary_.string() + "'";
        for (const std::string& arg : args) command += " '" + arg + "'";
        fs::path out = tmp_.path() / "stdout", err = tmp_.path() / "stderr";
        command += " >'" + out.string() + "' 2>'" + err.string() + "'";
        int status = std::system(command.c_str());
        RunResult result;
        result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        result.out = read_file(out);
        result.err = read_file(err);
        return result;
    }

    fs::path relay_binary_;
    TempDir tmp_;
};

TEST_F(ConfigCli, ShippedConfigsAreOk) {
    for (const std::string& config : {kDevConfig, kBaremetalConfig}) {
        RunResult r = run({"check-config", config});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        EXPECT_EQ(r.out.rfind(config + ": ok\n", 0), 0u) << r.out;
        EXPECT_NE(r.out.find("port"), std::string::npos) << r.out;
        EXPECT_NE(r.out.find("worker"), std::string::npos) << r.out;
    }
    RunResult dev = run({"check-config", kDevConfig});
    EXPECT_NE(dev.out.find("1 port (dev0), 1 address, 1 worker"), std::string::npos) << dev.out;
}

TEST_F(ConfigCli, BadConfigExitsOneWithLocation) {
    fs::path bad = tmp_.write("bad.yaml", replace_line(23, "      vlan: 5000"));
    RunResult r = run({"check-config", bad.string()});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err.rfind(bad.string() + ":23: dataplane.ports[0].vlan: ", 0), 0u) << r.err;
}

TEST_F(ConfigCli, MissingFileExitsOne) {
    RunResult r = run({"check-config", (tmp_.path() / "absent.yaml").string()});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("absent.yaml: "), std::string::npos) << r.err;
}

TEST_F(ConfigCli, UsageErrorsExitTwo) {
    RunResult none = run({});
    EXPECT_EQ(none.exit_code, 2);
    EXPECT_NE(none.err.find("usage"), std::string::npos) << none.err;

    RunResult unknown = run({"frobnicate"});
    EXPECT_EQ(unknown.exit_code, 2);
    EXPECT_NE(unknown.err.find("frobnicate"), std::string::npos) << unknown.err;

    RunResult no_file = run({"check-config"});
    EXPECT_EQ(no_file.exit_code, 2);
    EXPECT_NE(no_file.err.find("FILE"), std::string::npos) << no_file.err;

    RunResult extra = run({"check-config", kDevConfig, "extra"});
    EXPECT_EQ(extra.exit_code, 2);
    EXPECT_NE(extra.err.find("extra"), std::string::npos) << extra.err;
}

TEST_F(ConfigCli, HelpExitsZero) {
    for (const char* flag : {"--help", "help", "-h"}) {
        RunResult r = run({flag});
        EXPECT_EQ(r.exit_code, 0) << flag;
        EXPECT_NE(r.out.find("check-config"), std::string::npos) << r.out;
    }
}

}  // namespace
}  // namespace relay
