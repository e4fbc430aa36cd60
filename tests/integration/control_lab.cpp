#include "control_lab.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "relay/ipc/dataplane_protocol.hpp"
#include "relay/wire/stun.hpp"

#ifndef RELAY_DATAPLANE_BINARY
#error "RELAY_DATAPLANE_BINARY must name the relay-dataplane executable"
#endif
#ifndef RELAY_CONTROL_BINARY
#error "RELAY_CONTROL_BINARY must name the relay-control executable"
#endif

namespace relay::control_lab {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kStartupTimeout = 60s;  // DPDK on a busy shared machine can be slow
constexpr auto kControlStartupTimeout = 30s;
constexpr auto kGatewayTimeout = 15s;

std::string suffix() {
    return std::to_string(::getpid());
}

std::string ns_name(const std::string& role) {
    return std::string(kNamePrefix) + "-" + role + "-" + suffix();
}

std::string link_name(const std::string& role) {
    return std::string(kNamePrefix) + role + suffix();  // at most 4 + 1 + 7 < 16 characters
}

// The usual set-up of a fresh namespace: loopback up, no IPv6 (no router solicitations or
// MLD reports on the links, in particular none on the data plane's port).
void prepare(const lab::NetworkNamespace& ns) {
    ns.exec({"sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"});
    ns.exec({"sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"});
    ns.ip({"link", "set", "lo", "up"});
}

// Partial checksums crossing veths would reach the data plane's AF_PACKET socket unfinished.
void checksums_in_software(const lab::NetworkNamespace& ns, const std::string& ifname) {
    ns.exec({"ethtool", "-K", ifname, "tx", "off"});
}

std::string prefix24(Ipv4 ip) {
    return format_ipv4(ip) + "/24";
}

}  // namespace

// ---------------------------------------------------------------- metrics, admin

std::optional<double> metric_value(const std::string& text, const std::string& name,
                                   const std::map<std::string, std::string>& labels) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        const size_t name_end = line.find_first_of("{ ");
        if (name_end == std::string::npos || line.compare(0, name_end, name) != 0 ||
            name_end != name.size())
            continue;
        std::map<std::string, std::string> found;
        size_t pos = name_end;
        if (line[pos] == '{') {
            const size_t close = line.find('}', pos);
            if (close == std::string::npos) continue;
            const std::string body = line.substr(pos + 1, close - pos - 1);
            size_t p = 0;
            while (p < body.size()) {
                const size_t eq = body.find("=\"", p);
                if (eq == std::string::npos) break;
                const size_t end_quote = body.find('"', eq + 2);
                if (end_quote == std::string::npos) break;
                found[body.substr(p, eq - p)] = body.substr(eq + 2, end_quote - eq - 2);
                p = end_quote + 1;
                if (p < body.size() && body[p] == ',') ++p;
            }
            pos = close + 1;
        }
        bool match = true;
        for (const auto& [k, v] : labels) {
            auto it = found.find(k);
            match = match && it != found.end() && it->second == v;
        }
        if (!match) continue;
        return std::strtod(line.c_str() + pos, nullptr);
    }
    return std::nullopt;
}

nlohmann::json admin_request(const std::string& socket_path, const nlohmann::json& request,
                             int timeout_ms) {
    lab::FileDescriptor fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!fd) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket_path.c_str(), sizeof address.sun_path - 1);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
        throw std::runtime_error("connect " + socket_path + ": " + std::strerror(errno));
    const std::string text = request.dump();
    if (::send(fd.get(), text.data(), text.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(text.size()))
        throw std::runtime_error("send to " + socket_path + ": " + std::strerror(errno));
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1)
        throw std::runtime_error("no admin reply within " + std::to_string(timeout_ms) + " ms");
    std::string reply(1 << 20, '\0');
    const ssize_t n = ::recv(fd.get(), reply.data(), reply.size(), 0);
    if (n <= 0)
        throw std::runtime_error("admin reply: " +
                                 std::string(n == 0 ? "closed" : std::strerror(errno)));
    reply.resize(static_cast<size_t>(n));
    return nlohmann::json::parse(reply);
}

// ---------------------------------------------------------------- topology

Topology::Topology()
    : relay_ns_(ns_name("rly")),
      router_ns_(ns_name("net")),
      client_a_ns_(ns_name("a")),
      client_b_ns_(ns_name("b")),
      dataplane_if_(link_name("d")),
      directory_(std::string(kNamePrefix) + "-" + suffix() + "-"),
      config_path_(directory_.path() / "relay.yaml") {
    for (const auto* ns : {&relay_ns_, &router_ns_, &client_a_ns_, &client_b_ns_}) prepare(*ns);
    router_ns_.exec({"sysctl", "-qw", "net.ipv4.ip_forward=1"});

    // The data plane's link: no kernel address on the relay side (DPDK owns it through
    // AF_PACKET); the router is its gateway.
    const std::string router_dp_if = link_name("g");
    dataplane_link_.emplace(relay_ns_, dataplane_if_, router_ns_, router_dp_if);
    checksums_in_software(relay_ns_, dataplane_if_);
    relay_ns_.ip({"link", "set", dataplane_if_, "up"});
    checksums_in_software(router_ns_, router_dp_if);
    router_ns_.ip({"addr", "add", prefix24(kGatewayIp), "dev", router_dp_if});
    router_ns_.ip({"link", "set", router_dp_if, "up"});

    // The management link: an ordinary kernel interface of the relay host.
    const std::string management_if = link_name("m");
    const std::string router_mgmt_if = link_name("n");
    management_link_.emplace(relay_ns_, management_if, router_ns_, router_mgmt_if);
    relay_ns_.ip({"addr", "add", prefix24(kManagementIp), "dev", management_if});
    relay_ns_.ip({"link", "set", management_if, "up"});
    relay_ns_.ip({"route", "add", "default", "via", format_ipv4(kManagementGateway)});
    router_ns_.ip({"addr", "add", prefix24(kManagementGateway), "dev", router_mgmt_if});
    router_ns_.ip({"link", "set", router_mgmt_if, "up"});

    // The clients' "internet": a bridge in the router namespace (removed with it).
    const std::string bridge = link_name("br");
    router_ns_.ip({"link", "add", bridge, "type", "bridge"});
    router_ns_.ip({"addr", "add", prefix24(kClientGateway), "dev", bridge});
    router_ns_.ip({"link", "set", bridge, "up"});
    int index = 0;
    for (auto [ns, ip, link] : {std::tuple{&client_a_ns_, kClientAIp, &client_a_link_},
                                std::tuple{&client_b_ns_, kClientBIp, &client_b_link_}}) {
        const std::string client_if = link_name(index == 0 ? "a" : "b");
        const std::string port_if = link_name(index == 0 ? "pa" : "pb");
        link->emplace(*ns, client_if, router_ns_, port_if);
        checksums_in_software(*ns, client_if);
        ns->ip({"addr", "add", prefix24(ip), "dev", client_if});
        ns->ip({"link", "set", client_if, "up"});
        ns->ip({"route", "add", "default", "via", format_ipv4(kClientGateway)});
        checksums_in_software(router_ns_, port_if);
        router_ns_.ip({"link", "set", port_if, "master", bridge});
        router_ns_.ip({"link", "set", port_if, "up"});
        ++index;
    }

    auto keys = control::write_new_key_file(key_file());
    if (!keys) throw std::runtime_error("server key: " + keys.error());
    server_keys_ = *keys;
    std::random_device random;
    for (auto& b : secret_) b = static_cast<uint8_t>(random());
}

std::string Topology::token() const {
    const uint64_t now_s = peer::unix_ms_now() / 1000;
    return control::issue_token({kNetworkName, kSecretId, now_s + 3600}, secret_);
}

void Topology::write_config(const std::string& file_prefix) const {
    const std::string tmp = config_path_.string() + ".tmp";
    {
        std::ofstream out(tmp);
        out << "node:\n"
            << "  name: ctit\n"
            << "dataplane:\n"
            << "  eal:\n"
            << "    lcores: \"0-1\"\n"
            << "    main_lcore: 0\n"
            << "    hugepages: false\n"
            << "    memory_mb: 256\n"
            << "    file_prefix: " << file_prefix << "\n"
            << "    pci: false\n"
            << "    vdevs: [\"net_af_packet0,iface=" << dataplane_if_ << ",qpairs=2\"]\n"
            << "  workers: [1]\n"
            << "  mbufs: 16383\n"
            << "  ipc_socket: " << ipc_socket() << "\n"
            << "  metrics_listen: " << format_socket_address(kDataplaneMetrics) << "\n"
            << "  ports:\n"
            << "    - name: lab0\n"
            << "      device: net_af_packet0\n"
            << "      addresses: [" << prefix24(kRelayIp) << "]\n"
            << "      gateway: " << format_ipv4(kGatewayIp) << "\n"
            << "control:\n"
            << "  listen_address: " << format_ipv4(kManagementIp) << "\n"
            << "  ports: [" << kControlPorts[0] << ", " << kControlPorts[1] << "]\n"
            << "  key_file: " << key_file() << "\n"
            << "  admin_socket: " << admin_socket() << "\n"
            << "  metrics_listen: " << format_socket_address(kControlMetrics) << "\n"
            << "  keepalive_interval_s: " << kKeepaliveIntervalS << "\n"
            << "  peer_timeout_s: " << kPeerTimeoutS << "\n"
            << "  punch_lead_ms: " << kPunchLeadMs << "\n"
            << "  punch_deadline_ms: " << kPunchDeadlineMs << "\n"
            << "  promotion_interval_s: 60\n"
            << "  timestamp_window_s: 30\n"
            << "  relay: {address: " << format_ipv4(kRelayIp) << ", ports: " << kRelayPortMin << "-"
            << kRelayPortMax << ", idle_timeout_s: 180}\n"
            << "  limits: {sessions_per_peer: 16, registrations_per_s_per_source: 20, "
               "unauthenticated_per_s_per_source: 50, max_peers: 1000}\n"
            << "  networks:\n"
            << "    - name: " << kNetworkName << "\n"
            << "      secrets: [{id: " << int{kSecretId}
            << ", secret: " << control::key_to_base64(secret_) << "}]\n";
        if (!out) throw std::runtime_error("cannot write " + tmp);
    }
    // Atomically, so that a program starting meanwhile never reads half a file.
    std::filesystem::rename(tmp, config_path_);
}

// ---------------------------------------------------------------- relay-dataplane

DataplaneProcess::DataplaneProcess(const Topology& topology, unsigned instance_number)
    : topology_(topology),
      file_prefix_(std::string(kNamePrefix) + "-" + suffix() + "-" +
                   std::to_string(instance_number)),
      eal_runtime_dir_(std::filesystem::path("/var/run/dpdk") / file_prefix_) {
    topology.write_config(file_prefix_);
    process_.emplace(
        std::vector<std::string>{"ip", "netns", "exec", topology.relay_ns(), RELAY_DATAPLANE_BINARY,
                                 "--config", topology.config_path().string()},
        topology.directory() / ("dataplane-" + std::to_string(instance_number) + ".log"));
    const auto deadline = Clock::now() + kStartupTimeout;
    std::string last_error = "socket never appeared";
    while (Clock::now() < deadline) {
        if (!process_->running())
            throw std::runtime_error("relay-dataplane exited during start-up:\n" + log());
        if (auto c = ipc::DataplaneClient::connect(topology.ipc_socket())) {
            auto reply = c->call(ipc::HealthRequest{}, 1000);
            if (reply && reply->status == ipc::Status::ok) {
                instance_id_ = std::get<ipc::HealthReply>(reply->body).instance_id;
                client_.emplace(std::move(*c));
                return;
            }
            last_error = reply ? ipc::to_string(reply->status) : reply.error();
        } else {
            last_error = c.error();
        }
        std::this_thread::sleep_for(50ms);
    }
    throw std::runtime_error("relay-dataplane did not answer health requests (" + last_error +
                             "):\n" + log());
}

DataplaneProcess::~DataplaneProcess() {
    client_.reset();
    if (process_) process_->stop(std::chrono::milliseconds(15000));
}

std::string DataplaneProcess::scrape() const {
    return lab::http_get(topology_.relay_ns(), kDataplaneMetrics, "/metrics", 5000ms);
}

void DataplaneProcess::wait_for_gateway() {
    // The gateway's ARP reply to the data plane's request is consumed (and counted) by it.
    const auto deadline = Clock::now() + kGatewayTimeout;
    while (Clock::now() < deadline) {
        const auto v =
            metric_value(scrape(), "relay_dataplane_drops_total", {{"reason", "arp_consumed"}});
        if (v && *v >= 1) return;
        std::this_thread::sleep_for(50ms);
    }
    throw std::runtime_error("relay-dataplane never resolved its gateway:\n" + log());
}

// ---------------------------------------------------------------- relay-control

ControlProcess::ControlProcess(const Topology& topology, unsigned instance_number)
    : topology_(topology) {
    process_.emplace(
        std::vector<std::string>{"ip", "netns", "exec", topology.relay_ns(), RELAY_CONTROL_BINARY,
                                 "--config", topology.config_path().string()},
        topology.directory() / ("control-" + std::to_string(instance_number) + ".log"));
    wait_for_stun();
}

std::string ControlProcess::scrape() const {
    return lab::http_get(topology_.relay_ns(), kControlMetrics, "/metrics", 5000ms);
}

void ControlProcess::wait_for_stun() {
    const lab::UdpSocket probe = lab::UdpSocket::open_in(topology_.client_ns(0), {kClientAIp, 0});
    const auto deadline = Clock::now() + kControlStartupTimeout;
    wire::stun::TransactionId transaction{};
    std::random_device random;
    for (auto& b : transaction) b = static_cast<uint8_t>(random());
    const auto request = wire::stun::make_binding_request(transaction);
    while (Clock::now() < deadline) {
        if (!process_->running())
            throw std::runtime_error("relay-control exited during start-up:\n" + log());
        probe.send_to({kManagementIp, kControlPorts[0]}, request);
        if (auto reply = probe.receive(100ms)) {
            if (wire::stun::parse_binding_success(reply->payload, transaction)) return;
        }
    }
    throw std::runtime_error("relay-control did not answer STUN on " +
                             format_socket_address({kManagementIp, kControlPorts[0]}) + ":\n" +
                             log());
}

void ControlProcess::wait_for_admin() {
    const auto deadline = Clock::now() + kControlStartupTimeout;
    std::string last_error;
    while (Clock::now() < deadline) {
        if (!process_->running()) throw std::runtime_error("relay-control exited:\n" + log());
        try {
            if (admin({{"command", "status"}}).value("ok", false)) return;
        } catch (const std::exception& e) {
            last_error = e.what();
        }
        std::this_thread::sleep_for(20ms);
    }
    throw std::runtime_error("relay-control's admin socket never answered (" + last_error + ")");
}

peer::ControlClient open_client_in(const std::string& ns, const control::KeyPair& agent,
                                   const PublicKey& server_key, SocketAddress local) {
    peer::ControlEndpoint endpoint;
    endpoint.address = kManagementIp;
    endpoint.ports = kControlPorts;
    endpoint.server_key = server_key;
    return lab::run_in_netns(ns, [&] {
        auto client = peer::ControlClient::open(agent, endpoint, local);
        if (!client) throw std::runtime_error("control client: " + client.error());
        return std::move(*client);
    });
}

}  // namespace relay::control_lab
