#include "ports.hpp"

#include <rte_ethdev.h>
#include <rte_thash.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

#include "worker.hpp"

namespace relay::dp {

namespace {

// Our own RSS key, set on every port, so that software can compute which
// queue (= worker) the NIC picks for a relay port.  The classic symmetric-ish
// pattern is fine: only the destination port is hashed.
constexpr uint8_t kRssKey[40] = {0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
                                 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
                                 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
                                 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a};
constexpr uint64_t kRssTypes = RTE_ETH_RSS_NONFRAG_IPV4_UDP | RTE_ETH_RSS_L4_DST_ONLY;

std::runtime_error port_error(const PortConfig& p, const std::string& what) {
    return std::runtime_error("port " + p.name + " (" + p.device + "): " + what);
}

std::string known_devices() {
    std::string out;
    uint16_t id;
    RTE_ETH_FOREACH_DEV(id) {
        char name[RTE_ETH_NAME_MAX_LEN];
        if (rte_eth_dev_get_name_by_port(id, name) == 0)
            out += (out.empty() ? "" : ", ") + std::string(name);
    }
    return out.empty() ? "none" : out;
}

// Queue the NIC picks for a UDP destination port under kRssKey/kRssTypes with
// a RETA of "entry i -> queue i % queues".
unsigned rss_queue_of(uint16_t udp_dst_port, unsigned queues, uint16_t reta_size) {
    uint8_t converted_key[sizeof kRssKey];
    rte_convert_rss_key(reinterpret_cast<const uint32_t*>(kRssKey),
                        reinterpret_cast<uint32_t*>(converted_key), sizeof kRssKey);
    // With L4_DST_ONLY the hash input is the destination port alone, in the
    // position the tuple gives it (the low 16 bits of the ports word).
    uint32_t tuple[1] = {udp_dst_port};
    uint32_t hash = rte_softrss_be(tuple, 1, converted_key);
    return (hash % reta_size) % queues;
}

bool program_reta(uint16_t port_id, uint16_t reta_size, unsigned queues) {
    std::vector<rte_eth_rss_reta_entry64> reta(reta_size / RTE_ETH_RETA_GROUP_SIZE + 1);
    for (uint16_t i = 0; i < reta_size; ++i) {
        auto& group = reta[i / RTE_ETH_RETA_GROUP_SIZE];
        group.mask |= uint64_t{1} << (i % RTE_ETH_RETA_GROUP_SIZE);
        group.reta[i % RTE_ETH_RETA_GROUP_SIZE] = static_cast<uint16_t>(i % queues);
    }
    return rte_eth_dev_rss_reta_update(port_id, reta.data(), reta_size) == 0;
}

}  // namespace

std::vector<Ipv4> relay_addresses_of(const DataplaneConfig& config) {
    std::vector<Ipv4> out;
    for (const auto& p : config.ports)
        for (const auto& a : p.addresses) out.push_back(a.addr);
    return out;
}

void setup_ports(const DataplaneConfig& config, DataplaneState& state,
                 const std::vector<Ipv4>& relay_addresses) {
    const unsigned workers = state.workers();
    state.shard_map = make_shard_map(workers);
    bool rss_shard_map_set = false;

    for (const PortConfig& pc : config.ports) {
        uint16_t port_id = 0;
        if (rte_eth_dev_get_port_by_name(pc.device.c_str(), &port_id) != 0)
            throw port_error(pc, "no such DPDK device (devices found: " + known_devices() +
                                     "); check dataplane.eal.vdevs / allow");
        rte_eth_dev_info info{};
        if (rte_eth_dev_info_get(port_id, &info) != 0)
            throw port_error(pc, "cannot read device info");

        // One TX queue per worker; the service thread's ARP goes out through
        // worker 0's (see WorkerRings::service_tx).
        const unsigned tx_queues = workers;
        if (info.max_tx_queues < tx_queues)
            throw port_error(pc, "device has " + std::to_string(info.max_tx_queues) +
                                     " TX queues, " + std::to_string(tx_queues) +
                                     " are needed (one per worker); for net_af_packet set qpairs=" +
                                     std::to_string(tx_queues));
        unsigned rx_queues = info.max_rx_queues < workers ? info.max_rx_queues : workers;
        // Some virtual devices fix their queues when they are created and the
        // kernel spreads flows over all of them (net_af_packet's qpairs,
        // net_af_xdp's queue_count): every one must be polled or those flows
        // are lost.  net_tap insists on as many RX as TX queues.  The workers
        // share the extra queues (queue q -> worker q % workers).
        const std::string_view driver = info.driver_name;
        if (driver == "net_af_packet" || driver == "net_af_xdp") rx_queues = info.max_rx_queues;
        if (driver == "net_tap") rx_queues = tx_queues;
        if (rx_queues == 0) rx_queues = 1;

        rte_eth_conf conf{};
        bool rss = false;
        if (rx_queues > 1 && (info.flow_type_rss_offloads & RTE_ETH_RSS_NONFRAG_IPV4_UDP)) {
            conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_key = const_cast<uint8_t*>(kRssKey);
            conf.rx_adv_conf.rss_conf.rss_key_len = sizeof kRssKey;
            conf.rx_adv_conf.rss_conf.rss_hf =
                kRssTypes & (info.flow_type_rss_offloads | RTE_ETH_RSS_L4_DST_ONLY);
            rss = true;
        }
        int rc = rte_eth_dev_configure(port_id, static_cast<uint16_t>(rx_queues),
                                       static_cast<uint16_t>(tx_queues), &conf);
        if (rc != 0 && rss) {  // the device refused our RSS settings: plain queues then
            conf = {};
            rss = false;
            rc = rte_eth_dev_configure(port_id, static_cast<uint16_t>(rx_queues),
                                       static_cast<uint16_t>(tx_queues), &conf);
        }
        if (rc != 0 && rx_queues != tx_queues && info.max_rx_queues >= tx_queues) {
            // Some devices (net_tap) want as many RX as TX queues; the
            // workers then share the extra RX queues (queue q -> worker q % workers).
            rx_queues = tx_queues;
            rc = rte_eth_dev_configure(port_id, static_cast<uint16_t>(rx_queues),
                                       static_cast<uint16_t>(tx_queues), &conf);
        }
        if (rc != 0) throw port_error(pc, std::string("configure failed: ") + rte_strerror(-rc));

        uint16_t rxd = pc.rx_descriptors, txd = pc.tx_descriptors;
        rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &rxd, &txd);
        const int socket = rte_eth_dev_socket_id(port_id);
        for (unsigned q = 0; q < rx_queues; ++q) {
            rc = rte_eth_rx_queue_setup(port_id, static_cast<uint16_t>(q), rxd,
                                        static_cast<unsigned>(socket < 0 ? 0 : socket), nullptr,
                                        state.pool);
            if (rc != 0)
                throw port_error(pc, "RX queue setup failed: " + std::string(rte_strerror(-rc)));
        }
        for (unsigned q = 0; q < tx_queues; ++q) {
            rc = rte_eth_tx_queue_setup(port_id, static_cast<uint16_t>(q), txd,
                                        static_cast<unsigned>(socket < 0 ? 0 : socket), nullptr);
            if (rc != 0)
                throw port_error(pc, "TX queue setup failed: " + std::string(rte_strerror(-rc)));
        }
        if (pc.mac) {
            rte_ether_addr mac;
            std::memcpy(mac.addr_bytes, pc.mac->bytes.data(), 6);
            if (rte_eth_dev_default_mac_addr_set(port_id, &mac) != 0)
                throw port_error(pc, "device refused MAC " + format_mac(*pc.mac));
        }
        if (rte_eth_dev_set_mtu(port_id, pc.mtu) != 0 && pc.mtu != 1500)
            throw port_error(pc, "device refused MTU " + std::to_string(pc.mtu));
        rc = rte_eth_dev_start(port_id);
        if (rc != 0) throw port_error(pc, "start failed: " + std::string(rte_strerror(-rc)));
        // An overridden MAC is not the one the link layer below may filter on.
        if (pc.mac) rte_eth_promiscuous_enable(port_id);

        if (rss && workers > 1 && info.reta_size > 0 &&
            program_reta(port_id, info.reta_size, rx_queues) && !rss_shard_map_set &&
            rx_queues == workers) {
            // Make the software shard map agree with the NIC, so that packets
            // arrive on the worker that owns their session and need no handoff.
            for (unsigned p = 0; p < 65536; ++p)
                state.shard_map[p] = static_cast<uint8_t>(
                    rss_queue_of(static_cast<uint16_t>(p), workers, info.reta_size));
            rss_shard_map_set = true;
        }

        PortRuntime runtime;
        runtime.name = pc.name;
        runtime.port_id = port_id;
        runtime.rx_queues = static_cast<uint16_t>(rx_queues);
        runtime.rss = rss;
        rte_ether_addr mac{};
        rte_eth_macaddr_get(port_id, &mac);
        std::memcpy(runtime.context.mac.bytes.data(), mac.addr_bytes, 6);
        runtime.context.vlan = pc.vlan;
        runtime.context.mtu = pc.mtu;  // enforced on receive whatever the device accepted
        runtime.context.gateway = pc.gateway.value_or(0);
        for (const auto& a : pc.addresses) {
            const unsigned i = runtime.context.address_count++;
            runtime.context.addresses[i] = a;
            for (size_t k = 0; k < relay_addresses.size(); ++k)
                if (relay_addresses[k] == a.addr)
                    runtime.context.table_index[i] = static_cast<uint8_t>(k);
        }
        state.ports.push_back(std::move(runtime));
    }
}

void stop_ports(const DataplaneState& state) {
    for (const auto& p : state.ports) {
        rte_eth_dev_stop(p.port_id);
        rte_eth_dev_close(p.port_id);
    }
}

}  // namespace relay::dp
