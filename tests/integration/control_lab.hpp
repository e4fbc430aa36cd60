// The lab of the control-plane integration test: relay-control and relay-dataplane in one
// "relay" namespace, sharing one YAML file, and two client namespaces that reach both the
// management address and the relay address through a router namespace:
//
//   [ns ctit-rly-PID]                      [ns ctit-net-PID] (router)       [ns ctit-a-PID]
//   relay-dataplane: net_af_packet0 on      198.51.100.1/24 <-- veth -->     203.0.113.10/24
//     ctitdPID, relay 198.51.100.10/24      (the data plane's gateway)       gw 203.0.113.1
//   relay-control: kernel UDP on            192.0.2.1/24 <-- veth -->
//     ctitmPID 192.0.2.2/24 (management)    bridge 203.0.113.1/24 ---------- [ns ctit-b-PID]
//     gw 192.0.2.1                          ip_forward=1                     203.0.113.20/24
//
// No NAT anywhere: every peer is seen at its own address.  Everything (namespaces, links,
// files, processes) is owned by RAII members, so a failing test leaves nothing behind.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lab.hpp"
#include "relay/control/credentials.hpp"
#include "relay/control/envelope.hpp"
#include "relay/ipc/unix_socket.hpp"
#include "relay/net.hpp"
#include "relay/peer/control_client.hpp"

namespace relay::control_lab {

constexpr Ipv4 ipv4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return (Ipv4{a} << 24) | (Ipv4{b} << 16) | (Ipv4{c} << 8) | d;
}

constexpr Ipv4 kRelayIp = ipv4(198, 51, 100, 10);        // the data plane's relay address
constexpr Ipv4 kGatewayIp = ipv4(198, 51, 100, 1);       // its gateway (the router)
constexpr Ipv4 kManagementIp = ipv4(192, 0, 2, 2);       // relay-control's kernel address
constexpr Ipv4 kManagementGateway = ipv4(192, 0, 2, 1);  // the router on that link
constexpr Ipv4 kClientGateway = ipv4(203, 0, 113, 1);    // the router on the clients' bridge
constexpr Ipv4 kClientAIp = ipv4(203, 0, 113, 10);
constexpr Ipv4 kClientBIp = ipv4(203, 0, 113, 20);
constexpr std::array<uint16_t, 2> kControlPorts = {3478, 3479};
constexpr uint16_t kRelayPortMin = 40000;
constexpr uint16_t kRelayPortMax = 40099;
constexpr SocketAddress kDataplaneMetrics{ipv4(127, 0, 0, 1), 19477};  // in the relay ns
constexpr SocketAddress kControlMetrics{ipv4(127, 0, 0, 1), 19478};    // in the relay ns
constexpr unsigned kKeepaliveIntervalS = 20;
constexpr unsigned kPeerTimeoutS = 75;
constexpr unsigned kPunchLeadMs = 150;
constexpr unsigned kPunchDeadlineMs = 2500;
constexpr const char* kNetworkName = "lab";
constexpr uint8_t kSecretId = 1;
constexpr const char* kNamePrefix = "ctit";  // every namespace, link and file of this test

// The value of the sample `name` whose labels include all of `labels`, in Prometheus text
// exposition format; std::nullopt when there is none.
std::optional<double> metric_value(const std::string& text, const std::string& name,
                                   const std::map<std::string, std::string>& labels = {});

// One JSON request on a Unix SOCK_SEQPACKET socket (relay-control's admin socket), and its
// JSON reply.  Throws std::runtime_error on transport errors or a reply that is not JSON.
nlohmann::json admin_request(const std::string& socket_path, const nlohmann::json& request,
                             int timeout_ms = 2000);

// The namespaces, links, addresses, the server key and the network secret.
class Topology {
  public:
    Topology();

    const std::string& relay_ns() const { return relay_ns_.name(); }
    const std::string& router_ns() const { return router_ns_.name(); }
    const std::string& client_ns(int i) const {
        return (i == 0 ? client_a_ns_ : client_b_ns_).name();
    }
    const std::string& dataplane_if() const { return dataplane_if_; }
    const std::filesystem::path& directory() const { return directory_.path(); }
    const lab::NetworkNamespace& router() const { return router_ns_; }

    const std::filesystem::path& config_path() const { return config_path_; }
    std::string admin_socket() const { return (directory() / "control.sock").string(); }
    std::string ipc_socket() const { return (directory() / "dataplane.sock").string(); }
    std::string key_file() const { return (directory() / "control.key").string(); }
    const control::KeyPair& server_keys() const { return server_keys_; }
    const control::NetworkSecret& network_secret() const { return secret_; }
    // A token for network kNetworkName, valid for an hour.
    std::string token() const;

    // (Re)writes the one YAML file both programs read; `file_prefix` is the data plane's EAL
    // file prefix (a new one for every data-plane start).
    void write_config(const std::string& file_prefix) const;

  private:
    lab::NetworkNamespace relay_ns_;
    lab::NetworkNamespace router_ns_;
    lab::NetworkNamespace client_a_ns_;
    lab::NetworkNamespace client_b_ns_;
    std::string dataplane_if_;
    std::optional<lab::VethPair> dataplane_link_;
    std::optional<lab::VethPair> management_link_;
    std::optional<lab::VethPair> client_a_link_;
    std::optional<lab::VethPair> client_b_link_;
    lab::TempDir directory_;
    std::filesystem::path config_path_;
    control::KeyPair server_keys_;
    control::NetworkSecret secret_{};
};

// relay-dataplane in the relay namespace, with its own EAL file prefix.
class DataplaneProcess {
  public:
    DataplaneProcess(const Topology& topology, unsigned instance_number);
    ~DataplaneProcess();

    lab::ChildProcess& process() { return *process_; }
    std::string log() const { return process_->log(); }
    // The instance id of its health reply (a restart changes it).
    uint64_t instance_id() const { return instance_id_; }
    // A connection to its IPC socket (the test's own, not control's).
    ipc::DataplaneClient& client() { return *client_; }
    // Bounded wait until it has resolved its gateway by ARP (needed before it can forward).
    void wait_for_gateway();
    std::string scrape() const;

  private:
    const Topology& topology_;
    std::string file_prefix_;
    lab::OwnedPath eal_runtime_dir_;
    std::optional<lab::ChildProcess> process_;
    std::optional<ipc::DataplaneClient> client_;
    uint64_t instance_id_ = 0;
};

// relay-control in the relay namespace.
class ControlProcess {
  public:
    ControlProcess(const Topology& topology, unsigned instance_number);

    lab::ChildProcess& process() { return *process_; }
    std::string log() const { return process_->log(); }
    nlohmann::json admin(const nlohmann::json& request) const {
        return admin_request(topology_.admin_socket(), request);
    }
    std::string scrape() const;
    std::optional<double> metric(const std::string& name,
                                 const std::map<std::string, std::string>& labels = {}) const {
        return metric_value(scrape(), name, labels);
    }
    // Bounded wait until the admin socket answers a status request.
    void wait_for_admin();

  private:
    // Bounded wait until a STUN Binding request from client namespace A to control port 0 is
    // answered.
    void wait_for_stun();

    const Topology& topology_;
    std::optional<lab::ChildProcess> process_;
};

// A ControlClient whose socket lives in namespace `ns`, bound to `local`.
peer::ControlClient open_client_in(const std::string& ns, const control::KeyPair& agent,
                                   const PublicKey& server_key, SocketAddress local);

}  // namespace relay::control_lab
