// The real relay-dataplane, run in a network-namespace lab and driven from outside:
//
//   [ns dpit-dp-PID]                            [ns dpit-net-PID]
//   relay-dataplane                             198.51.100.1/24 on dpitnPID (the gateway)
//   net_af_packet0 on dpitdPID  <--- veth --->  203.0.113.10, .20, .30 on lo
//   relay address 198.51.100.10/24              (peers A, B and a stranger C: off-link for the
//   gateway 198.51.100.1                         data plane, reached through the gateway)
//
// Peers' sockets live in the network namespace; the test programs sessions over the data
// plane's Unix socket, sends traffic, and checks what comes out, the session counters and
// /metrics. One lab serves every test (a gtest Environment); the data plane is started on
// first use and again after the SIGTERM test has stopped it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "lab.hpp"
#include "relay/ipc/dataplane_protocol.hpp"
#include "relay/ipc/unix_socket.hpp"
#include "relay/wire/bind.hpp"
#include "relay/wire/wireguard.hpp"
#include "wireguard_vectors.hpp"

#ifndef RELAY_DATAPLANE_BINARY
#error "RELAY_DATAPLANE_BINARY must name the relay-dataplane executable"
#endif

namespace relay::integration {
namespace {

using namespace std::chrono_literals;
using lab::Bytes;
using lab::UdpSocket;
namespace wgv = relay::fixtures::wg_vectors;

constexpr Ipv4 ipv4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return (Ipv4{a} << 24) | (Ipv4{b} << 16) | (Ipv4{c} << 8) | d;
}

constexpr Ipv4 kRelayIp = ipv4(198, 51, 100, 10);
constexpr Ipv4 kGatewayIp = ipv4(198, 51, 100, 1);
constexpr Ipv4 kPeerAIp = ipv4(203, 0, 113, 10);
constexpr Ipv4 kPeerBIp = ipv4(203, 0, 113, 20);
constexpr Ipv4 kStrangerIp = ipv4(203, 0, 113, 30);
constexpr Ipv4 kNotOurAddress = ipv4(198, 51, 100, 99);
constexpr const char* kPortName = "lab0";
constexpr const char* kNamePrefix = "dpit";  // every namespace/interface this test creates

// Bounds for things that must happen; generous because the machine is shared. They bound
// waits, they are never what an assertion measures.
constexpr auto kArrivalTimeout = 5s;
constexpr auto kCounterTimeout = 10s;
constexpr auto kStartupTimeout = 60s;
constexpr auto kStopTimeout = 15s;
// A relay port with no session: traffic to it is received and dropped as no_session, which
// makes "the data plane received it" countable.
constexpr uint16_t kNoSessionPort = 9;
constexpr unsigned kProbeFlows = 64;

// ---------------------------------------------------------------- what the tests caused

// Kept by the tests as they send, per data-plane instance, so that /metrics can be checked
// against exactly what this process made happen.
struct ExpectedCounters {
    uint64_t sent_to_relay = 0;        // IPv4 packets sent to the relay address
    uint64_t received_from_relay = 0;  // packets that arrived from it
    uint64_t forwarded = 0;
    uint64_t latches = 0;
    uint64_t latch_refused = 0;
    uint64_t bind_acks = 0;
    uint64_t echo_replies = 0;
    uint64_t not_latched = 0;
    uint64_t no_session = 0;
    uint64_t neighbour_held = 0;       // packets held for a next hop's ARP answer
    uint64_t neighbour_held_sent = 0;  // of those, sent once it answered
    int64_t sessions = 0;              // installed now
};

// ---------------------------------------------------------------- /metrics text

struct Sample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
};

struct MetricsText {
    std::vector<Sample> samples;
    std::vector<std::string> problems;  // lines that are not valid exposition format

    // The value of the one sample named `name` with all of `labels`; nullopt if none.
    std::optional<double> value(const std::string& name,
                                const std::map<std::string, std::string>& labels = {}) const {
        for (const Sample& s : samples) {
            if (s.name != name) continue;
            bool match = true;
            for (const auto& [k, v] : labels) {
                auto it = s.labels.find(k);
                match = match && it != s.labels.end() && it->second == v;
            }
            if (match) return s.value;
        }
        return std::nullopt;
    }
};

// Parses the Prometheus text exposition format (version 0.0.4) strictly enough to reject
// what a scraper would: bad names, bad label syntax, unparsable values, samples of a family
// without a TYPE line, duplicate TYPE lines.
MetricsText parse_metrics(const std::string& text) {
    static const std::regex kHelp(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*$)");
    static const std::regex kType(
        R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
    static const std::regex kSample(
        R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ([^ ]+)( -?[0-9]+)?$)");
    static const std::regex kLabel(R"re(^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$))re");
    MetricsText out;
    std::set<std::string> typed;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        std::smatch m;
        if (line.empty()) continue;
        if (line.rfind("# HELP ", 0) == 0) {
            if (!std::regex_match(line, kHelp)) out.problems.push_back(line);
            continue;
        }
        if (line.rfind("# TYPE ", 0) == 0) {
            if (!std::regex_match(line, m, kType) || !typed.insert(m[1]).second)
                out.problems.push_back(line);
            continue;
        }
        if (line[0] == '#') continue;  // other comments are allowed
        if (!std::regex_match(line, m, kSample)) {
            out.problems.push_back(line);
            continue;
        }
        Sample s;
        s.name = m[1];
        std::string labels = m[3];
        while (!labels.empty()) {
            std::smatch lm;
            if (!std::regex_search(labels, lm, kLabel)) {
                out.problems.push_back(line);
                break;
            }
            s.labels[lm[1]] = lm[2];
            labels = lm.suffix();
        }
        const std::string value = m[4];
        char* end = nullptr;
        s.value = std::strtod(value.c_str(), &end);
        if (end != value.c_str() + value.size()) out.problems.push_back(line);
        // Counters' and gauges' samples carry the family name itself; summaries' and
        // histograms' add _sum, _count or _bucket to it.
        bool family_typed = typed.count(s.name) > 0;
        for (const char* suffix : {"_sum", "_count", "_bucket"}) {
            const std::string sfx = suffix;
            if (s.name.size() > sfx.size() && s.name.ends_with(sfx))
                family_typed =
                    family_typed || typed.count(s.name.substr(0, s.name.size() - sfx.size()));
        }
        if (!family_typed) out.problems.push_back("no TYPE before: " + line);
        out.samples.push_back(std::move(s));
    }
    return out;
}

// ---------------------------------------------------------------- the lab

std::string unique_suffix() {
    return std::to_string(::getpid());
}

// Namespaces, the veth between them, addresses. Built in the constructor, torn down (in
// reverse order) by the members' destructors.
class Lab {
  public:
    Lab()
        : dataplane_ns_(std::string(kNamePrefix) + "-dp-" + unique_suffix()),
          network_ns_(std::string(kNamePrefix) + "-net-" + unique_suffix()),
          dataplane_if_(std::string(kNamePrefix) + "d" + unique_suffix()),
          network_if_(std::string(kNamePrefix) + "n" + unique_suffix()),
          directory_(std::string(kNamePrefix) + "-" + unique_suffix() + "-") {
        // No IPv6 on the link: its router solicitations and MLD reports would be extra
        // packets on the data plane's port.
        for (const auto* ns : {&dataplane_ns_, &network_ns_}) {
            ns->exec({"sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"});
            ns->exec({"sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"});
            ns->ip({"link", "set", "lo", "up"});
        }
        veth_.emplace(dataplane_ns_, dataplane_if_, network_ns_, network_if_);

        // The data plane's end has no kernel address: DPDK owns it through AF_PACKET, and the
        // kernel there must not answer ARP or ICMP for the relay address.
        dataplane_ns_.exec({"ethtool", "-K", dataplane_if_, "tx", "off"});
        dataplane_ns_.ip({"link", "set", dataplane_if_, "up"});

        // The network: the gateway on the veth, the peers as local addresses on lo, so that
        // they are off-link for the data plane and reached through the gateway.
        network_ns_.exec({"ethtool", "-K", network_if_, "tx", "off"});
        network_ns_.ip({"addr", "add", format_ipv4(kGatewayIp) + "/24", "dev", network_if_});
        network_ns_.ip({"link", "set", network_if_, "up"});
        for (Ipv4 peer : {kPeerAIp, kPeerBIp, kStrangerIp})
            network_ns_.ip({"addr", "add", format_ipv4(peer) + "/32", "dev", "lo"});
    }

    const std::string& dataplane_ns() const { return dataplane_ns_.name(); }
    const std::string& network_ns() const { return network_ns_.name(); }
    const lab::NetworkNamespace& network() const { return network_ns_; }
    const std::string& dataplane_if() const { return dataplane_if_; }
    const std::string& network_if() const { return network_if_; }
    const std::filesystem::path& directory() const { return directory_.path(); }

    // The MAC of the data plane's veth end, which net_af_packet uses as its own.
    std::string dataplane_mac() const {
        const std::string out = dataplane_ns_.ip({"-br", "link", "show", "dev", dataplane_if_});
        std::istringstream fields(out);
        std::string name, state, mac;
        fields >> name >> state >> mac;
        return mac;
    }

  private:
    lab::NetworkNamespace dataplane_ns_;
    lab::NetworkNamespace network_ns_;
    std::string dataplane_if_;
    std::string network_if_;
    lab::TempDir directory_;
    std::optional<lab::VethPair> veth_;
};

// One running relay-dataplane in the lab's data-plane namespace.
class DataplaneInstance {
  public:
    // `workers` > 1 runs the workers on lcores 1..workers, all floating over the machine's
    // two CPUs (eal.lcore_cpus), so that the multi-worker paths run on a small machine.
    // `device` picks the PMD on the lab's veth: "net_af_packet" (default), "net_af_xdp" or
    // "net_pcap" (the last two have one queue pair here, so one worker).
    DataplaneInstance(const Lab& lab, unsigned instance_number, unsigned workers = 1,
                      std::string device = "net_af_packet")
        : lab_(lab),
          workers_(workers),
          device_(std::move(device)),
          file_prefix_(std::string(kNamePrefix) + "-" + unique_suffix() + "-" +
                       std::to_string(instance_number)),
          config_path_(lab.directory() /
                       ("dataplane-" + std::to_string(instance_number) + ".yaml")),
          log_path_(lab.directory() / ("dataplane-" + std::to_string(instance_number) + ".log")),
          socket_path_(lab.directory() / "dataplane.sock"),
          metrics_{ipv4(127, 0, 0, 1), lab::free_tcp_port(lab.dataplane_ns(), ipv4(127, 0, 0, 1))},
          eal_runtime_dir_(std::filesystem::path("/var/run/dpdk") / file_prefix_) {
        write_config();
        process_.emplace(
            std::vector<std::string>{"ip", "netns", "exec", lab.dataplane_ns(),
                                     RELAY_DATAPLANE_BINARY, "--config", config_path_.string()},
            log_path_);
        wait_until_healthy();
    }

    ~DataplaneInstance() { stop(); }

    // Counters as they were when the tests began to count (after start-up and the
    // work-around below): /metrics must equal these plus what the tests caused.
    const MetricsText& baseline() const { return baseline_; }
    void take_baseline() { baseline_ = scrape(); }

    // Sends one datagram on each of `flows` new flows (distinct source ports) to a port
    // without a session, and returns how many of them the data plane received (counted as
    // no_session drops) within `timeout`.
    unsigned flows_received(unsigned flows, std::chrono::milliseconds timeout) {
        const double before = drops("no_session");
        std::vector<UdpSocket> sockets;
        for (unsigned i = 0; i < flows; ++i)
            sockets.push_back(UdpSocket::open_in(lab_.network_ns(), {kStrangerIp, 0}));
        for (const UdpSocket& s : sockets) s.send_to({kRelayIp, kNoSessionPort}, Bytes(32, 0));
        const double after = metric_when_at_least(
            "relay_dataplane_drops_total", {{"reason", "no_session"}}, before + flows, timeout);
        return static_cast<unsigned>(after - before);
    }

    // The gateway answered the data plane's ARP request (it asks at start and every second).
    void wait_for_gateway() const {
        metric_when_at_least("relay_dataplane_drops_total", {{"reason", "arp_consumed"}}, 1);
    }

    ipc::DataplaneClient& client() { return *client_; }
    const std::string& socket_path() const { return socket_path_; }
    lab::ChildProcess& process() { return *process_; }
    ExpectedCounters& expected() { return expected_; }
    bool running() { return process_->running(); }
    std::string log() const { return process_->log(); }

    // SIGTERM, then SIGKILL after kStopTimeout; the wait status.
    int stop() {
        client_.reset();
        return process_->stop(std::chrono::duration_cast<std::chrono::milliseconds>(kStopTimeout));
    }

    // GET /metrics from inside the data plane's namespace, where it listens.
    std::string scrape_text() const {
        return lab::http_get(lab_.dataplane_ns(), metrics_, "/metrics", 5000ms);
    }
    MetricsText scrape() const { return parse_metrics(scrape_text()); }

    // Waits (bounded) until the metric reaches `at_least`, and returns its value then: the
    // workers count asynchronously to what the test observes.
    double metric_when_at_least(const std::string& name,
                                const std::map<std::string, std::string>& labels, double at_least,
                                std::chrono::milliseconds timeout = kCounterTimeout) const {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            const std::optional<double> v = scrape().value(name, labels);
            if ((v && *v >= at_least) || std::chrono::steady_clock::now() >= deadline)
                return v.value_or(-1);
            std::this_thread::sleep_for(20ms);
        }
    }
    double metric(const std::string& name,
                  const std::map<std::string, std::string>& labels = {}) const {
        return scrape().value(name, labels).value_or(-1);
    }
    double drops(const std::string& reason) const {
        return metric("relay_dataplane_drops_total", {{"reason", reason}});
    }
    double drops_when_at_least(const std::string& reason, double at_least) const {
        return metric_when_at_least("relay_dataplane_drops_total", {{"reason", reason}}, at_least);
    }

  private:
    void write_config() const {
        std::ofstream out(config_path_);
        std::string worker_list;
        for (unsigned w = 1; w <= workers_; ++w)
            worker_list += (w > 1 ? ", " : "") + std::to_string(w);
        out << "node:\n"
            << "  name: dpit\n"
            << "dataplane:\n"
            << "  eal:\n"
            << "    lcores: \"0-" << workers_ << "\"\n"
            << (workers_ > 1 ? "    lcore_cpus: \"0-1\"\n" : "") << "    main_lcore: 0\n"
            << "    hugepages: false\n"
            << "    memory_mb: 256\n"
            << "    file_prefix: " << file_prefix_ << "\n"
            << "    pci: false\n"
            // One more RX queue than workers, so that workers share queues too.
            << "    vdevs: [\"" << device_ << "0,iface=" << lab_.dataplane_if()
            << (device_ == "net_af_packet" ? ",qpairs=" + std::to_string(workers_ + 1) : "")
            << "\"]\n"
            << "  workers: [" << worker_list << "]\n"
            << "  mbufs: 16383\n"
            << "  ipc_socket: " << socket_path_ << "\n"
            << "  metrics_listen: " << format_socket_address(metrics_) << "\n"
            << "  ports:\n"
            << "    - name: " << kPortName << "\n"
            << "      device: " << device_ << "0\n"
            << "      addresses: [" << format_ipv4(kRelayIp) << "/24]\n"
            << "      gateway: " << format_ipv4(kGatewayIp) << "\n";
        if (!out) throw std::runtime_error("cannot write " + config_path_.string());
    }

    // Polls the Unix socket until a health request is answered (bounded), failing early if
    // the process exits.
    void wait_until_healthy() {
        const auto deadline = std::chrono::steady_clock::now() + kStartupTimeout;
        std::string last_error = "socket never appeared";
        while (std::chrono::steady_clock::now() < deadline) {
            if (!process_->running())
                throw std::runtime_error("relay-dataplane exited during start-up:\n" + log());
            if (auto c = ipc::DataplaneClient::connect(socket_path_)) {
                auto reply = c->call(ipc::HealthRequest{}, 1000);
                if (reply && reply->status == ipc::Status::ok) {
                    client_.emplace(std::move(*c));
                    return;
                }
                last_error = reply ? ipc::to_string(reply->status) : reply.error();
            } else {
                last_error = c.error();
            }
            std::this_thread::sleep_for(50ms);
        }
        throw std::runtime_error("relay-dataplane did not answer health requests on " +
                                 socket_path_ + " (" + last_error + "):\n" + log());
    }

    const Lab& lab_;
    unsigned workers_;
    std::string device_;
    std::string file_prefix_;
    std::filesystem::path config_path_;
    std::filesystem::path log_path_;
    std::string socket_path_;
    SocketAddress metrics_;
    lab::OwnedPath eal_runtime_dir_;  // EAL's files for this file prefix, removed after the process
    std::optional<lab::ChildProcess> process_;
    std::optional<ipc::DataplaneClient> client_;
    ExpectedCounters expected_;
    MetricsText baseline_;
};

// Owns the lab for the whole test program; its TearDown (and, failing that, the destructors
// of its members) removes everything.
class LabEnvironment : public ::testing::Environment {
  public:
    void SetUp() override {
        if (::geteuid() != 0) {
            setup_error_ =
                "dataplane-integration needs root (network namespaces, veth, AF_PACKET); "
                "run it as root, as CI does";
            return;
        }
        for (const char* tool : {"ip", "ethtool", "ping"}) {
            if (!lab::program_available(tool)) {
                setup_error_ = std::string("dataplane-integration needs `") + tool + "` in PATH";
                return;
            }
        }
        try {
            lab::remove_stale_leftovers(kNamePrefix);
            lab_ = std::make_unique<Lab>();
        } catch (const std::exception& e) {
            setup_error_ = std::string("cannot build the lab: ") + e.what();
        }
    }
    void TearDown() override {
        dataplane_.reset();
        lab_.reset();
    }

    const std::string& setup_error() const { return setup_error_; }
    Lab& lab() { return *lab_; }

    // The running data plane, ready for the scenario tests: started now if there is none
    // (first use, or after a test stopped it), with its gateway resolved and the baseline of
    // its counters taken.
    DataplaneInstance& dataplane() {
        if (!dataplane_ || !dataplane_->running()) restart_dataplane();
        if (!ready_for_scenarios_) {
            dataplane_->wait_for_gateway();
            dataplane_->take_baseline();
            ready_for_scenarios_ = true;
        }
        return *dataplane_;
    }
    // A data plane just started, nothing sent to it yet.
    DataplaneInstance& restart_dataplane(unsigned workers = 1,
                                         const std::string& device = "net_af_packet") {
        dataplane_.reset();
        ready_for_scenarios_ = false;
        dataplane_ =
            std::make_unique<DataplaneInstance>(*lab_, ++instances_started_, workers, device);
        return *dataplane_;
    }
    DataplaneInstance* current_dataplane() { return dataplane_.get(); }
    void forget_dataplane() {
        dataplane_.reset();
        ready_for_scenarios_ = false;
    }

  private:
    std::string setup_error_;
    std::unique_ptr<Lab> lab_;
    std::unique_ptr<DataplaneInstance> dataplane_;
    unsigned instances_started_ = 0;
    bool ready_for_scenarios_ = false;
};

// gtest owns it and calls SetUp before the first test, TearDown after the last.
LabEnvironment* const g_lab = [] {
    auto* environment = new LabEnvironment;
    ::testing::AddGlobalTestEnvironment(environment);
    return environment;
}();

// ---------------------------------------------------------------- helpers

// A call that must get a reply (any status); transport errors end the test.
ipc::Response call(DataplaneInstance& dp, const ipc::RequestBody& body) {
    auto r = dp.client().call(body, 5000);
    if (!r) throw std::runtime_error("IPC call failed: " + r.error());
    return std::move(*r);
}

std::string describe(const ipc::Response& r) {
    return std::string(ipc::to_string(r.status)) + (r.error.empty() ? "" : ": " + r.error);
}

BindSecret random_secret() {
    std::random_device random;
    BindSecret s;
    for (auto& b : s) b = static_cast<uint8_t>(random());
    return s;
}

SessionSpec bind_session(uint64_t id, uint16_t relay_port, const BindSecret& secret) {
    SessionSpec s;
    s.id = id;
    s.relay_ip = kRelayIp;
    s.relay_port = relay_port;
    s.policy = LatchPolicy::bind;
    s.bind_secret = secret;
    s.idle_timeout_s = 60;
    return s;
}

SessionSpec wireguard_session(uint64_t id, uint16_t relay_port) {
    SessionSpec s;
    s.id = id;
    s.relay_ip = kRelayIp;
    s.relay_port = relay_port;
    s.policy = LatchPolicy::wireguard;
    s.sides[0].public_key = wgv::kPeerAPublicKey;
    s.sides[1].public_key = wgv::kPeerBPublicKey;
    s.idle_timeout_s = 60;
    return s;
}

// A session installed for the length of a test: removed again however the test ends.
class ScopedSession {
  public:
    ScopedSession(DataplaneInstance& dp, const SessionSpec& spec) : dp_(dp), id_(spec.id) {
        const ipc::Response r = call(dp_, ipc::AddSessionRequest{spec});
        if (r.status != ipc::Status::ok)
            throw std::runtime_error("add session " + std::to_string(id_) + ": " + describe(r));
        ++dp_.expected().sessions;
        installed_ = true;
    }
    ~ScopedSession() {
        if (installed_) {
            try {
                remove();
            } catch (...) {
            }
        }
    }
    // Removes it now; returns the reply.
    ipc::Response remove() {
        const ipc::Response r = call(dp_, ipc::RemoveSessionRequest{id_});
        if (r.status == ipc::Status::ok && installed_) --dp_.expected().sessions;
        installed_ = false;
        return r;
    }

  private:
    DataplaneInstance& dp_;
    uint64_t id_;
    bool installed_ = false;
};

std::optional<SessionStats> get_session(DataplaneInstance& dp, uint64_t id) {
    const ipc::Response r = call(dp, ipc::GetSessionRequest{id});
    if (r.status != ipc::Status::ok) return std::nullopt;
    return std::get<ipc::SessionReply>(r.body).session;
}

std::vector<SessionStats> list_sessions(DataplaneInstance& dp) {
    std::vector<SessionStats> out;
    uint64_t after = 0;
    for (;;) {
        const ipc::Response r = call(dp, ipc::ListSessionsRequest{after, ipc::kMaxListPage});
        if (r.status != ipc::Status::ok) throw std::runtime_error("list: " + describe(r));
        const auto& page = std::get<ipc::ListSessionsReply>(r.body);
        out.insert(out.end(), page.sessions.begin(), page.sessions.end());
        if (!page.more || page.sessions.empty()) return out;
        after = page.sessions.back().spec.id;
    }
}

std::set<uint64_t> ids_of(const std::vector<SessionStats>& sessions) {
    std::set<uint64_t> ids;
    for (const auto& s : sessions) ids.insert(s.spec.id);
    return ids;
}

// A payload that names its direction and sequence number, `size` bytes long.
Bytes numbered_payload(const std::string& direction, unsigned sequence, size_t size) {
    std::string text = direction + " #" + std::to_string(sequence) + " ";
    Bytes out(size);
    for (size_t i = 0; i < size; ++i)
        out[i] = i < text.size() ? static_cast<uint8_t>(text[i]) : static_cast<uint8_t>(i);
    return out;
}

// A WireGuard transport-data message shaped like `captured`, made unique by its counter.
Bytes numbered_wireguard_data(const std::array<uint8_t, 128>& captured, uint64_t counter) {
    Bytes out(captured.begin(), captured.end());
    for (int i = 0; i < 8; ++i) out[8 + i] = static_cast<uint8_t>(counter >> (8 * i));
    return out;
}

// Receives `count` datagrams (each within kArrivalTimeout of the previous one).
std::vector<lab::Datagram> receive_all(const UdpSocket& socket, size_t count) {
    std::vector<lab::Datagram> out;
    while (out.size() < count) {
        auto d = socket.receive(kArrivalTimeout);
        if (!d) break;
        out.push_back(std::move(*d));
    }
    return out;
}

// Where packets can be lost on their way, for the failure message of a lost datagram.
std::string loss_diagnostics(const DataplaneInstance& dp) {
    std::string out = "data plane counters:";
    const MetricsText m = dp.scrape();
    for (const Sample& sample : m.samples) {
        const bool interesting =
            sample.name.find("rx_missed") != std::string::npos ||
            sample.name.find("packets_total") != std::string::npos ||
            (sample.name == "relay_dataplane_drops_total" && sample.value != 0);
        if (!interesting) continue;
        out += "\n  " + sample.name;
        for (const auto& [k, v] : sample.labels) out += " " + k + "=" + v;
        out += " " + std::to_string(static_cast<uint64_t>(sample.value));
    }
    const lab::CommandResult snmp = lab::run_command(
        {"ip", "netns", "exec", g_lab->lab().network_ns(), "grep", "^Udp:", "/proc/net/snmp"});
    out += "\nnetwork namespace UDP statistics:\n" + snmp.output;
    return out;
}

// Sends every payload from `from` to the relay endpoint, receives them on `to` and checks
// that each arrived once, unchanged, from the relay endpoint. Returns the count that arrived.
size_t relay_and_check(DataplaneInstance& dp, const UdpSocket& from, const UdpSocket& to,
                       SocketAddress relay, const std::vector<Bytes>& payloads) {
    for (const Bytes& p : payloads) from.send_to(relay, p);
    dp.expected().sent_to_relay += payloads.size();
    const std::vector<lab::Datagram> got = receive_all(to, payloads.size());
    dp.expected().received_from_relay += got.size();
    dp.expected().forwarded += got.size();
    // Compared as strings: a multiset of byte vectors trips a g++ 12 false warning.
    std::multiset<std::string> expected, received;
    for (const Bytes& p : payloads) expected.emplace(p.begin(), p.end());
    for (const auto& d : got) {
        EXPECT_EQ(d.source, relay) << "forwarded from " << format_socket_address(d.source);
        received.emplace(d.payload.begin(), d.payload.end());
    }
    EXPECT_EQ(got.size(), payloads.size()) << "from " << format_socket_address(from.local())
                                           << " to " << format_socket_address(to.local()) << ": "
                                           << payloads.size() - got.size() << " datagram(s) lost\n"
                                           << loss_diagnostics(dp);
    EXPECT_TRUE(received == expected) << "forwarded payloads differ from what was sent";
    return got.size();
}

// Side 0 from `a`, side 1 from `b`: each sends its first bind request and gets its ack,
// which latches it (the expected counters follow).
testing::AssertionResult bind_both_sides(DataplaneInstance& dp, const BindSecret& secret,
                                         uint64_t session_id, SocketAddress relay,
                                         const UdpSocket& a, const UdpSocket& b) {
    uint8_t side = 0;
    for (const UdpSocket* peer : {&a, &b}) {
        const auto request = wire::bind::make_request(secret, session_id, side, 1, peer->local());
        peer->send_to(relay, request.data(), request.size());
        dp.expected().sent_to_relay++;
        if (!peer->receive(kArrivalTimeout))
            return testing::AssertionFailure() << "no bind ack for side " << int{side};
        dp.expected().received_from_relay++;
        dp.expected().bind_acks++;
        dp.expected().latches++;
        ++side;
    }
    return testing::AssertionSuccess();
}

// `count` transport data messages each way between the confirmed endpoints (counters
// 1..count, from the captured A->B and B->A messages), each checked on arrival.
void relay_wireguard_data_both_ways(DataplaneInstance& dp, const UdpSocket& a, const UdpSocket& b,
                                    SocketAddress relay, unsigned count) {
    std::vector<Bytes> a_to_b, b_to_a;
    for (unsigned i = 0; i < count; ++i) {
        a_to_b.push_back(numbered_wireguard_data(wgv::kDataAtoB1, i + 1));
        b_to_a.push_back(numbered_wireguard_data(wgv::kDataBtoA1, i + 1));
    }
    relay_and_check(dp, a, b, relay, a_to_b);
    relay_and_check(dp, b, a, relay, b_to_a);
}

// Nothing is waiting on `socket` (called once the data plane has counted the packet that
// must not have been forwarded, so no wait is needed).
void expect_nothing_queued(const UdpSocket& socket, const std::string& what) {
    auto d = socket.receive(0ms);
    EXPECT_FALSE(d.has_value()) << what << ": unexpected datagram of " << d->payload.size()
                                << " bytes from " << format_socket_address(d->source);
}

// An address of the network namespace on the link (a /32 on its veth end), so that a peer
// socket can live on the data plane's own prefix: the kernel answers ARP for it while it
// exists. Removed again however the test ends (or earlier, by remove()).
class ScopedOnLinkAddress {
  public:
    ScopedOnLinkAddress(const Lab& lab, Ipv4 address) : lab_(lab), address_(address) {
        lab_.network().ip({"addr", "add", format_ipv4(address_) + "/32", "dev", lab_.network_if()});
        added_ = true;
    }
    ~ScopedOnLinkAddress() {
        try {
            remove();
        } catch (...) {
        }
    }
    void remove() {
        if (!added_) return;
        added_ = false;
        lab_.network().ip({"addr", "del", format_ipv4(address_) + "/32", "dev", lab_.network_if()});
    }

  private:
    const Lab& lab_;
    Ipv4 address_;
    bool added_ = false;
};

// ---------------------------------------------------------------- fixture

class DataplaneIntegration : public ::testing::Test {
  protected:
    void SetUp() override { ASSERT_TRUE(g_lab->setup_error().empty()) << g_lab->setup_error(); }
    // For a test that needs a data plane nothing has been sent to yet.
    void use_fresh_dataplane() { dp_ = &g_lab->restart_dataplane(); }
    void TearDown() override {
        DataplaneInstance* dp = g_lab->current_dataplane();
        if (HasFailure() && dp) std::cerr << "---- relay-dataplane output ----\n" << dp->log();
    }

    Lab& lab() { return g_lab->lab(); }
    // The shared data plane, ready for scenarios (started on first use).
    DataplaneInstance& dp() {
        if (!dp_) dp_ = &g_lab->dataplane();
        return *dp_;
    }
    UdpSocket peer_socket(Ipv4 ip) { return UdpSocket::open_in(lab().network_ns(), {ip, 0}); }

    DataplaneInstance* dp_ = nullptr;
};

// ---------------------------------------------------------------- reception

// With net_af_packet and qpairs=2 (one more than the workers) the kernel spreads
// received frames over both AF_PACKET sockets by flow hash, so the data plane must poll every
// RX queue the device has, even with fewer workers (a regression test: it once polled one).
TEST_F(DataplaneIntegration, ReceivesEveryFlowWhateverRxQueueItLandsOn) {
    use_fresh_dataplane();
    const unsigned received = dp().flows_received(kProbeFlows, kCounterTimeout);
    EXPECT_EQ(received, kProbeFlows)
        << "flows from distinct source ports to " << format_ipv4(kRelayIp) << ":" << kNoSessionPort
        << " that the data plane received (no_session drops); the rest went "
        << "to an AF_PACKET RX queue nobody polls";
}

// ---------------------------------------------------------------- a. ARP and ICMP

TEST_F(DataplaneIntegration, AnswersArpAndPingAndResolvesItsGateway) {
    // The data plane asks for its gateway at start (and every second until answered): the
    // gateway's ARP reply is consumed by it.
    EXPECT_GE(dp().drops_when_at_least("arp_consumed", 1), 1)
        << "the data plane never received an ARP reply from its gateway";

    // Forget the relay's MAC on the network side, so that ping must resolve it by ARP.
    lab().network().ip({"neigh", "flush", "dev", lab().network_if()});
    const double arp_replies_before = dp().metric("relay_dataplane_arp_replies_total");
    const double echo_replies_before = dp().metric("relay_dataplane_icmp_echo_replies_total");

    constexpr int kPings = 3;
    const lab::CommandResult ping =
        lab::run_command({"ip", "netns", "exec", lab().network_ns(), "ping", "-n", "-c",
                          std::to_string(kPings), "-i", "0.2", "-W", "5", format_ipv4(kRelayIp)});
    dp().expected().sent_to_relay += kPings;
    EXPECT_EQ(ping.exit_code, 0) << ping.output;
    EXPECT_NE(ping.output.find(std::to_string(kPings) + " received"), std::string::npos)
        << ping.output;
    if (ping.exit_code == 0) {
        dp().expected().received_from_relay += kPings;
        dp().expected().echo_replies += kPings;
    }

    // The network resolved the relay address to the data plane's MAC.
    const std::string neighbour =
        lab().network().ip({"neigh", "show", format_ipv4(kRelayIp), "dev", lab().network_if()});
    EXPECT_NE(neighbour.find("lladdr " + lab().dataplane_mac()), std::string::npos)
        << "neighbour entry: " << neighbour << " expected MAC " << lab().dataplane_mac();
    EXPECT_GE(
        dp().metric_when_at_least("relay_dataplane_arp_replies_total", {}, arp_replies_before + 1),
        arp_replies_before + 1);
    EXPECT_EQ(dp().metric_when_at_least("relay_dataplane_icmp_echo_replies_total", {},
                                        echo_replies_before + kPings),
              echo_replies_before + kPings);
}

// ---------------------------------------------------------------- b. bind policy

TEST_F(DataplaneIntegration, BindPolicySessionRelaysBothWaysAndDropsStrangers) {
    constexpr uint64_t kSessionId = 1001;
    constexpr uint16_t kRelayPort = 40000;
    constexpr unsigned kPacketsEachWay = 200;
    constexpr size_t kPayloadAtoB = 100, kPayloadBtoA = 300;
    const SocketAddress relay{kRelayIp, kRelayPort};
    const BindSecret secret = random_secret();
    ScopedSession session(dp(), bind_session(kSessionId, kRelayPort, secret));

    const UdpSocket a = peer_socket(kPeerAIp);
    const UdpSocket b = peer_socket(kPeerBIp);
    const UdpSocket stranger = peer_socket(kStrangerIp);

    // Each side binds from the address the relay sees (no NAT here: its own) and gets an ack
    // of the same size, never a forward.
    uint8_t side = 0;
    for (const UdpSocket* peer : {&a, &b}) {
        const auto request = wire::bind::make_request(secret, kSessionId, side, 1, peer->local());
        peer->send_to(relay, request.data(), request.size());
        dp().expected().sent_to_relay++;
        const auto ack = peer->receive(kArrivalTimeout);
        ASSERT_TRUE(ack.has_value()) << "no bind ack for side " << int{side};
        dp().expected().received_from_relay++;
        dp().expected().bind_acks++;
        dp().expected().latches++;
        EXPECT_EQ(ack->source, relay);
        ASSERT_EQ(ack->payload.size(), wire::bind::kLen);
        EXPECT_TRUE(std::equal(wire::bind::kAckMagic.begin(), wire::bind::kAckMagic.end(),
                               ack->payload.begin()))
            << "ack magic";
        EXPECT_EQ(ack->payload[5], side);
        EXPECT_EQ(ack->payload[6], wire::bind::kStatusLatched) << "ack status";
        ++side;
    }

    std::vector<Bytes> a_to_b, b_to_a;
    for (unsigned i = 0; i < kPacketsEachWay; ++i) {
        a_to_b.push_back(numbered_payload("A->B", i, kPayloadAtoB));
        b_to_a.push_back(numbered_payload("B->A", i, kPayloadBtoA));
    }
    relay_and_check(dp(), a, b, relay, a_to_b);
    relay_and_check(dp(), b, a, relay, b_to_a);

    // A source that never bound gets nothing through.
    const double not_latched_before = dp().drops("not_latched");
    stranger.send_to(relay, numbered_payload("C->?", 0, 64));
    dp().expected().sent_to_relay++;
    dp().expected().not_latched++;
    EXPECT_EQ(dp().drops_when_at_least("not_latched", not_latched_before + 1),
              not_latched_before + 1);
    expect_nothing_queued(a, "stranger's datagram");
    expect_nothing_queued(b, "stranger's datagram");
    expect_nothing_queued(stranger, "stranger's datagram");

    // The session as the data plane reports it: both sides latched where they bound from,
    // and per-side counters equal to what went through (bytes are IPv4 total lengths).
    const auto stats = get_session(dp(), kSessionId);
    ASSERT_TRUE(stats.has_value());
    EXPECT_EQ(stats->spec, bind_session(kSessionId, kRelayPort, secret));
    const uint64_t ip_udp = 28;
    for (int s = 0; s < 2; ++s) {
        const SideStats& st = stats->sides[s];
        const UdpSocket& peer = s == 0 ? a : b;
        const size_t sent_size = s == 0 ? kPayloadAtoB : kPayloadBtoA;
        const size_t received_size = s == 0 ? kPayloadBtoA : kPayloadAtoB;
        SCOPED_TRACE("side " + std::to_string(s));
        EXPECT_TRUE(st.latched);
        EXPECT_EQ(st.endpoint, peer.local()) << format_socket_address(st.endpoint);
        EXPECT_EQ(st.latches, 1u);
        EXPECT_EQ(st.rx_packets, kPacketsEachWay);
        EXPECT_EQ(st.rx_bytes, kPacketsEachWay * (ip_udp + sent_size));
        EXPECT_EQ(st.tx_packets, kPacketsEachWay);
        EXPECT_EQ(st.tx_bytes, kPacketsEachWay * (ip_udp + received_size));
        EXPECT_EQ(st.dropped_packets, 0u);
        EXPECT_EQ(st.latch_refused, 0u);
    }
    EXPECT_EQ(ids_of(list_sessions(dp())).count(kSessionId), 1u) << "list does not show it";

    // Removed: gone from get and list, and its traffic is dropped as no_session.
    const ipc::Response removed = session.remove();
    EXPECT_EQ(removed.status, ipc::Status::ok) << describe(removed);
    EXPECT_FALSE(get_session(dp(), kSessionId).has_value());
    EXPECT_EQ(ids_of(list_sessions(dp())).count(kSessionId), 0u);
    const double no_session_before = dp().drops("no_session");
    a.send_to(relay, numbered_payload("A->B after removal", 0, kPayloadAtoB));
    dp().expected().sent_to_relay++;
    dp().expected().no_session++;
    EXPECT_EQ(dp().drops_when_at_least("no_session", no_session_before + 1), no_session_before + 1);
    expect_nothing_queued(b, "datagram to a removed session");
}

// ---------------------------------------------------------------- c. WireGuard policy

TEST_F(DataplaneIntegration, WireGuardPolicyLatchesOnRealHandshakeAndRefusesForgedMac1) {
    constexpr uint64_t kSessionId = 2001;
    constexpr uint16_t kRelayPort = 40001;
    constexpr unsigned kDataEachWay = 100;
    const SocketAddress relay{kRelayIp, kRelayPort};
    ScopedSession session(dp(), wireguard_session(kSessionId, kRelayPort));
    const UdpSocket a = peer_socket(kPeerAIp);
    const UdpSocket b = peer_socket(kPeerBIp);

    // A's initiation makes A a candidate; B is unknown, so it goes nowhere.
    const double not_latched_before = dp().drops("not_latched");
    a.send_to(relay, Bytes(wgv::kInitiation1.begin(), wgv::kInitiation1.end()));
    dp().expected().sent_to_relay++;
    dp().expected().not_latched++;
    EXPECT_EQ(dp().drops_when_at_least("not_latched", not_latched_before + 1),
              not_latched_before + 1);
    expect_nothing_queued(b, "initiation before B is known");
    auto stats = get_session(dp(), kSessionId);
    ASSERT_TRUE(stats.has_value());
    EXPECT_TRUE(stats->sides[0].has_candidate);
    EXPECT_EQ(stats->sides[0].candidate, a.local());
    EXPECT_FALSE(stats->sides[0].latched);
    EXPECT_FALSE(stats->sides[1].latched);

    // B's initiation goes to A's candidate address; A's response to it (receiver index = its
    // sender index) comes back from where that initiation was forwarded: it confirms B and
    // latches A where it answered from.
    ASSERT_EQ(relay_and_check(dp(), b, a, relay,
                              {Bytes(wgv::kInitiationFromB.begin(), wgv::kInitiationFromB.end())}),
              1u);
    ASSERT_EQ(relay_and_check(dp(), a, b, relay,
                              {Bytes(wgv::kResponseFromA.begin(), wgv::kResponseFromA.end())}),
              1u);
    dp().expected().latches += 2;
    stats = get_session(dp(), kSessionId);
    ASSERT_TRUE(stats.has_value());
    EXPECT_TRUE(stats->sides[0].latched);
    EXPECT_EQ(stats->sides[0].endpoint, a.local());
    EXPECT_TRUE(stats->sides[1].latched);
    EXPECT_EQ(stats->sides[1].endpoint, b.local());
    EXPECT_EQ(stats->sides[0].latches, 1u);
    EXPECT_EQ(stats->sides[1].latches, 1u);

    // Transport data flows both ways between the confirmed endpoints.
    relay_wireguard_data_both_ways(dp(), a, b, relay, kDataEachWay);

    // An initiation whose mac1 is wrong for both keys is refused, not forwarded.
    Bytes forged(wgv::kInitiation1.begin(), wgv::kInitiation1.end());
    forged[wire::wg::kInitiationMac1] ^= 0x01;
    const double refused_before = dp().metric("relay_dataplane_latch_refused_total");
    const double latch_refused_drops_before = dp().drops("latch_refused");
    a.send_to(relay, forged);
    dp().expected().sent_to_relay++;
    dp().expected().latch_refused++;
    EXPECT_EQ(
        dp().metric_when_at_least("relay_dataplane_latch_refused_total", {}, refused_before + 1),
        refused_before + 1);
    EXPECT_EQ(dp().drops_when_at_least("latch_refused", latch_refused_drops_before + 1),
              latch_refused_drops_before + 1);
    expect_nothing_queued(b, "forged initiation");

    // Per-side counters: A sent the response and data (its first initiation was dropped), B
    // its initiation and data.
    stats = get_session(dp(), kSessionId);
    ASSERT_TRUE(stats.has_value());
    const uint64_t ip_udp = 28;
    const uint64_t data_bytes = kDataEachWay * (ip_udp + wgv::kDataAtoB1.size());
    const uint64_t response_bytes = ip_udp + wgv::kResponseFromA.size();
    const uint64_t initiation_bytes = ip_udp + wgv::kInitiationFromB.size();
    EXPECT_EQ(stats->sides[0].rx_packets, kDataEachWay + 1);
    EXPECT_EQ(stats->sides[0].rx_bytes, data_bytes + response_bytes);
    EXPECT_EQ(stats->sides[0].tx_packets, kDataEachWay + 1);
    EXPECT_EQ(stats->sides[0].tx_bytes, data_bytes + initiation_bytes);
    EXPECT_EQ(stats->sides[1].rx_packets, kDataEachWay + 1);
    EXPECT_EQ(stats->sides[1].rx_bytes, data_bytes + initiation_bytes);
    EXPECT_EQ(stats->sides[1].tx_packets, kDataEachWay + 1);
    EXPECT_EQ(stats->sides[1].tx_bytes, data_bytes + response_bytes);
    EXPECT_GE(stats->sides[0].dropped_packets, 1u) << "A's unanswered initiation";
    EXPECT_TRUE(stats->sides[0].latched) << "a refused handshake must not move the latch";
    EXPECT_EQ(stats->sides[0].endpoint, a.local());
}

// ---------------------------------------------------------------- c2. a peer on the link

// A session whose peer B sits on the data plane's own link at an address it has never
// resolved: the first packet relayed to B (A's handshake initiation, which WireGuard would
// repeat only 5 s later) waits for the data plane's ARP request to be answered and then
// arrives, instead of being dropped. Nothing counts as a drop.
TEST_F(DataplaneIntegration, FirstPacketToAnUnresolvedOnLinkPeerArrives) {
    constexpr uint64_t kSessionId = 7001;
    constexpr uint16_t kRelayPort = 40700;
    constexpr Ipv4 kOnLinkPeerIp = ipv4(198, 51, 100, 50);  // no test uses it before
    constexpr unsigned kDataEachWay = 10;
    const SocketAddress relay{kRelayIp, kRelayPort};
    ScopedOnLinkAddress on_link(lab(), kOnLinkPeerIp);
    ScopedSession session(dp(), wireguard_session(kSessionId, kRelayPort));
    const UdpSocket a = peer_socket(kPeerAIp);
    const UdpSocket b = peer_socket(kOnLinkPeerIp);
    const double held_before = dp().metric("relay_dataplane_neighbour_held_total");
    const double sent_before = dp().metric("relay_dataplane_neighbour_held_sent_total");
    const double no_neighbour_before = dp().drops("no_neighbour");
    ASSERT_GE(held_before, 0) << "relay_dataplane_neighbour_held_total is not exported";
    ASSERT_GE(sent_before, 0) << "relay_dataplane_neighbour_held_sent_total is not exported";

    // B's initiation makes B a candidate; A is unknown, so it goes nowhere.
    const double not_latched_before = dp().drops("not_latched");
    b.send_to(relay, Bytes(wgv::kInitiationFromB.begin(), wgv::kInitiationFromB.end()));
    dp().expected().sent_to_relay++;
    dp().expected().not_latched++;
    ASSERT_EQ(dp().drops_when_at_least("not_latched", not_latched_before + 1),
              not_latched_before + 1);

    // A's initiation goes to B's candidate address, whose MAC nobody has asked for yet: the
    // very first packet towards it must arrive.
    ASSERT_EQ(relay_and_check(dp(), a, b, relay,
                              {Bytes(wgv::kInitiation1.begin(), wgv::kInitiation1.end())}),
              1u)
        << "the first packet to an unresolved on-link peer was lost";
    dp().expected().neighbour_held++;
    dp().expected().neighbour_held_sent++;
    EXPECT_EQ(
        dp().metric_when_at_least("relay_dataplane_neighbour_held_total", {}, held_before + 1),
        held_before + 1);
    EXPECT_EQ(
        dp().metric_when_at_least("relay_dataplane_neighbour_held_sent_total", {}, sent_before + 1),
        sent_before + 1);

    // B answers it from where it went: both sides latch, and data flows both ways with B
    // resolved (nothing more is held).
    ASSERT_EQ(
        relay_and_check(dp(), b, a, relay, {Bytes(wgv::kResponse1.begin(), wgv::kResponse1.end())}),
        1u);
    dp().expected().latches += 2;
    relay_wireguard_data_both_ways(dp(), a, b, relay, kDataEachWay);

    const auto stats = get_session(dp(), kSessionId);
    ASSERT_TRUE(stats.has_value());
    EXPECT_TRUE(stats->sides[0].latched);
    EXPECT_EQ(stats->sides[0].endpoint, a.local());
    EXPECT_TRUE(stats->sides[1].latched);
    EXPECT_EQ(stats->sides[1].endpoint, b.local());
    EXPECT_EQ(stats->sides[0].rx_packets, kDataEachWay + 1) << "the held initiation included";
    EXPECT_EQ(stats->sides[0].dropped_packets, 0u);
    EXPECT_EQ(dp().metric("relay_dataplane_neighbour_held_total"), held_before + 1);
    EXPECT_EQ(dp().metric("relay_dataplane_neighbour_held_sent_total"), sent_before + 1);
    EXPECT_EQ(dp().drops("no_neighbour"), no_neighbour_before) << "holding is not dropping";
}

// ---------------------------------------------------------------- d. bad requests

TEST_F(DataplaneIntegration, RefusesBadRequestsAndChangesNothing) {
    constexpr uint64_t kSessionId = 3001;
    constexpr uint16_t kRelayPort = 40002;
    const SessionSpec spec = bind_session(kSessionId, kRelayPort, random_secret());
    ScopedSession session(dp(), spec);

    // Health describes this data plane.
    ipc::Response r = call(dp(), ipc::HealthRequest{});
    ASSERT_EQ(r.status, ipc::Status::ok) << describe(r);
    const auto& health = std::get<ipc::HealthReply>(r.body);
    EXPECT_EQ(health.workers, 1u);
    EXPECT_EQ(health.ports, 1u);
    EXPECT_EQ(health.relay_addresses, std::vector<Ipv4>{kRelayIp});
    EXPECT_EQ(health.sessions, static_cast<uint32_t>(dp().expected().sessions));

    const std::vector<SessionStats> before = list_sessions(dp());
    ASSERT_EQ(ids_of(before).count(kSessionId), 1u);

    SessionSpec unknown_address = bind_session(3002, 40003, random_secret());
    unknown_address.relay_ip = kNotOurAddress;
    r = call(dp(), ipc::AddSessionRequest{unknown_address});
    EXPECT_EQ(r.status, ipc::Status::unknown_address) << describe(r);

    r = call(dp(), ipc::AddSessionRequest{bind_session(kSessionId, 40004, random_secret())});
    EXPECT_EQ(r.status, ipc::Status::exists) << "duplicate id: " << describe(r);

    // The same add again (control retrying after a timeout) is the same session: ok.
    r = call(dp(), ipc::AddSessionRequest{spec});
    EXPECT_EQ(r.status, ipc::Status::ok) << "idempotent add: " << describe(r);
    // Removing an id that is not there: not_found, which a client takes as done.
    r = call(dp(), ipc::RemoveSessionRequest{kSessionId + 999});
    EXPECT_EQ(r.status, ipc::Status::not_found) << describe(r);

    r = call(dp(), ipc::AddSessionRequest{bind_session(3003, kRelayPort, random_secret())});
    EXPECT_EQ(r.status, ipc::Status::exists) << "duplicate relay endpoint: " << describe(r);

    // Bytes that are no request at all, and a health request cut short by one byte, on a
    // raw connection: each gets a malformed reply, and the connection stays usable.
    lab::FileDescriptor raw(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, dp().socket_path().c_str(), sizeof address.sun_path - 1);
    ASSERT_EQ(::connect(raw.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0)
        << std::strerror(errno);
    Bytes truncated_health = ipc::encode(ipc::Request{7, ipc::HealthRequest{}});
    truncated_health.pop_back();
    const std::string garbage = "this is not a relay IPC request";
    for (const Bytes& bad : {Bytes(garbage.begin(), garbage.end()), truncated_health}) {
        ASSERT_EQ(::send(raw.get(), bad.data(), bad.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(bad.size()));
        timeval tv{5, 0};
        ::setsockopt(raw.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        Bytes reply(ipc::kMaxMessageBytes);
        const ssize_t n = ::recv(raw.get(), reply.data(), reply.size(), 0);
        ASSERT_GT(n, 0) << "no reply to a malformed request: " << std::strerror(errno);
        reply.resize(static_cast<size_t>(n));
        const auto decoded = ipc::decode_response(reply);
        ASSERT_TRUE(decoded.ok()) << "reply does not decode: " << decoded.error().message;
        EXPECT_EQ(decoded->status, ipc::Status::malformed) << describe(*decoded);
    }
    // The same connection still serves a valid request.
    const Bytes health_request = ipc::encode(ipc::Request{8, ipc::HealthRequest{}});
    ASSERT_EQ(::send(raw.get(), health_request.data(), health_request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(health_request.size()));
    Bytes reply(ipc::kMaxMessageBytes);
    const ssize_t n = ::recv(raw.get(), reply.data(), reply.size(), 0);
    ASSERT_GT(n, 0) << std::strerror(errno);
    reply.resize(static_cast<size_t>(n));
    const auto decoded = ipc::decode_response(reply);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(decoded->status, ipc::Status::ok);
    EXPECT_EQ(decoded->request_id, 8u);

    // Nothing changed: the same sessions with the same specs.
    const std::vector<SessionStats> after = list_sessions(dp());
    ASSERT_EQ(after.size(), before.size());
    for (size_t i = 0; i < after.size(); ++i) EXPECT_EQ(after[i].spec, before[i].spec);
}

// ---------------------------------------------------------------- e. /metrics

TEST_F(DataplaneIntegration, MetricsAreValidAndMatchWhatWasSent) {
    const ExpectedCounters& expected = dp().expected();
    const std::string text = dp().scrape_text();
    const MetricsText metrics = parse_metrics(text);
    EXPECT_TRUE(metrics.problems.empty()) << "not valid exposition format:\n"
                                          << [&] {
                                                 std::string s;
                                                 for (const auto& p : metrics.problems)
                                                     s += "  " + p + "\n";
                                                 return s;
                                             }();

    if (lab::program_available("promtool")) {
        const auto file = lab().directory() / "metrics.txt";
        std::ofstream(file) << text;
        const lab::CommandResult check =
            lab::run_command({"sh", "-c", "promtool check metrics < " + file.string()});
        EXPECT_EQ(check.exit_code, 0) << "promtool check metrics:\n" << check.output;
    } else {
        std::cout << "[   INFO   ] promtool not installed: checked the format by parsing only\n";
    }

    // Exact where only this test could have caused the count; at least where the kernel
    // adds packets of its own (ARP) to the port counters. Counters are read once the
    // workers have caught up (bounded wait).
    const std::map<std::string, std::string> port{{"port", kPortName}};
    const auto at_least = [&](const std::string& name, std::map<std::string, std::string> labels,
                              uint64_t caused) {
        const double value = dp().baseline().value(name, labels).value_or(0) + caused;
        EXPECT_GE(dp().metric_when_at_least(name, labels, value), value)
            << name << " (" << caused << " caused by the tests)";
    };
    at_least("relay_dataplane_rx_packets_total", port, expected.sent_to_relay);
    at_least("relay_dataplane_tx_packets_total", port, expected.received_from_relay);
    const auto exact = [&](const std::string& name, std::map<std::string, std::string> labels,
                           uint64_t caused) {
        const double value = dp().baseline().value(name, labels).value_or(0) + caused;
        EXPECT_EQ(dp().metric_when_at_least(name, labels, value), value)
            << name << " (" << caused << " caused by the tests)";
    };
    exact("relay_dataplane_forwarded_packets_total", {}, expected.forwarded);
    exact("relay_dataplane_latches_total", {}, expected.latches);
    exact("relay_dataplane_latch_refused_total", {}, expected.latch_refused);
    // Every confirmation verified at least one mac1 (the response's).
    at_least("relay_dataplane_mac_checks_total", {}, expected.latches);
    exact("relay_dataplane_bind_acks_total", {}, expected.bind_acks);
    exact("relay_dataplane_icmp_echo_replies_total", {}, expected.echo_replies);
    exact("relay_dataplane_drops_total", {{"reason", "not_latched"}}, expected.not_latched);
    exact("relay_dataplane_drops_total", {{"reason", "no_session"}}, expected.no_session);
    exact("relay_dataplane_drops_total", {{"reason", "no_neighbour"}}, 0);
    exact("relay_dataplane_neighbour_held_total", {}, expected.neighbour_held);
    exact("relay_dataplane_neighbour_held_sent_total", {}, expected.neighbour_held_sent);
    exact("relay_dataplane_drops_total", {{"reason", "tx_full"}}, 0);
    exact("relay_dataplane_drops_total", {{"reason", "rate_limited"}}, 0);
    EXPECT_EQ(dp().metric("relay_dataplane_sessions"), static_cast<double>(expected.sessions));
    EXPECT_EQ(dp().metric("relay_dataplane_info", {{"node", "dpit"}}), 1);
    // The worker's heartbeat and the IPC thread's gauges are exported (-1: absent).
    EXPECT_GE(dp().metric("relay_dataplane_worker_last_poll_age_seconds", {{"lcore", "1"}}), 0);
    EXPECT_GE(dp().metric("relay_dataplane_session_commands_in_flight"), 0);
    EXPECT_GE(dp().metric("relay_dataplane_ipc_busy_total"), 0);
}

// ---------------------------------------------------------------- e2. a peer that never answers

// The ARP requests a sender puts on an interface of a namespace, counted from a packet socket
// opened there before they are sent.
class ArpRequestCounter {
  public:
    ArpRequestCounter(const std::string& ns, const std::string& ifname) {
        fd_ = lab::run_in_netns(ns, [&] {
            const int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ARP));
            if (fd < 0)
                throw std::runtime_error("AF_PACKET socket: " + std::string(strerror(errno)));
            sockaddr_ll at{};
            at.sll_family = AF_PACKET;
            at.sll_protocol = htons(ETH_P_ARP);
            at.sll_ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
            if (::bind(fd, reinterpret_cast<const sockaddr*>(&at), sizeof at) != 0) {
                ::close(fd);
                throw std::runtime_error("bind to " + ifname + ": " + strerror(errno));
            }
            return fd;
        });
    }
    ~ArpRequestCounter() { ::close(fd_); }
    ArpRequestCounter(const ArpRequestCounter&) = delete;
    ArpRequestCounter& operator=(const ArpRequestCounter&) = delete;

    // Requests from `sender` asking for `target` received since the last call.
    unsigned take(const MacAddr& sender, Ipv4 target) {
        unsigned n = 0;
        uint8_t f[1600];
        for (ssize_t len; (len = ::recv(fd_, f, sizeof f, MSG_DONTWAIT)) > 0;) {
            if (len < 42 || f[12] != 0x08 || f[13] != 0x06 || f[20] != 0 || f[21] != 1) continue;
            Ipv4 tpa;
            std::memcpy(&tpa, f + 38, 4);
            n += std::memcmp(f + 22, sender.bytes.data(), 6) == 0 && ntohl(tpa) == target;
        }
        return n;
    }

  private:
    int fd_ = -1;
};

// (After e: it makes no_neighbour drops on purpose.) Packets to an on-link peer that does not
// answer ARP are held, at most 4 for it (the oldest give way, as drops), and dropped as
// no_neighbour once the data plane gives up asking (three requests, a second apart); none is
// sent.
TEST_F(DataplaneIntegration, PacketsToAnOnLinkPeerThatNeverAnswersAreDroppedAfterAWhile) {
    constexpr uint64_t kSessionId = 7002;
    constexpr uint16_t kRelayPort = 40701;
    constexpr Ipv4 kSilentPeerIp = ipv4(198, 51, 100, 60);  // no test uses it before
    constexpr unsigned kSent = 6;
    constexpr unsigned kHeldPerNeighbour = 4;
    const SocketAddress relay{kRelayIp, kRelayPort};
    const BindSecret secret = random_secret();
    ScopedSession session(dp(), bind_session(kSessionId, kRelayPort, secret));
    const UdpSocket a = peer_socket(kPeerAIp);

    // B binds from the link (its ack goes back to the frame's sender, no ARP needed), then its
    // address disappears: nobody answers the data plane's ARP requests for it.
    {
        ScopedOnLinkAddress silent(lab(), kSilentPeerIp);
        const UdpSocket b = peer_socket(kSilentPeerIp);
        ASSERT_TRUE(bind_both_sides(dp(), secret, kSessionId, relay, a, b));
    }

    const double held_before = dp().metric("relay_dataplane_neighbour_held_total");
    const double sent_before = dp().metric("relay_dataplane_neighbour_held_sent_total");
    const double no_neighbour_before = dp().drops("no_neighbour");
    const auto relay_mac = parse_mac(lab().dataplane_mac());
    ASSERT_TRUE(relay_mac.has_value()) << lab().dataplane_mac();
    ArpRequestCounter asked(lab().network_ns(), lab().network_if());
    for (unsigned i = 0; i < kSent; ++i) a.send_to(relay, numbered_payload("to nobody", i, 64));
    dp().expected().sent_to_relay += kSent;
    dp().expected().forwarded += kSent;  // a held packet counts as forwarded
    dp().expected().neighbour_held += kSent;

    EXPECT_EQ(
        dp().metric_when_at_least("relay_dataplane_neighbour_held_total", {}, held_before + kSent),
        held_before + kSent);
    // The oldest two gave way to newer ones at once; the other four wait for an answer.
    EXPECT_EQ(
        dp().drops_when_at_least("no_neighbour", no_neighbour_before + kSent - kHeldPerNeighbour),
        no_neighbour_before + kSent - kHeldPerNeighbour);
    // Then the data plane gives up on them.
    EXPECT_EQ(dp().drops_when_at_least("no_neighbour", no_neighbour_before + kSent),
              no_neighbour_before + kSent);
    EXPECT_GE(asked.take(*relay_mac, kSilentPeerIp), 3u)
        << "held packets were dropped before the data plane had asked three times";
    EXPECT_EQ(dp().metric("relay_dataplane_neighbour_held_sent_total"), sent_before);

    const auto stats = get_session(dp(), kSessionId);
    ASSERT_TRUE(stats.has_value());
    EXPECT_EQ(stats->sides[0].rx_packets, kSent) << "counted as forwarded when held";
}

// ---------------------------------------------------------------- f. SIGTERM

// Sends one raw Ethernet frame out of `ifname` in network namespace `ns`.
void send_raw_frame(const std::string& ns, const std::string& ifname, const Bytes& frame) {
    lab::run_in_netns(ns, [&] {
        const int fd = ::socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
        if (fd < 0) throw std::runtime_error("AF_PACKET socket: " + std::string(strerror(errno)));
        sockaddr_ll to{};
        to.sll_family = AF_PACKET;
        to.sll_ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
        to.sll_halen = 6;
        std::memcpy(to.sll_addr, frame.data(), 6);
        const ssize_t sent = ::sendto(fd, frame.data(), frame.size(), 0,
                                      reinterpret_cast<const sockaddr*>(&to), sizeof to);
        ::close(fd);
        if (sent != static_cast<ssize_t>(frame.size()))
            throw std::runtime_error("sendto on " + ifname + " failed");
    });
}

// An ARP reply nobody asked for, claiming the gateway's address for another MAC, is not
// learned: relayed traffic keeps going to the real gateway.
TEST_F(DataplaneIntegration, UnsolicitedArpCannotRedirectRelayedTraffic) {
    const auto relay_mac = parse_mac(lab().dataplane_mac());
    ASSERT_TRUE(relay_mac.has_value()) << lab().dataplane_mac();
    const MacAddr forged{{0x02, 0x66, 0x66, 0x66, 0x66, 0x66}};
    Bytes frame(60, 0);
    std::memcpy(frame.data(), relay_mac->bytes.data(), 6);
    std::memcpy(frame.data() + 6, forged.bytes.data(), 6);
    frame[12] = 0x08, frame[13] = 0x06;                                    // ARP
    const uint8_t header[8] = {0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02};  // Ethernet/IPv4 reply
    std::memcpy(frame.data() + 14, header, 8);
    std::memcpy(frame.data() + 22, forged.bytes.data(), 6);  // sender MAC: the forger's
    const uint32_t gateway_be = htonl(kGatewayIp), relay_be = htonl(kRelayIp);
    std::memcpy(frame.data() + 28, &gateway_be, 4);  // sender IP: the gateway's
    std::memcpy(frame.data() + 32, relay_mac->bytes.data(), 6);
    std::memcpy(frame.data() + 38, &relay_be, 4);

    const double ignored_before = dp().metric("relay_dataplane_arp_ignored_total");
    send_raw_frame(lab().network_ns(), lab().network_if(), frame);
    dp().expected().sent_to_relay++;
    EXPECT_GE(
        dp().metric_when_at_least("relay_dataplane_arp_ignored_total", {}, ignored_before + 1),
        ignored_before + 1);

    // Relayed datagrams still reach the network (sent to the forged MAC, the kernel would
    // drop them on the veth).
    constexpr uint64_t kSessionId = 6001;
    constexpr uint16_t kRelayPort = 40600;
    const SocketAddress relay{kRelayIp, kRelayPort};
    const BindSecret secret = random_secret();
    ScopedSession session(dp(), bind_session(kSessionId, kRelayPort, secret));
    const UdpSocket a = peer_socket(kPeerAIp);
    const UdpSocket b = peer_socket(kPeerBIp);
    ASSERT_TRUE(bind_both_sides(dp(), secret, kSessionId, relay, a, b));
    std::vector<Bytes> a_to_b;
    for (unsigned k = 0; k < 10; ++k) a_to_b.push_back(numbered_payload("arp", k, 64));
    EXPECT_EQ(relay_and_check(dp(), a, b, relay, a_to_b), a_to_b.size());
}

// A session nobody uses is expired by its worker after its idle timeout; the data plane
// forgets it (list, get, sessions gauge), counts it, and its relay endpoint can be reused.
TEST_F(DataplaneIntegration, IdleSessionsExpireAndFreeTheirEndpoint) {
    constexpr uint64_t kSessionId = 5001;
    constexpr uint16_t kRelayPort = 40500;
    const double expired_before = dp().metric("relay_dataplane_sessions_expired_total");
    SessionSpec spec = bind_session(kSessionId, kRelayPort, random_secret());
    spec.idle_timeout_s = 1;
    auto added = call(dp(), ipc::AddSessionRequest{spec});
    ASSERT_EQ(added.status, ipc::Status::ok) << describe(added);
    ASSERT_TRUE(get_session(dp(), kSessionId).has_value());

    // Bounded wait for the expiry (timeout 1 s, scanned every millisecond).
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (get_session(dp(), kSessionId).has_value() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(100ms);
    EXPECT_FALSE(get_session(dp(), kSessionId).has_value()) << "session never expired";
    EXPECT_EQ(ids_of(list_sessions(dp())).count(kSessionId), 0u);
    EXPECT_EQ(
        dp().metric_when_at_least("relay_dataplane_sessions_expired_total", {}, expired_before + 1),
        expired_before + 1);

    // The endpoint and the id are free again.
    spec.idle_timeout_s = 60;
    auto again = call(dp(), ipc::AddSessionRequest{spec});
    EXPECT_EQ(again.status, ipc::Status::ok) << describe(again);
    auto removed = call(dp(), ipc::RemoveSessionRequest{kSessionId});
    EXPECT_EQ(removed.status, ipc::Status::ok) << describe(removed);
}

// The other kernel-backed virtual devices the data plane supports: each answers ARP and ping
// on the lab's veth and resolves the gateway (net_tap is what `make run` uses; net_ring is
// relay-bench's).
TEST_F(DataplaneIntegration, RunsOnAfXdpAndPcapDevices) {
    for (const std::string device : {"net_af_xdp", "net_pcap"}) {
        SCOPED_TRACE(device);
        DataplaneInstance& other = g_lab->restart_dataplane(1, device);
        EXPECT_GE(other.drops_when_at_least("arp_consumed", 1), 1) << "gateway never answered";
        lab().network().ip({"neigh", "flush", "dev", lab().network_if()});
        const lab::CommandResult ping =
            lab::run_command({"ip", "netns", "exec", lab().network_ns(), "ping", "-n", "-c", "3",
                              "-i", "0.2", "-W", "5", format_ipv4(kRelayIp)});
        EXPECT_EQ(ping.exit_code, 0) << ping.output << other.log();
        EXPECT_GE(other.metric_when_at_least("relay_dataplane_icmp_echo_replies_total", {}, 3), 3);
        EXPECT_GE(other.metric("relay_dataplane_arp_replies_total"), 1);
        g_lab->forget_dataplane();
    }
}

// Two workers: sessions are owned by the worker their relay port maps to, the device's three
// RX queues are shared between the two, so flows that arrive on a worker that does not own
// their session are handed to the owner. Every session still relays every packet.
TEST_F(DataplaneIntegration, TwoWorkersShardSessionsAndHandOffForeignPackets) {
    DataplaneInstance& two = g_lab->restart_dataplane(2);
    two.wait_for_gateway();
    auto health = call(two, ipc::HealthRequest{});
    ASSERT_EQ(health.status, ipc::Status::ok) << describe(health);
    EXPECT_EQ(std::get<ipc::HealthReply>(health.body).workers, 2u);

    // 16 sessions on consecutive ports (owners alternate) with their own flows: with the
    // kernel spreading 32 flows over 3 queues, some land on the non-owner (the chance that
    // none does is below 1e-9).
    constexpr unsigned kSessions = 16;
    constexpr unsigned kPacketsEachWay = 20;
    const BindSecret secret = random_secret();
    std::vector<std::unique_ptr<ScopedSession>> sessions;
    for (unsigned i = 0; i < kSessions; ++i) {
        const auto port = static_cast<uint16_t>(41000 + i);
        sessions.push_back(
            std::make_unique<ScopedSession>(two, bind_session(3000 + i, port, secret)));
        const SocketAddress relay{kRelayIp, port};
        const UdpSocket a = peer_socket(kPeerAIp);
        const UdpSocket b = peer_socket(kPeerBIp);
        uint8_t side = 0;
        for (const UdpSocket* peer : {&a, &b}) {
            const auto request = wire::bind::make_request(secret, 3000 + i, side, 1, peer->local());
            peer->send_to(relay, request.data(), request.size());
            const auto ack = peer->receive(kArrivalTimeout);
            ASSERT_TRUE(ack.has_value()) << "no bind ack on port " << port << " side " << int{side};
            EXPECT_EQ(ack->payload[6], wire::bind::kStatusLatched);
            ++side;
        }
        std::vector<Bytes> a_to_b, b_to_a;
        for (unsigned k = 0; k < kPacketsEachWay; ++k) {
            a_to_b.push_back(numbered_payload(std::string("a").append(std::to_string(i)), k, 64));
            b_to_a.push_back(numbered_payload(std::string("b").append(std::to_string(i)), k, 64));
        }
        EXPECT_EQ(relay_and_check(two, a, b, relay, a_to_b), kPacketsEachWay) << "port " << port;
        EXPECT_EQ(relay_and_check(two, b, a, relay, b_to_a), kPacketsEachWay) << "port " << port;
    }
    EXPECT_EQ(list_sessions(two).size(), kSessions);
    for (unsigned i = 0; i < kSessions; ++i) {
        const auto stats = get_session(two, 3000 + i);
        ASSERT_TRUE(stats.has_value());
        EXPECT_EQ(stats->sides[0].rx_packets, kPacketsEachWay);
        EXPECT_EQ(stats->sides[1].rx_packets, kPacketsEachWay);
    }
    EXPECT_GT(two.metric("relay_dataplane_handoffs_total"), 0.0)
        << "no packet needed a handoff: the multi-worker dispatch was not exercised";
    EXPECT_EQ(two.drops("wrong_shard"), 0.0);
    EXPECT_EQ(two.metric("relay_dataplane_forwarded_packets_total"),
              double(kSessions * 2 * kPacketsEachWay));
    sessions.clear();
    EXPECT_TRUE(list_sessions(two).empty());
    if (HasFailure()) std::cerr << "---- relay-dataplane output ----\n" << two.log();
    g_lab->forget_dataplane();  // the next test starts the usual one-worker data plane
}

TEST_F(DataplaneIntegration, ExitsCleanlyOnSigterm) {
    const std::string socket = dp().socket_path();
    ASSERT_TRUE(std::filesystem::exists(socket));
    ASSERT_EQ(::kill(dp().process().pid(), SIGTERM), 0);
    const auto status = dp().process().wait_for_exit(
        std::chrono::duration_cast<std::chrono::milliseconds>(kStopTimeout));
    ASSERT_TRUE(status.has_value()) << "still running after SIGTERM";
    EXPECT_TRUE(WIFEXITED(*status)) << "killed by signal " << WTERMSIG(*status);
    if (WIFEXITED(*status)) {
        EXPECT_EQ(WEXITSTATUS(*status), 0);
    }
    EXPECT_FALSE(std::filesystem::exists(socket)) << socket << " left behind";
    if (HasFailure()) std::cerr << "---- relay-dataplane output ----\n" << dp().log();
    g_lab->forget_dataplane();  // a later test starts a fresh one
}

}  // namespace
}  // namespace relay::integration
