// Finding and configuring the DPDK ports named in the config.
#pragma once

#include <rte_mempool.h>

#include <vector>

#include "dataplane_state.hpp"
#include "relay/config.hpp"

namespace relay::dp {

// Configures every port (queues, RSS, MAC, MTU) and starts it.  `relay_addresses`
// is the session table's address list (PortContext::table_index points into
// it).  Fills state.ports and state.shard_map.  Throws std::runtime_error naming
// the port and what the device could not do.
void setup_ports(const DataplaneConfig& config, DataplaneState& state,
                 const std::vector<Ipv4>& relay_addresses);

void stop_ports(const DataplaneState& state);

// Every relay address of the config, in config order.
std::vector<Ipv4> relay_addresses_of(const DataplaneConfig& config);

}  // namespace relay::dp
