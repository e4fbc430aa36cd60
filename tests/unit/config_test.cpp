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
#include "relay/control/credentials.hpp"

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

// `base` with lines first..last (1-based, inclusive) replaced by `text`
// (any number of lines; "" deletes them).  last == first - 1 inserts before `first`.
std::string edit_lines(const std::vector<std::string>& base, int first, int last,
                       const std::string& text) {
    std::vector<std::string> lines(base.begin(), base.begin() + (first - 1));
    std::istringstream replacement(text);
    for (std::string line; std::getline(replacement, line);) lines.push_back(line);
    lines.insert(lines.end(), base.begin() + last, base.end());
    return join_lines(lines);
}
std::string replace_lines(int first, int last, const std::string& text) {
    return edit_lines(kBaseLines, first, last, text);
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
        BadCase{"unknown_top_level", kBase + "controller:\n  admin: /x\n", "controller", 34},
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
    EXPECT_NE(message_of(kBase + "controller: {}\n").find("unknown key"), std::string::npos);
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

// --- The control: section ----------------------------------------------------

// Distinct 32-byte values (bytes 01.., 02.., ...) in standard base64.
const std::string kKey1 = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const std::string kKey2 = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
const std::string kKey3 = "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=";
const std::string kKey4 = "BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ=";
const std::string kKey5 = "BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=";

std::array<uint8_t, 32> filled(uint8_t byte) {
    std::array<uint8_t, 32> key;
    key.fill(byte);
    return key;
}

// kBase (lines 1-33) plus a control section that sets every key; the bad cases
// edit it by line number like the data-plane cases above.
const std::vector<std::string> kControlLines = [] {
    std::vector<std::string> lines = kBaseLines;
    for (const std::string& line : std::vector<std::string>{
             "control:",                                             // 34
             "  listen_address: 192.0.2.5",                          // 35
             "  ports: [3478, 3479]",                                // 36
             "  key_file: /var/lib/relay-test/control.key",          // 37
             "  admin_socket: /run/relay/test-control.sock",         // 38
             "  metrics_listen: 127.0.0.1:9478",                     // 39
             "  keepalive_interval_s: 15",                           // 40
             "  peer_timeout_s: 60",                                 // 41
             "  punch_lead_ms: 200",                                 // 42
             "  punch_deadline_ms: 3000",                            // 43
             "  promotion_interval_s: 120",                          // 44
             "  timestamp_window_s: 20",                             // 45
             "  relay:",                                             // 46
             "    address: 198.51.100.11",                           // 47
             "    ports: 40000-40999",                               // 48
             "    idle_timeout_s: 300",                              // 49
             "    packets_per_s: 10000",                             // 50
             "    bytes_per_s: 12500000",                            // 51
             "  limits:",                                            // 52
             "    sessions_per_peer: 4",                             // 53
             "    registrations_per_s_per_source: 5",                // 54
             "    unauthenticated_per_s_per_source: 30",             // 55
             "    max_peers: 5000",                                  // 56
             "  networks:",                                          // 57
             "    - name: dev",                                      // 58
             "      max_peers: 100",                                 // 59
             "      secrets:",                                       // 60
             "        - id: 1",                                      // 61
             "          secret: " + kKey1,                           // 62
             "          retired: true",                              // 63
             "        - id: 2",                                      // 64
             "          secret: " + kKey2,                           // 65
             "      allowed_peers: [" + kKey3 + ", " + kKey4 + "]",  // 66
             "    - name: lab_2",                                    // 67
             "      allowed_peers:",                                 // 68
             "        - " + kKey5,                                   // 69
         })
        lines.push_back(line);
    return lines;
}();

const std::string kControl = join_lines(kControlLines);

std::string control_lines(int first, int last, const std::string& text) {
    return edit_lines(kControlLines, first, last, text);
}
std::string control_line(int line, const std::string& text) {
    return control_lines(line, line, text);
}

// kBase plus a control section with only what is required.
std::string minimal_control(const std::string& network = "{name: a, secrets: [{id: 0, secret: " +
                                                         kKey1 + "}]}") {
    return kBase + "control:\n  networks: [" + network + "]\n";
}

// The global budget of unauthenticated work and the per-peer limits (line 56 holds them
// and max_peers, so that the other cases keep their line numbers).
const std::string kPeerLimitLines =
    "    unauthenticated_per_s: 250\n"
    "    requests_per_s_per_peer: 7\n"
    "    connects_per_s_per_peer: 3\n"
    "    max_peers: 5000";

TEST(ConfigControl, LoadsBudgetAndPerPeerLimits) {
    Config c = load(control_line(56, kPeerLimitLines));
    EXPECT_EQ(c.control.limits.unauthenticated_per_s, 250u);
    EXPECT_EQ(c.control.limits.requests_per_s_per_peer, 7u);
    EXPECT_EQ(c.control.limits.connects_per_s_per_peer, 3u);
    EXPECT_EQ(c.control.limits.max_peers, 5000u);
}

TEST(ConfigControl, BudgetAndPerPeerLimitsAreValidated) {
    struct Case {
        std::string line;
        std::string path;
        std::string text;
    };
    for (const Case& k : std::vector<Case>{
             {"    unauthenticated_per_s: 0", "control.limits.unauthenticated_per_s",
              "between 1 and 10000000"},
             {"    unauthenticated_per_s: 10000001", "control.limits.unauthenticated_per_s",
              "between 1 and 10000000"},
             {"    unauthenticated_per_s: many", "control.limits.unauthenticated_per_s", "integer"},
             {"    requests_per_s_per_peer: 0", "control.limits.requests_per_s_per_peer",
              "between 1 and 1000000"},
             {"    connects_per_s_per_peer: -1", "control.limits.connects_per_s_per_peer",
              "between 1 and 1000000"},
         }) {
        SCOPED_TRACE(k.line);
        try {
            load(control_line(56, k.line + "\n    max_peers: 5000"));
            ADD_FAILURE() << "accepted";
        } catch (const ConfigError& e) {
            EXPECT_EQ(e.key(), k.path) << describe(e);
            EXPECT_EQ(e.line(), 56) << describe(e);
            EXPECT_NE(std::string(e.what()).find(k.text), std::string::npos) << describe(e);
        }
    }
}

TEST(ConfigControl, LoadsEveryKey) {
    Config c = load(kControl);
    ASSERT_TRUE(c.has_control);
    const ControlConfig& cc = c.control;
    EXPECT_EQ(cc.listen_address, Ipv4{0xc0000205});
    EXPECT_EQ(cc.ports, (std::array<uint16_t, 2>{{3478, 3479}}));
    EXPECT_EQ(cc.key_file, "/var/lib/relay-test/control.key");
    EXPECT_EQ(cc.admin_socket, "/run/relay/test-control.sock");
    EXPECT_EQ(cc.metrics_listen, (SocketAddress{0x7f000001, 9478}));
    EXPECT_EQ(cc.keepalive_interval_s, 15u);
    EXPECT_EQ(cc.peer_timeout_s, 60u);
    EXPECT_EQ(cc.punch_lead_ms, 200u);
    EXPECT_EQ(cc.punch_deadline_ms, 3000u);
    EXPECT_EQ(cc.promotion_interval_s, 120u);
    EXPECT_EQ(cc.timestamp_window_s, 20u);
    EXPECT_EQ(cc.relay.relay_address, Ipv4{0xc633640b});
    EXPECT_EQ(cc.relay.port_min, 40000);
    EXPECT_EQ(cc.relay.port_max, 40999);
    EXPECT_EQ(cc.relay.idle_timeout_s, 300u);
    EXPECT_EQ(cc.relay.packets_per_s, 10000u);
    EXPECT_EQ(cc.relay.bytes_per_s, 12500000u);
    EXPECT_EQ(cc.limits.sessions_per_peer, 4u);
    EXPECT_EQ(cc.limits.registrations_per_s_per_source, 5u);
    EXPECT_EQ(cc.limits.unauthenticated_per_s_per_source, 30u);
    EXPECT_EQ(cc.limits.max_peers, 5000u);
    ASSERT_EQ(cc.networks.size(), 2u);
    const NetworkConfig& dev = cc.networks[0];
    EXPECT_EQ(dev.name, "dev");
    EXPECT_EQ(dev.max_peers, 100u);
    ASSERT_EQ(dev.secrets.size(), 2u);
    EXPECT_EQ(dev.secrets[0].id, 1);
    EXPECT_EQ(dev.secrets[0].value, filled(1));
    EXPECT_TRUE(dev.secrets[0].retired);
    EXPECT_EQ(dev.secrets[0].secret_file, "");
    EXPECT_EQ(dev.secrets[1].id, 2);
    EXPECT_EQ(dev.secrets[1].value, filled(2));
    EXPECT_FALSE(dev.secrets[1].retired);
    EXPECT_EQ(dev.allowed_peers, (std::vector<std::array<uint8_t, 32>>{filled(3), filled(4)}));
    const NetworkConfig& lab = cc.networks[1];
    EXPECT_EQ(lab.name, "lab_2");
    EXPECT_EQ(lab.max_peers, NetworkConfig{}.max_peers);
    EXPECT_TRUE(lab.secrets.empty());
    EXPECT_EQ(lab.allowed_peers, (std::vector<std::array<uint8_t, 32>>{filled(5)}));
}

TEST(ConfigControl, AbsentSectionMeansDataPlaneAlone) {
    Config c = load(kBase);
    EXPECT_FALSE(c.has_control);
    EXPECT_TRUE(c.control.networks.empty());
}

TEST(ConfigControl, DefaultsForOptionalKeys) {
    Config c = load(minimal_control());
    ASSERT_TRUE(c.has_control);
    const ControlConfig defaults;
    const ControlConfig& cc = c.control;
    EXPECT_EQ(cc.listen_address, defaults.listen_address);
    EXPECT_EQ(cc.ports, defaults.ports);
    EXPECT_EQ(cc.key_file, defaults.key_file);
    EXPECT_EQ(cc.admin_socket, defaults.admin_socket);
    EXPECT_EQ(cc.metrics_listen, defaults.metrics_listen);
    EXPECT_EQ(cc.keepalive_interval_s, defaults.keepalive_interval_s);
    EXPECT_EQ(cc.peer_timeout_s, defaults.peer_timeout_s);
    EXPECT_EQ(cc.punch_lead_ms, defaults.punch_lead_ms);
    EXPECT_EQ(cc.punch_deadline_ms, defaults.punch_deadline_ms);
    EXPECT_EQ(cc.promotion_interval_s, defaults.promotion_interval_s);
    EXPECT_EQ(cc.timestamp_window_s, defaults.timestamp_window_s);
    EXPECT_EQ(cc.relay.relay_address, 0u);  // the data plane's first address
    EXPECT_EQ(cc.relay.port_min, defaults.relay.port_min);
    EXPECT_EQ(cc.relay.port_max, defaults.relay.port_max);
    EXPECT_EQ(cc.relay.idle_timeout_s, defaults.relay.idle_timeout_s);
    EXPECT_FALSE(cc.relay.pin_source_port);
    EXPECT_EQ(cc.relay.packets_per_s, 0u);
    EXPECT_EQ(cc.relay.bytes_per_s, 0u);
    EXPECT_EQ(cc.limits.sessions_per_peer, defaults.limits.sessions_per_peer);
    EXPECT_EQ(cc.limits.max_peers, defaults.limits.max_peers);
    EXPECT_EQ(cc.limits.unauthenticated_per_s, defaults.limits.unauthenticated_per_s);
    EXPECT_EQ(cc.limits.requests_per_s_per_peer, defaults.limits.requests_per_s_per_peer);
    EXPECT_EQ(cc.limits.connects_per_s_per_peer, defaults.limits.connects_per_s_per_peer);
    ASSERT_EQ(cc.networks.size(), 1u);
    EXPECT_EQ(cc.networks[0].max_peers, NetworkConfig{}.max_peers);
    ASSERT_EQ(cc.networks[0].secrets.size(), 1u);
    EXPECT_FALSE(cc.networks[0].secrets[0].retired);
    // The defaults themselves obey the rules.
    EXPECT_GT(defaults.peer_timeout_s, 2 * defaults.keepalive_interval_s);
    EXPECT_NE(defaults.metrics_listen, DataplaneConfig{}.metrics_listen);
    EXPECT_NE(defaults.admin_socket, DataplaneConfig{}.ipc_socket);
}

class ConfigControlAccepts : public testing::TestWithParam<GoodCase> {};

TEST_P(ConfigControlAccepts, Snippet) {
    try {
        EXPECT_TRUE(load(GetParam().yaml).has_control);
    } catch (const ConfigError& e) {
        ADD_FAILURE() << describe(e) << "\n" << GetParam().yaml;
    }
}

INSTANTIATE_TEST_SUITE_P(
    Config, ConfigControlAccepts,
    testing::Values(
        GoodCase{"allowed_peers_only",
                 minimal_control("{name: a, allowed_peers: [" + kKey1 + "]}")},
        GoodCase{"retired_secrets_with_allowed_peers",
                 minimal_control("{name: a, allowed_peers: [" + kKey1 +
                                 "], secrets: [{id: 0, "
                                 "secret: " +
                                 kKey2 + ", retired: true}]}")},
        GoodCase{"same_key_in_two_networks", minimal_control("{name: a, allowed_peers: [" + kKey1 +
                                                             "]}, {name: b, "
                                                             "allowed_peers: [" +
                                                             kKey1 + "]}")},
        GoodCase{"secret_id_0_and_255",
                 minimal_control("{name: a, secrets: [{id: 0, secret: " + kKey1 +
                                 "}, {id: 255, secret: " + kKey2 + "}]}")},
        GoodCase{"one_relay_port", control_line(48, "    ports: 1024-1024")},
        GoodCase{"relay_port_max", control_line(48, "    ports: 65535-65535")},
        GoodCase{"relay_address_of_second_port", control_line(47, "    address: 203.0.113.10")},
        GoodCase{"keepalive_max", control_lines(40, 41,
                                                "  keepalive_interval_s: 120\n"
                                                "  peer_timeout_s: 241")},
        GoodCase{"timeout_just_over_two_intervals", control_line(41, "  peer_timeout_s: 31")},
        GoodCase{"metrics_same_port_other_address",
                 control_line(39, "  metrics_listen: 127.0.0.2:9477")},
        GoodCase{"bytes_per_s_min", control_line(51, "    bytes_per_s: 1500")},
        GoodCase{"unlimited_rates", control_lines(50, 51,
                                                  "    packets_per_s: 0\n"
                                                  "    bytes_per_s: 0")},
        GoodCase{"loopback_listen", control_line(35, "  listen_address: 127.0.0.1")},
        GoodCase{"network_name_32_chars", control_line(58, "    - name: " + std::string(32, 'n'))},
        GoodCase{"empty_relay_and_limits", control_lines(46, 56, "  relay:\n  limits: {}")},
        GoodCase{"missing_key_file_is_fine",
                 control_line(37, "  key_file: /nonexistent/relay/control.key")}),
    [](const testing::TestParamInfo<GoodCase>& info) { return std::string(info.param.name); });

// A control snippet that must be rejected: key path, line and part of the message.
struct BadControlCase {
    const char* name;
    std::string yaml;
    std::string key;
    int line;
    std::string message;  // a substring of what()
};

std::ostream& operator<<(std::ostream& out, const BadControlCase& c) {
    return out << c.name;
}

class ConfigControlRejects : public testing::TestWithParam<BadControlCase> {};

TEST_P(ConfigControlRejects, Snippet) {
    const BadControlCase& c = GetParam();
    try {
        load(c.yaml);
        ADD_FAILURE() << "accepted:\n" << c.yaml;
    } catch (const ConfigError& e) {
        RecordProperty("error", describe(e));
        EXPECT_EQ(e.key(), c.key) << describe(e);
        EXPECT_EQ(e.line(), c.line) << describe(e);
        EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << describe(e);
        // Secrets never appear in messages (they end up in journals).
        for (const std::string& key : {kKey1, kKey2})
            EXPECT_EQ(describe(e).find(key), std::string::npos) << describe(e);
    }
}

const std::string kNet0 = "control.networks[0].";
const std::string kNet0Secret0 = "control.networks[0].secrets[0].";

INSTANTIATE_TEST_SUITE_P(
    Config, ConfigControlRejects,
    testing::Values(
        // Structure and unknown keys.
        BadControlCase{"null_section", kBase + "control:\n", "control.networks", 34,
                       "missing required key"},
        BadControlCase{"list_section", kBase + "control: [a]\n", "control", 34, "expected a map"},
        BadControlCase{"unknown_key", control_line(40, "  keepalive_s: 15"), "control.keepalive_s",
                       40, "unknown key"},
        BadControlCase{"unknown_relay_key", control_line(49, "    idle_s: 300"),
                       "control.relay.idle_s", 49, "unknown key"},
        BadControlCase{"unknown_limits_key", control_line(56, "    peers: 5000"),
                       "control.limits.peers", 56, "unknown key"},
        BadControlCase{"unknown_network_key", control_line(59, "      peers: 100"), kNet0 + "peers",
                       59, "unknown key"},
        BadControlCase{"unknown_secret_key", control_line(63, "          expired: true"),
                       kNet0Secret0 + "expired", 63, "unknown key"},
        BadControlCase{"duplicate_key", control_line(36, "  ports: [1, 2]\n  ports: [3, 4]"),
                       "control.ports", 37, "duplicate key"},

        // listen_address.
        BadControlCase{"listen_not_address", control_line(35, "  listen_address: localhost"),
                       "control.listen_address", 35, "expected an IPv4 address"},
        BadControlCase{"listen_with_port", control_line(35, "  listen_address: 192.0.2.5:3478"),
                       "control.listen_address", 35, "expected an IPv4 address"},
        BadControlCase{"listen_any", control_line(35, "  listen_address: 0.0.0.0"),
                       "control.listen_address", 35, "not 0.0.0.0"},
        BadControlCase{"listen_multicast", control_line(35, "  listen_address: 239.1.2.3"),
                       "control.listen_address", 35, "unicast"},
        BadControlCase{"listen_on_relay_address",
                       control_line(35, "  listen_address: 203.0.113.10"), "control.listen_address",
                       35, "relay address of dataplane.ports[1]"},

        // ports.
        BadControlCase{"one_port", control_line(36, "  ports: [3478]"), "control.ports", 36,
                       "exactly two ports"},
        BadControlCase{"three_ports", control_line(36, "  ports: [3478, 3479, 3480]"),
                       "control.ports", 36, "exactly two ports"},
        BadControlCase{"scalar_ports", control_line(36, "  ports: 3478"), "control.ports", 36,
                       "expected a list"},
        BadControlCase{"same_port_twice", control_line(36, "  ports: [3478, 3478]"),
                       "control.ports[1]", 36, "port 3478 is also control.ports[0]"},
        BadControlCase{"port_0", control_line(36, "  ports: [0, 3479]"), "control.ports[0]", 36,
                       "between 1 and 65535"},
        BadControlCase{"port_65536", control_line(36, "  ports: [3478, 65536]"), "control.ports[1]",
                       36, "between 1 and 65535"},

        // Paths.
        BadControlCase{"relative_key_file", control_line(37, "  key_file: control.key"),
                       "control.key_file", 37, "absolute path"},
        BadControlCase{"relative_admin_socket", control_line(38, "  admin_socket: control.sock"),
                       "control.admin_socket", 38, "absolute path"},
        BadControlCase{"long_admin_socket",
                       control_line(38, "  admin_socket: /" + std::string(107, 's')),
                       "control.admin_socket", 38, "limited to 107 bytes"},
        BadControlCase{"admin_socket_is_ipc_socket",
                       control_line(38, "  admin_socket: /run/relay/test.sock"),
                       "control.admin_socket", 38, "is also dataplane.ipc_socket"},
        BadControlCase{"default_admin_socket_is_ipc_socket",
                       replace_line(18, "  ipc_socket: /run/relay/control.sock") +
                           "control:\n  networks: [{name: a, allowed_peers: [" + kKey1 + "]}]\n",
                       "control.admin_socket", 34, "is also dataplane.ipc_socket"},

        // metrics_listen.
        BadControlCase{"metrics_is_dataplanes",
                       control_line(39, "  metrics_listen: 127.0.0.1:9477"),
                       "control.metrics_listen", 39, "clashes with dataplane.metrics_listen"},
        BadControlCase{"metrics_any_address_same_port",
                       control_line(39, "  metrics_listen: 0.0.0.0:9477"), "control.metrics_listen",
                       39, "clashes with dataplane.metrics_listen"},
        BadControlCase{"default_metrics_is_dataplanes",
                       replace_line(19, "  metrics_listen: 127.0.0.1:9478") +
                           "control:\n  networks: [{name: a, allowed_peers: [" + kKey1 + "]}]\n",
                       "control.metrics_listen", 34, "clashes with dataplane.metrics_listen"},
        BadControlCase{"metrics_no_port", control_line(39, "  metrics_listen: 127.0.0.1"),
                       "control.metrics_listen", 39, "expected IPv4 host:port"},
        BadControlCase{"metrics_port_0", control_line(39, "  metrics_listen: 127.0.0.1:0"),
                       "control.metrics_listen", 39, "port must not be 0"},

        // Timing.
        BadControlCase{"keepalive_0", control_line(40, "  keepalive_interval_s: 0"),
                       "control.keepalive_interval_s", 40, "between 1 and 120"},
        BadControlCase{"keepalive_121", control_line(40, "  keepalive_interval_s: 121"),
                       "control.keepalive_interval_s", 40, "between 1 and 120"},
        BadControlCase{"timeout_twice_keepalive", control_line(41, "  peer_timeout_s: 30"),
                       "control.peer_timeout_s", 41,
                       "peer_timeout_s (30) must be more than twice keepalive_interval_s (15)"},
        BadControlCase{"keepalive_too_long_for_default_timeout",
                       control_lines(40, 41, "  keepalive_interval_s: 40"),
                       "control.keepalive_interval_s", 40,
                       "peer_timeout_s (75) must be more than twice keepalive_interval_s (40)"},
        BadControlCase{"timeout_too_short_for_default_keepalive",
                       control_lines(40, 41, "  peer_timeout_s: 40"), "control.peer_timeout_s", 40,
                       "must be more than twice keepalive_interval_s (20)"},
        BadControlCase{"punch_lead_0", control_line(42, "  punch_lead_ms: 0"),
                       "control.punch_lead_ms", 42, "between 1 and 10000"},
        BadControlCase{"punch_deadline_99", control_line(43, "  punch_deadline_ms: 99"),
                       "control.punch_deadline_ms", 43, "between 100 and 60000"},
        BadControlCase{"promotion_9", control_line(44, "  promotion_interval_s: 9"),
                       "control.promotion_interval_s", 44, "between 10 and 86400"},
        BadControlCase{"timestamp_window_0", control_line(45, "  timestamp_window_s: 0"),
                       "control.timestamp_window_s", 45, "between 1 and 3600"},
        BadControlCase{"timestamp_window_negative", control_line(45, "  timestamp_window_s: -30"),
                       "control.timestamp_window_s", 45, "between 1 and 3600"},

        // relay.
        BadControlCase{"relay_address_not_dataplanes",
                       control_line(47, "    address: 198.51.100.12"), "control.relay.address", 47,
                       "198.51.100.12 is not one of the data plane's addresses (dataplane.ports[*]"
                       ".addresses: 198.51.100.10, 198.51.100.11, 203.0.113.10)"},
        BadControlCase{"relay_address_with_prefix",
                       control_line(47, "    address: 198.51.100.11/24"), "control.relay.address",
                       47, "expected an IPv4 address"},
        BadControlCase{"relay_ports_single", control_line(48, "    ports: 40000"),
                       "control.relay.ports", 48, "expected a port range MIN-MAX"},
        BadControlCase{"relay_ports_list", control_line(48, "    ports: [40000, 40999]"),
                       "control.relay.ports", 48, "expected a string"},
        BadControlCase{"relay_ports_spaces", control_line(48, "    ports: 40000 - 40999"),
                       "control.relay.ports", 48, "expected a port range MIN-MAX"},
        BadControlCase{"relay_ports_negative", control_line(48, "    ports: -1-40999"),
                       "control.relay.ports", 48, "expected a port range MIN-MAX"},
        BadControlCase{"relay_ports_privileged", control_line(48, "    ports: 1023-2000"),
                       "control.relay.ports", 48, "between 1024 and 65535"},
        BadControlCase{"relay_ports_over_65535", control_line(48, "    ports: 40000-65536"),
                       "control.relay.ports", 48, "between 1024 and 65535"},
        BadControlCase{"relay_ports_reversed", control_line(48, "    ports: 40999-40000"),
                       "control.relay.ports", 48, "reversed"},
        BadControlCase{"relay_pin_source_port_not_a_bool",
                       control_line(49, "    pin_source_port: yes"),
                       "control.relay.pin_source_port", 49, "expected true or false"},
        BadControlCase{"relay_idle_0", control_line(49, "    idle_timeout_s: 0"),
                       "control.relay.idle_timeout_s", 49, "between 1 and 86400"},
        BadControlCase{"relay_idle_86401", control_line(49, "    idle_timeout_s: 86401"),
                       "control.relay.idle_timeout_s", 49, "between 1 and 86400"},
        BadControlCase{"relay_packets_negative", control_line(50, "    packets_per_s: -1"),
                       "control.relay.packets_per_s", 50, "between 0 and"},
        BadControlCase{"relay_bytes_below_a_packet", control_line(51, "    bytes_per_s: 1499"),
                       "control.relay.bytes_per_s", 51, "at least 1500"},

        // limits.
        BadControlCase{"sessions_per_peer_0", control_line(53, "    sessions_per_peer: 0"),
                       "control.limits.sessions_per_peer", 53, "between 1 and 1024"},
        BadControlCase{"registrations_0", control_line(54, "    registrations_per_s_per_source: 0"),
                       "control.limits.registrations_per_s_per_source", 54, "between 1 and"},
        BadControlCase{"unauthenticated_0",
                       control_line(55, "    unauthenticated_per_s_per_source: 0"),
                       "control.limits.unauthenticated_per_s_per_source", 55, "between 1 and"},
        BadControlCase{"max_peers_0", control_line(56, "    max_peers: 0"),
                       "control.limits.max_peers", 56, "between 1 and"},

        // networks.
        BadControlCase{"no_networks_key", control_lines(57, 69, ""), "control.networks", 34,
                       "missing required key"},
        BadControlCase{"empty_networks", control_lines(57, 69, "  networks: []"),
                       "control.networks", 57, "at least one network"},
        BadControlCase{"scalar_networks", control_lines(57, 69, "  networks: dev"),
                       "control.networks", 57, "expected a list"},
        BadControlCase{"null_network_item", control_lines(67, 69, "    -"), "control.networks[1]",
                       67, "expected a map"},
        BadControlCase{"network_without_name", control_lines(58, 59, "    - max_peers: 1"),
                       kNet0 + "name", 58, "missing required key"},
        BadControlCase{"network_name_uppercase", control_line(58, "    - name: Dev"),
                       kNet0 + "name", 58, "1 to 32 characters of a-z 0-9 _ -"},
        BadControlCase{"network_name_33", control_line(58, "    - name: " + std::string(33, 'n')),
                       kNet0 + "name", 58, "1 to 32 characters"},
        BadControlCase{"network_name_dot", control_line(58, "    - name: dev.1"), kNet0 + "name",
                       58, "1 to 32 characters"},
        BadControlCase{"network_name_empty", control_line(58, "    - name: \"\""), kNet0 + "name",
                       58, "1 to 32 characters"},
        BadControlCase{"duplicate_network", control_line(67, "    - name: dev"),
                       "control.networks[1].name", 67,
                       "network \"dev\" is also control.networks[0].name"},
        BadControlCase{"network_max_peers_0", control_line(59, "      max_peers: 0"),
                       kNet0 + "max_peers", 59, "between 1 and"},
        BadControlCase{"network_without_credentials", control_lines(68, 69, ""),
                       "control.networks[1]", 67,
                       "at least one secret (for tokens) or one allowed"},
        BadControlCase{"network_with_empty_lists",
                       control_lines(68, 69, "      secrets: []\n      allowed_peers: []"),
                       "control.networks[1]", 67,
                       "at least one secret (for tokens) or one allowed"},
        BadControlCase{"every_secret_retired",
                       control_lines(64, 66,
                                     "        - id: 2\n          secret: " + kKey2 +
                                         "\n          retired: true"),
                       kNet0 + "secrets", 60, "every secret is retired"},

        // secrets.
        BadControlCase{"scalar_secrets", control_lines(60, 65, "      secrets: none"),
                       kNet0 + "secrets", 60, "expected a list"},
        BadControlCase{"secret_without_id", control_lines(61, 62, "        - secret: " + kKey1),
                       kNet0Secret0 + "id", 61, "missing required key"},
        BadControlCase{"secret_id_256", control_line(61, "        - id: 256"), kNet0Secret0 + "id",
                       61, "between 0 and 255"},
        BadControlCase{"secret_id_twice", control_line(64, "        - id: 1"),
                       "control.networks[0].secrets[1].id", 64,
                       "secret id \"1\" is also control.networks[0].secrets[0].id"},
        BadControlCase{"secret_and_secret_file",
                       control_line(62, "          secret: " + kKey1 +
                                            "\n          secret_file: /etc/relay/x.secret"),
                       kNet0Secret0 + "secret_file", 63, "either secret or secret_file, not both"},
        BadControlCase{"neither_secret_nor_file", control_line(62, ""), kNet0Secret0 + "secret", 61,
                       "give secret (base64) or secret_file"},
        BadControlCase{"secret_not_base64", control_line(62, "          secret: hunter2"),
                       kNet0Secret0 + "secret", 62, "expected a base64 secret of 32 bytes"},
        BadControlCase{"secret_16_bytes",
                       control_line(62, "          secret: AQEBAQEBAQEBAQEBAQEBAQ=="),
                       kNet0Secret0 + "secret", 62, "expected a base64 secret of 32 bytes"},
        BadControlCase{"secret_unpadded",
                       control_line(62, "          secret: " + kKey1.substr(0, 43)),
                       kNet0Secret0 + "secret", 62, "expected a base64 secret of 32 bytes"},
        BadControlCase{"secret_urlsafe",
                       control_line(62,
                                    "          secret: _____________________________________"
                                    "_____8="),
                       kNet0Secret0 + "secret", 62, "expected a base64 secret of 32 bytes"},
        BadControlCase{"secret_all_zeros",
                       control_line(62,
                                    "          secret: "
                                    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
                       kNet0Secret0 + "secret", 62, "must not be all zeros"},
        BadControlCase{"secret_list", control_line(62, "          secret: [" + kKey1 + "]"),
                       kNet0Secret0 + "secret", 62, "expected a string"},
        BadControlCase{"retired_yes", control_line(63, "          retired: yes"),
                       kNet0Secret0 + "retired", 63, "expected true or false"},
        BadControlCase{"relative_secret_file",
                       control_line(62, "          secret_file: dev.secret"),
                       kNet0Secret0 + "secret_file", 62, "absolute path"},
        BadControlCase{"missing_secret_file",
                       control_line(62, "          secret_file: /nonexistent/dev.secret"),
                       kNet0Secret0 + "secret_file", 62,
                       "cannot read /nonexistent/dev.secret: No such file or directory"},
        BadControlCase{"secret_file_is_directory", control_line(62, "          secret_file: /"),
                       kNet0Secret0 + "secret_file", 62, "/ is not a regular file"},

        // allowed_peers.
        BadControlCase{"allowed_peer_not_base64",
                       control_line(66, "      allowed_peers: [" + kKey3 + ", not-a-key]"),
                       kNet0 + "allowed_peers[1]", 66, "expected a WireGuard public key"},
        BadControlCase{"allowed_peer_twice",
                       control_line(66, "      allowed_peers: [" + kKey3 + ", " + kKey3 + "]"),
                       kNet0 + "allowed_peers[1]", 66,
                       "the key is also control.networks[0].allowed_peers[0]"},
        BadControlCase{"allowed_peers_scalar", control_line(69, "      - {key: " + kKey5 + "}"),
                       "control.networks[1].allowed_peers[0]", 69, "expected a string"}),
    [](const testing::TestParamInfo<BadControlCase>& info) {
        return std::string(info.param.name);
    });

// --- secret_file (real files: modes and contents) -----------------------------

class ConfigSecretFile : public testing::Test {
  protected:
    // A config whose network "dev" has one secret, from `path`.
    static std::string config_with_secret_file(const fs::path& path) {
        return kBase + "control:\n  networks:\n    - name: dev\n      secrets:\n" +
               "        - id: 7\n          secret_file: " + path.string() + "\n";  // line 39
    }
    fs::path secret(const std::string& name, const std::string& contents, fs::perms mode) const {
        fs::path file = tmp_.write(name, contents);
        fs::permissions(file, mode);
        return file;
    }
    static ConfigError error_of(const std::string& yaml) {
        try {
            load(yaml);
        } catch (const ConfigError& e) {
            return e;
        }
        return ConfigError("", -1, "", "accepted");
    }

    TempDir tmp_;
};

TEST_F(ConfigSecretFile, ReadsBase64WithNewline) {
    fs::path file =
        secret("dev.secret", kKey4 + "\n", fs::perms::owner_read | fs::perms::owner_write);
    Config c = load(config_with_secret_file(file));
    ASSERT_EQ(c.control.networks.size(), 1u);
    ASSERT_EQ(c.control.networks[0].secrets.size(), 1u);
    const NetworkSecretConfig& s = c.control.networks[0].secrets[0];
    EXPECT_EQ(s.id, 7);
    EXPECT_EQ(s.value, filled(4));
    EXPECT_EQ(s.secret_file, file.string());
}

TEST_F(ConfigSecretFile, ReadOnlyForOwnerIsFine) {
    fs::path file = secret("dev.secret", kKey4, fs::perms::owner_read);
    EXPECT_EQ(load(config_with_secret_file(file)).control.networks[0].secrets[0].value, filled(4));
}

TEST_F(ConfigSecretFile, Mode0644IsRefusedNamingTheMode) {
    fs::path file = secret("dev.secret", kKey4 + "\n",
                           fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                               fs::perms::others_read);
    ConfigError e = error_of(config_with_secret_file(file));
    EXPECT_EQ(e.key(), "control.networks[0].secrets[0].secret_file") << describe(e);
    EXPECT_EQ(e.line(), 39) << describe(e);
    EXPECT_NE(std::string(e.what()).find(file.string() + " has mode 0644"), std::string::npos)
        << describe(e);
    EXPECT_NE(std::string(e.what()).find("0600 or stricter"), std::string::npos) << describe(e);
}

TEST_F(ConfigSecretFile, GroupReadableIsRefused) {
    fs::path file = secret("dev.secret", kKey4, fs::perms::owner_read | fs::perms::group_read);
    ConfigError e = error_of(config_with_secret_file(file));
    EXPECT_NE(std::string(e.what()).find("mode 0440"), std::string::npos) << describe(e);
}

TEST_F(ConfigSecretFile, BadContentsAreRefusedWithoutQuotingThem) {
    fs::path file =
        secret("dev.secret", "not a secret\n", fs::perms::owner_read | fs::perms::owner_write);
    ConfigError e = error_of(config_with_secret_file(file));
    EXPECT_EQ(e.key(), "control.networks[0].secrets[0].secret_file") << describe(e);
    EXPECT_NE(std::string(e.what()).find("does not hold a base64 secret of 32 bytes"),
              std::string::npos)
        << describe(e);
    EXPECT_EQ(std::string(e.what()).find("not a secret"), std::string::npos) << describe(e);
}

TEST_F(ConfigSecretFile, EmptyFileIsRefused) {
    fs::path file = secret("dev.secret", "", fs::perms::owner_read | fs::perms::owner_write);
    EXPECT_EQ(error_of(config_with_secret_file(file)).key(),
              "control.networks[0].secrets[0].secret_file");
}

// --- the shipped configs' control sections ------------------------------------

TEST(ConfigShipped, DevControl) {
    Config c = load_config_file(kDevConfig);
    ASSERT_TRUE(c.has_control);
    const ControlConfig& cc = c.control;
    EXPECT_EQ(cc.listen_address, Ipv4{0x7f000001});
    EXPECT_EQ(cc.ports, (std::array<uint16_t, 2>{{3478, 3479}}));
    EXPECT_EQ(cc.key_file, "/var/lib/relay-dev/control.key");
    EXPECT_EQ(cc.admin_socket, "/run/relay/control.sock");
    EXPECT_EQ(cc.relay.relay_address, Ipv4{0xc633640a});
    EXPECT_EQ(cc.relay.port_min, 40000);
    EXPECT_EQ(cc.relay.port_max, 40999);
    ASSERT_EQ(cc.networks.size(), 1u);
    EXPECT_EQ(cc.networks[0].name, "dev");
    ASSERT_EQ(cc.networks[0].secrets.size(), 1u);
    EXPECT_FALSE(cc.networks[0].secrets[0].retired);
}

// configs/baremetal.yaml carries its control section commented out (its secret
// files exist only on a node).  Uncommented as the file says, with the secret
// files in a scratch directory, it must load.
TEST(ConfigShipped, BaremetalControlExampleLoads) {
    EXPECT_FALSE(load_config_file(kBaremetalConfig).has_control);

    TempDir tmp;
    std::string text = read_file(kBaremetalConfig);
    size_t start = text.find("\n#control:\n");
    ASSERT_NE(start, std::string::npos) << "no commented control: section";
    std::istringstream rest(text.substr(start + 1));
    std::string uncommented = text.substr(0, start + 1);
    for (std::string line; std::getline(rest, line);) {
        ASSERT_TRUE(line.starts_with("#")) << "not commented: " << line;
        uncommented += line.substr(1) + "\n";  // sed '/^#control:/,$ s/^#//'
    }
    const std::string secrets_dir = "/etc/relay/secrets/";
    for (size_t at; (at = uncommented.find(secrets_dir)) != std::string::npos;)
        uncommented.replace(at, secrets_dir.size(), tmp.path().string() + "/");
    for (const char* name : {"corp-1.secret", "corp-2.secret"}) {
        fs::path file = tmp.write(name, control::key_to_base64(filled(9)) + "\n");
        fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
    }

    Config c;
    try {
        c = load_config_text(uncommented, "baremetal-with-control.yaml");
    } catch (const ConfigError& e) {
        FAIL() << describe(e);
    }
    ASSERT_TRUE(c.has_control);
    const ControlConfig& cc = c.control;
    EXPECT_NE(cc.metrics_listen, c.dataplane.metrics_listen);
    ASSERT_EQ(cc.networks.size(), 2u);
    const NetworkConfig& corp = cc.networks[0];
    ASSERT_EQ(corp.secrets.size(), 2u);
    EXPECT_TRUE(corp.secrets[0].retired);
    EXPECT_FALSE(corp.secrets[1].retired);
    EXPECT_EQ(corp.secrets[1].value, filled(9));
    EXPECT_EQ(corp.secrets[1].secret_file, (tmp.path() / "corp-2.secret").string());
    EXPECT_TRUE(cc.networks[1].secrets.empty());
    EXPECT_FALSE(cc.networks[1].allowed_peers.empty());
}

// --- parse_duration_s (relay token --ttl) --------------------------------------

TEST(ConfigDuration, ParsesEachUnit) {
    EXPECT_EQ(parse_duration_s("90s"), 90u);
    EXPECT_EQ(parse_duration_s("30m"), 1800u);
    EXPECT_EQ(parse_duration_s("24h"), 86400u);
    EXPECT_EQ(parse_duration_s("7d"), 604800u);
    EXPECT_EQ(parse_duration_s("1s"), 1u);
    EXPECT_EQ(parse_duration_s("0365d"), 365u * 86400);
}

TEST(ConfigDuration, RefusesEverythingElse) {
    for (const char* text :
         {"", "s", "90", "0s", "-5m", "+5m", "5 m", " 5m", "5m ", "1.5h", "5w", "5ms", "5M",
          "1h30m", "0x10s", "99999999999999999999s", "213503982334602d"})
        EXPECT_EQ(parse_duration_s(text), std::nullopt) << text;
    // The largest count of days that still fits in 64 bits of seconds.
    EXPECT_EQ(parse_duration_s("213503982334601d"), 213503982334601ull * 86400);
}

// --- relay check-config / keygen / pubkey / token with control ------------------

TEST_F(ConfigCli, CheckConfigSummarisesControl) {
    RunResult r = run({"check-config", kDevConfig});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("; control on 127.0.0.1:3478,3479, 1 network (dev)"), std::string::npos)
        << r.out;
    RunResult bare = run({"check-config", kBaremetalConfig});
    EXPECT_EQ(bare.out.find("control"), std::string::npos) << bare.out;
}

TEST_F(ConfigCli, KeygenWritesAKeyFileAndPubkeyReadsIt) {
    fs::path key = tmp_.path() / "control.key";
    RunResult gen = run({"keygen", key.string()});
    ASSERT_EQ(gen.exit_code, 0) << gen.err;
    ASSERT_EQ(gen.out.size(), 45u) << gen.out;  // 44 base64 characters and a newline
    EXPECT_TRUE(control::key_from_base64(gen.out.substr(0, 44)).has_value()) << gen.out;
    EXPECT_EQ(fs::status(key).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write);

    RunResult pub = run({"pubkey", key.string()});
    EXPECT_EQ(pub.exit_code, 0) << pub.err;
    EXPECT_EQ(pub.out, gen.out);

    // Never overwrites: the key peers know would be lost.
    RunResult again = run({"keygen", key.string()});
    EXPECT_EQ(again.exit_code, 1);
    EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;
    EXPECT_EQ(run({"pubkey", key.string()}).out, gen.out);
}

TEST_F(ConfigCli, PubkeyRefusesALooseKeyFile) {
    fs::path key = tmp_.path() / "control.key";
    ASSERT_EQ(run({"keygen", key.string()}).exit_code, 0);
    fs::permissions(key, fs::perms::group_read, fs::perm_options::add);
    RunResult r = run({"pubkey", key.string()});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("0640"), std::string::npos) << r.err;

    RunResult missing = run({"pubkey", (tmp_.path() / "absent.key").string()});
    EXPECT_EQ(missing.exit_code, 1);
    EXPECT_NE(missing.err.find("absent.key"), std::string::npos) << missing.err;
}

TEST_F(ConfigCli, TokenFromDevConfigVerifies) {
    const Config config = load_config_file(kDevConfig);
    const NetworkSecretConfig& secret = config.control.networks[0].secrets[0];
    for (auto [ttl, seconds] : {std::pair<std::string, uint64_t>{"", 86400},
                                {"90s", 90},
                                {"30m", 1800},
                                {"7d", 604800}}) {
        std::vector<std::string> args = {"token", kDevConfig, "--network", "dev"};
        if (!ttl.empty()) args.insert(args.end(), {"--ttl", ttl});
        const uint64_t before = uint64_t(std::time(nullptr));
        RunResult r = run(args);
        const uint64_t after = uint64_t(std::time(nullptr));
        ASSERT_EQ(r.exit_code, 0) << r.err;
        ASSERT_FALSE(r.out.empty());
        std::string token = r.out.substr(0, r.out.size() - 1);
        auto claims = control::verify_token(token, secret.value, before);
        ASSERT_TRUE(claims.ok()) << token;
        EXPECT_EQ(claims->network, "dev");
        EXPECT_EQ(claims->secret_id, secret.id);
        EXPECT_GE(claims->expires_unix_s, before + seconds) << ttl;
        EXPECT_LE(claims->expires_unix_s, after + seconds) << ttl;
        EXPECT_NE(r.err.find("network dev, secret 1, expires "), std::string::npos) << r.err;
    }
    // --name=VALUE forms and an explicit secret id.
    RunResult eq = run({"token", "--network=dev", "--secret-id=1", "--ttl=1h", kDevConfig});
    EXPECT_EQ(eq.exit_code, 0) << eq.err;
}

TEST_F(ConfigCli, TokenSignsWithTheLastActiveSecret) {
    fs::path config = tmp_.write("c.yaml", kControl);  // dev: secret 1 retired, secret 2 active
    RunResult r = run({"token", config.string(), "--network", "dev"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto claims = control::parse_token(r.out.substr(0, r.out.size() - 1));
    ASSERT_TRUE(claims.ok()) << r.out;
    EXPECT_EQ(claims->secret_id, 2);
    EXPECT_TRUE(control::verify_token(r.out.substr(0, r.out.size() - 1), filled(2),
                                      uint64_t(std::time(nullptr)))
                    .ok());
}

TEST_F(ConfigCli, TokenErrorsNameTheProblem) {
    fs::path config = tmp_.write("c.yaml", kControl);
    const std::string c = config.string();
    struct Case {
        std::vector<std::string> args;
        int exit_code;
        std::string message;
    };
    for (const Case& k : std::vector<Case>{
             {{"token", c, "--network", "prod"}, 1, "unknown network 'prod'"},
             {{"token", c, "--network", "dev", "--secret-id", "1"},
              1,
              "secret 1 of network 'dev' is retired"},
             {{"token", c, "--network", "dev", "--secret-id", "9"},
              1,
              "network 'dev' has no secret 9 (its secrets: 1, 2)"},
             {{"token", c, "--network", "lab_2"}, 1, "network 'lab_2' has no secrets"},
             {{"token", fs::path(tmp_.write("b.yaml", kBase)).string(), "--network", "dev"},
              1,
              "has no control: section"},
             {{"token", (tmp_.path() / "absent.yaml").string(), "--network", "dev"},
              1,
              "absent.yaml"},
             {{"token", c}, 2, "missing --network NAME"},
             {{"token", "--network", "dev"}, 2, "missing CONFIG"},
             {{"token", c, "--network"}, 2, "--network needs a value"},
             {{"token", c, "--network", "dev", "--network", "dev"}, 2, "--network given twice"},
             {{"token", c, "--network", "dev", "--ttl", "24"}, 2, "--ttl '24' is not a duration"},
             {{"token", c, "--network", "dev", "--ttl", "0s"}, 2, "--ttl '0s' is not a duration"},
             {{"token", c, "--network", "dev", "--secret-id", "256"},
              2,
              "--secret-id '256' is not a secret id"},
             {{"token", c, "--network", "dev", "--verbose"}, 2, "unknown option '--verbose'"},
             {{"token", c, c, "--network", "dev"}, 2, "unexpected argument"},
         }) {
        RunResult r = run(k.args);
        EXPECT_EQ(r.exit_code, k.exit_code) << k.message << "\n" << r.err;
        EXPECT_NE(r.err.find(k.message), std::string::npos) << r.err;
        EXPECT_EQ(r.out, "") << k.message;
    }
}

TEST_F(ConfigCli, NewSubcommandsHaveHelpAndUsage) {
    for (const char* sub : {"keygen", "pubkey", "token"}) {
        RunResult help = run({sub, "--help"});
        EXPECT_EQ(help.exit_code, 0) << sub;
        EXPECT_EQ(help.out.rfind(std::string("usage: relay ") + sub, 0), 0u) << help.out;
        RunResult via_help = run({"help", sub});
        EXPECT_EQ(via_help.out, help.out) << sub;
        RunResult listed = run({"--help"});
        EXPECT_NE(listed.out.find(std::string("  ") + sub + " "), std::string::npos) << listed.out;
    }
    EXPECT_EQ(run({"keygen"}).exit_code, 2);
    EXPECT_EQ(run({"keygen", "a", "b"}).exit_code, 2);
    EXPECT_EQ(run({"pubkey"}).exit_code, 2);
}

}  // namespace
}  // namespace relay
