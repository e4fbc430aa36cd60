// relay-control and relay-dataplane together, as on a node, driven by test peers over a
// network-namespace lab (control_lab.hpp has the picture): STUN with coturn's client,
// registration and NAT classes, rendezvous, relay fallback through the real data plane,
// a control restart under relayed traffic, authentication at the socket, the admin socket
// and a data-plane restart.
//
// One lab serves every test (a gtest Environment).  The tests run in file order and build
// on each other only where the brief's scenario does (a restart needs a session); each one
// makes sure of what it needs (registration, a relay session), so a single test also runs
// alone under --gtest_filter.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "control_lab.hpp"
#include "nat_policy.hpp"
#include "relay/control/credentials.hpp"
#include "relay/control/messages.hpp"
#include "relay/ipc/dataplane_protocol.hpp"
#include "relay/peer/control_client.hpp"
#include "wireguard_vectors.hpp"

namespace relay::integration {
namespace {

using namespace std::chrono_literals;
using namespace relay::control_lab;
using control::Message;
using lab::Bytes;
using nlohmann::json;
namespace wgv = relay::fixtures::wg_vectors;

// Bounds of waits for things that must happen; never what an assertion measures.
constexpr auto kArrivalTimeout = 5s;
constexpr auto kStateTimeout = 15s;
// How long "no reply" is waited for, once control has counted the datagram (so a reply, if
// there were one, would already be on its way).
constexpr auto kSilence = 300ms;
constexpr int kRequestTimeoutMs = 3000;

using Clock = std::chrono::steady_clock;

// A test peer: its agent (a ControlClient) and its "WireGuard" socket, both in its namespace.
struct TestPeer {
    std::string name;
    std::string ns;
    Ipv4 ip = 0;
    control::KeyPair agent;
    PublicKey wg_key{};
    std::optional<peer::ControlClient> client;
    std::optional<lab::UdpSocket> wg;
    unsigned registered_with = 0;  // the control instance it last registered with (0: none)
};

// The relay session of the pair A-B that the later tests share.
struct PairSession {
    SessionSpec spec;
    uint64_t latched_in = 0;  // data-plane instance id in which both sides were latched
};

class ControlEnvironment : public ::testing::Environment {
  public:
    void SetUp() override {
        if (::geteuid() != 0) {
            setup_error_ =
                "control-integration needs root (network namespaces, veth, AF_PACKET); run it "
                "as root, as CI does";
            return;
        }
        for (const char* tool : {"ip", "ethtool"}) {
            if (!lab::program_available(tool)) {
                setup_error_ = std::string("control-integration needs `") + tool + "` in PATH";
                return;
            }
        }
        try {
            lab::remove_stale_leftovers(kNamePrefix);
            topology_ = std::make_unique<Topology>();
            start_dataplane();
            dataplane_->wait_for_gateway();
            start_control();
            control_->wait_for_admin();
            make_peer(a_, "A", 0, kClientAIp, wgv::kPeerAPublicKey);
            make_peer(b_, "B", 1, kClientBIp, wgv::kPeerBPublicKey);
        } catch (const std::exception& e) {
            setup_error_ = std::string("cannot build the lab: ") + e.what();
        }
    }
    void TearDown() override {
        a_ = TestPeer{};
        b_ = TestPeer{};
        control_.reset();
        dataplane_.reset();
        topology_.reset();
    }

    const std::string& setup_error() const { return setup_error_; }
    Topology& topology() { return *topology_; }
    DataplaneProcess& dataplane() { return *dataplane_; }
    ControlProcess& control() { return *control_; }
    DataplaneProcess* dataplane_if_any() { return dataplane_.get(); }
    ControlProcess* control_if_any() { return control_.get(); }
    unsigned control_instance() const { return control_instances_; }
    TestPeer& a() { return a_; }
    TestPeer& b() { return b_; }
    std::optional<PairSession>& pair_session() { return pair_session_; }

    // SIGKILL, then a new process (bounded waits: STUN answers).
    void kill_control() {
        ::kill(control_->process().pid(), SIGKILL);
        control_->process().wait_for_exit(std::chrono::milliseconds(10000));
    }
    void start_control() {
        control_ = std::make_unique<ControlProcess>(*topology_, ++control_instances_);
    }
    void kill_dataplane() {
        ::kill(dataplane_->process().pid(), SIGKILL);
        dataplane_->process().wait_for_exit(std::chrono::milliseconds(10000));
        dataplane_.reset();
    }
    void start_dataplane() {
        dataplane_ = std::make_unique<DataplaneProcess>(*topology_, ++dataplane_instances_);
    }

  private:
    void make_peer(TestPeer& p, const std::string& name, int ns_index, Ipv4 ip,
                   const PublicKey& wg) {
        p.name = name;
        p.ns = topology_->client_ns(ns_index);
        p.ip = ip;
        p.agent = control::generate_key_pair();
        p.wg_key = wg;
        p.client.emplace(
            open_client_in(p.ns, p.agent, topology_->server_keys().public_key, {ip, 0}));
        p.wg.emplace(lab::UdpSocket::open_in(p.ns, {ip, 0}));
    }

    std::string setup_error_;
    std::unique_ptr<Topology> topology_;
    std::unique_ptr<DataplaneProcess> dataplane_;
    std::unique_ptr<ControlProcess> control_;
    unsigned control_instances_ = 0;
    unsigned dataplane_instances_ = 0;
    TestPeer a_, b_;
    std::optional<PairSession> pair_session_;
};

ControlEnvironment* const g_env = [] {
    auto* environment = new ControlEnvironment;
    ::testing::AddGlobalTestEnvironment(environment);
    return environment;
}();

// ---------------------------------------------------------------- protocol helpers

std::string describe(const Message& m) {
    std::string out = control::to_string(control::type_of(m.body));
    if (const auto* e = std::get_if<control::Error>(&m.body))
        out += std::string(" ") + control::to_string(e->code) + " \"" + e->text + "\"";
    return out;
}

// The body of `m` as T; throws (failing the test with `what`) when it is something else.
template <typename T>
T body_as(const Message& m, const std::string& what) {
    if (const T* body = std::get_if<T>(&m.body)) return *body;
    throw std::runtime_error(what + ": got " + describe(m));
}

Message request(TestPeer& p, uint8_t port, const control::Body& body) {
    auto reply = p.client->request(port, body, kRequestTimeoutMs);
    if (!reply)
        throw std::runtime_error(p.name + ": no reply to " +
                                 control::to_string(control::type_of(body)) + ": " + reply.error());
    return std::move(*reply);
}

control::RegisterPeer registration_of(const TestPeer& p) {
    control::RegisterPeer r;
    r.token = g_env->topology().token();
    r.wg_public_key = p.wg_key;
    r.wg_listen_port = p.wg->local().port;
    r.agent_port = p.client->local_address().port;
    r.local_addresses = {{p.ip, p.wg->local().port}};
    return r;
}

control::Registered register_peer(TestPeer& p) {
    auto r = body_as<control::Registered>(request(p, 0, registration_of(p)), p.name + " register");
    p.registered_with = g_env->control_instance();
    return r;
}

control::Status keepalive(TestPeer& p, uint8_t port, uint32_t rtt_us = 0) {
    control::Keepalive k;
    k.rtt_us = rtt_us;
    return body_as<control::Status>(request(p, port, k), p.name + " keepalive");
}

// Registered with the running control and seen on both ports (so classified).
void ensure_registered(TestPeer& p) {
    if (p.registered_with == g_env->control_instance()) return;
    register_peer(p);
    keepalive(p, 1);
    keepalive(p, 0);
}

void drain_notifications(TestPeer& p) {
    while (p.client->next_notification(0)) {
    }
}

// The next notification of type T for which `match` holds (others are skipped: a promotion
// trial's punches may arrive at any time), within kArrivalTimeout.
template <typename T>
std::optional<T> wait_notification(TestPeer& p, const std::function<bool(const T&)>& match) {
    const auto deadline = Clock::now() + kArrivalTimeout;
    while (Clock::now() < deadline) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        auto m = p.client->next_notification(static_cast<int>(std::max<int64_t>(left, 1)));
        if (!m) continue;
        if (const T* body = std::get_if<T>(&m->body); body && match(*body)) return *body;
    }
    return std::nullopt;
}

std::string key_text(const PublicKey& k) {
    return control::key_to_base64(k);
}

// ---------------------------------------------------------------- data-plane helpers

ipc::Response ipc_call(const ipc::RequestBody& body) {
    auto r = g_env->dataplane().client().call(body, 5000);
    if (!r) throw std::runtime_error("data-plane IPC: " + r.error());
    return std::move(*r);
}

std::optional<SessionStats> dataplane_session(uint64_t id) {
    const ipc::Response r = ipc_call(ipc::GetSessionRequest{id});
    if (r.status == ipc::Status::not_found) return std::nullopt;
    if (r.status != ipc::Status::ok)
        throw std::runtime_error(std::string("get session: ") + ipc::to_string(r.status) + " " +
                                 r.error);
    return std::get<ipc::SessionReply>(r.body).session;
}

std::vector<SessionStats> dataplane_sessions() {
    std::vector<SessionStats> out;
    uint64_t after = 0;
    for (;;) {
        const ipc::Response r = ipc_call(ipc::ListSessionsRequest{after, ipc::kMaxListPage});
        if (r.status != ipc::Status::ok) throw std::runtime_error("list sessions failed");
        const auto& page = std::get<ipc::ListSessionsReply>(r.body);
        out.insert(out.end(), page.sessions.begin(), page.sessions.end());
        if (!page.more || page.sessions.empty()) return out;
        after = page.sessions.back().spec.id;
    }
}

// relay-control's view of one session (admin "sessions"), or null.
json admin_session(uint64_t id) {
    const json reply = g_env->control().admin({{"command", "sessions"}});
    if (!reply.value("ok", false)) throw std::runtime_error("admin sessions: " + reply.dump());
    for (const json& s : reply["sessions"])
        if (s["id"].get<uint64_t>() == id) return s;
    return nullptr;
}

json admin_status() {
    const json reply = g_env->control().admin({{"command", "status"}});
    if (!reply.value("ok", false)) throw std::runtime_error("admin status: " + reply.dump());
    return reply;
}

// Polls `condition` until it holds or `timeout` passes; returns whether it held.
bool eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = kStateTimeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        if (condition()) return true;
        if (Clock::now() >= deadline) return false;
        std::this_thread::sleep_for(20ms);
    }
}

// A control metric once it has reached `at_least` (bounded wait), or its last value.
double control_metric_when(const std::string& name,
                           const std::map<std::string, std::string>& labels, double at_least) {
    double value = -1;
    eventually([&] {
        value = g_env->control().metric(name, labels).value_or(0);
        return value >= at_least;
    });
    return value;
}

double control_metric(const std::string& name,
                      const std::map<std::string, std::string>& labels = {}) {
    return g_env->control().metric(name, labels).value_or(0);
}

void drain_socket(const lab::UdpSocket& s) {
    while (s.receive(0ms)) {
    }
}

// A WireGuard transport-data message shaped like `captured`, made unique by its counter.
Bytes numbered_data(const std::array<uint8_t, 128>& captured, uint64_t counter) {
    Bytes out(captured.begin(), captured.end());
    for (int i = 0; i < 8; ++i) out[8 + i] = static_cast<uint8_t>(counter >> (8 * i));
    return out;
}

uint64_t counter_of(const Bytes& data) {
    uint64_t c = 0;
    for (int i = 0; i < 8 && 8 + i < static_cast<int>(data.size()); ++i)
        c |= uint64_t{data[8 + i]} << (8 * i);
    return c;
}

// Sends `payload` from `from` to the relay and expects it, unchanged and from the relay, at
// `to`.
void relay_one(const lab::UdpSocket& from, const lab::UdpSocket& to, SocketAddress relay,
               const Bytes& payload, const std::string& what) {
    from.send_to(relay, payload);
    const auto got = to.receive(kArrivalTimeout);
    if (!got)
        throw std::runtime_error(what + " was not relayed to " + format_socket_address(to.local()));
    if (got->payload != payload || !(got->source == relay))
        throw std::runtime_error(what + " arrived changed or from " +
                                 format_socket_address(got->source));
}

// Latches both sides of the session at `relay` with the captured WireGuard handshake whose
// mac1 fields are keyed with A's and B's keys (the keys the peers registered): A's
// initiation makes A a candidate, B's initiation is forwarded to it, A's response confirms
// both.
void latch_pair(SocketAddress relay, uint64_t session_id) {
    TestPeer& a = g_env->a();
    TestPeer& b = g_env->b();
    drain_socket(*a.wg);
    drain_socket(*b.wg);
    a.wg->send_to(relay, Bytes(wgv::kInitiation1.begin(), wgv::kInitiation1.end()));
    if (!eventually([&] {
            auto s = dataplane_session(session_id);
            return s && s->sides[0].has_candidate;
        }))
        throw std::runtime_error("A's initiation never made A a candidate");
    relay_one(*b.wg, *a.wg, relay,
              Bytes(wgv::kInitiationFromB.begin(), wgv::kInitiationFromB.end()),
              "B's handshake initiation");
    relay_one(*a.wg, *b.wg, relay, Bytes(wgv::kResponseFromA.begin(), wgv::kResponseFromA.end()),
              "A's handshake response");
    auto s = dataplane_session(session_id);
    if (!s || !s->sides[0].latched || !s->sides[1].latched)
        throw std::runtime_error("the handshake did not latch both sides");
}

// Sends `count` data messages each way and returns how many arrived (each way).
std::pair<size_t, size_t> exchange_data(SocketAddress relay, unsigned count,
                                        uint64_t first_counter) {
    TestPeer& a = g_env->a();
    TestPeer& b = g_env->b();
    std::pair<size_t, size_t> arrived{0, 0};
    for (int direction = 0; direction < 2; ++direction) {
        const lab::UdpSocket& from = direction == 0 ? *a.wg : *b.wg;
        const lab::UdpSocket& to = direction == 0 ? *b.wg : *a.wg;
        const auto& shape = direction == 0 ? wgv::kDataAtoB1 : wgv::kDataBtoA1;
        std::set<uint64_t> expected, got;
        for (unsigned i = 0; i < count; ++i) {
            expected.insert(first_counter + i);
            from.send_to(relay, numbered_data(shape, first_counter + i));
        }
        while (got.size() < count) {
            auto d = to.receive(kArrivalTimeout);
            if (!d) break;
            if (d->source == relay && d->payload.size() == shape.size())
                got.insert(counter_of(d->payload));
        }
        const size_t n = static_cast<size_t>(std::count_if(
            got.begin(), got.end(), [&](uint64_t c) { return expected.count(c) > 0; }));
        (direction == 0 ? arrived.first : arrived.second) = n;
    }
    return arrived;
}

// The pair A-B's relay session: connect with force_relay returns the pair's session, a new
// one if it has none (both peers get the offer).  Latched in the running data plane.
PairSession& ensure_pair_session() {
    TestPeer& a = g_env->a();
    TestPeer& b = g_env->b();
    ensure_registered(a);
    ensure_registered(b);
    drain_notifications(a);
    drain_notifications(b);
    control::Connect connect;
    connect.peer = b.wg_key;
    connect.force_relay = true;
    const auto ack =
        body_as<control::ConnectAck>(request(a, 0, connect), "A connect (force_relay)");
    if (!ack.relayed) throw std::runtime_error("force_relay connect was not relayed");
    auto offer = wait_notification<control::RelayOffer>(
        a, [&](const control::RelayOffer& o) { return o.attempt_id == ack.attempt_id; });
    if (!offer) throw std::runtime_error("A got no relay offer");
    auto& session = g_env->pair_session();
    if (!session || session->spec.id != offer->session_id) {
        auto stats = dataplane_session(offer->session_id);
        if (!stats) throw std::runtime_error("offered session is not in the data plane");
        session = PairSession{stats->spec, 0};
    }
    const uint64_t instance = g_env->dataplane().instance_id();
    if (session->latched_in != instance) {
        latch_pair(offer->relay, offer->session_id);
        session->latched_in = instance;
    }
    return *session;
}

// Releases the pair's session, if it has one (so that a connect punches again).
void release_pair_session() {
    auto& session = g_env->pair_session();
    if (!session) return;
    ensure_registered(g_env->a());
    request(g_env->a(), 0, control::Release{session->spec.id});
    session.reset();
}

// ---------------------------------------------------------------- fixture

class ControlIntegration : public ::testing::Test {
  protected:
    void SetUp() override { ASSERT_TRUE(g_env->setup_error().empty()) << g_env->setup_error(); }
    void TearDown() override {
        ControlProcess* control = g_env->control_if_any();
        if (control) {
            EXPECT_TRUE(control->process().running()) << "relay-control is no longer running";
        }
        if (!HasFailure()) return;
        if (control) std::cerr << "---- relay-control output ----\n" << control->log();
        if (DataplaneProcess* dp = g_env->dataplane_if_any())
            std::cerr << "---- relay-dataplane output ----\n" << dp->log();
    }
    TestPeer& a() { return g_env->a(); }
    TestPeer& b() { return g_env->b(); }
};

// ---------------------------------------------------------------- 1. STUN

// coturn's own STUN client, run in each client namespace against both control ports, reads
// the client's address as the mapped address.
TEST_F(ControlIntegration, CoturnStunClientReadsItsOwnAddressOnBothPorts) {
    ASSERT_TRUE(lab::program_available("turnutils_stunclient"))
        << "turnutils_stunclient (package coturn) is not installed; CI installs it "
           "(apt-get install coturn)";
    const double answered_before = control_metric("relay_control_stun_responses_total");
    static const std::regex kReflexive(R"(UDP reflexive addr: ([0-9.]+):([0-9]+))");
    unsigned runs = 0;
    for (const TestPeer* p : {&a(), &b()}) {
        for (uint16_t port : kControlPorts) {
            SCOPED_TRACE(p->name + " -> port " + std::to_string(port));
            const lab::CommandResult r = lab::run_command(
                {"ip", "netns", "exec", p->ns, "timeout", "20", "turnutils_stunclient", "-p",
                 std::to_string(port), format_ipv4(kManagementIp)});
            ++runs;
            std::smatch m;
            ASSERT_TRUE(std::regex_search(r.output, m, kReflexive))
                << "no reflexive address in turnutils_stunclient's output (exit " << r.exit_code
                << "):\n"
                << r.output;
            EXPECT_EQ(m[1].str(), format_ipv4(p->ip)) << r.output;
            EXPECT_NE(std::stoul(m[2].str()), 0u) << r.output;
        }
    }
    EXPECT_GE(control_metric_when("relay_control_stun_responses_total", {}, answered_before + runs),
              answered_before + runs);
}

// ---------------------------------------------------------------- 2. registration

TEST_F(ControlIntegration, PeersRegisterAndAreClassifiedOpen) {
    const double ok_before =
        control_metric("relay_control_registrations_total", {{"result", "ok"}});
    for (TestPeer* p : {&a(), &b()}) {
        SCOPED_TRACE(p->name);
        const auto registered = register_peer(*p);
        EXPECT_EQ(registered.reflexive, p->client->local_address())
            << format_socket_address(registered.reflexive);
        EXPECT_EQ(registered.keepalive_interval_s, kKeepaliveIntervalS);
        EXPECT_EQ(registered.peer_timeout_s, kPeerTimeoutS);

        // The second port completes the observation: same mapping, a local address: open.
        const auto on_other = keepalive(*p, 1);
        EXPECT_EQ(on_other.reflexive, p->client->local_address());
        EXPECT_EQ(on_other.server_port, kControlPorts[1]);
        EXPECT_EQ(on_other.nat_class, control::NatClass::open)
            << "class reported to the keepalive that completed the observation: "
            << control::to_string(on_other.nat_class);
        const auto on_first = keepalive(*p, 0);
        EXPECT_EQ(on_first.reflexive, p->client->local_address());
        EXPECT_EQ(on_first.server_port, kControlPorts[0]);
        EXPECT_EQ(on_first.nat_class, control::NatClass::open)
            << control::to_string(on_first.nat_class);
    }

    // The peer gauge is refreshed once a second: wait (bounded) until it shows both.
    double open = -1;
    EXPECT_TRUE(eventually([&] {
        open = control_metric("relay_control_peers", {{"nat_class", "open"}});
        return open == 2;
    })) << "relay_control_peers{nat_class=\"open\"} = "
        << open;
    EXPECT_EQ(control_metric("relay_control_registrations_total", {{"result", "ok"}}),
              ok_before + 2);

    // The admin view agrees.
    const json peers = g_env->control().admin({{"command", "peers"}});
    ASSERT_TRUE(peers.value("ok", false)) << peers.dump();
    EXPECT_EQ(peers["total"], 2);
    for (const TestPeer* p : {&a(), &b()}) {
        bool found = false;
        for (const json& q : peers["peers"]) {
            if (q["wg_key"] != key_text(p->wg_key)) continue;
            found = true;
            EXPECT_EQ(q["nat_class"], "open");
            EXPECT_EQ(q["network"], kNetworkName);
            EXPECT_EQ(q["reflexive"], format_socket_address(p->client->local_address()));
        }
        EXPECT_TRUE(found) << p->name << " missing from " << peers.dump();
    }
}

// ---------------------------------------------------------------- 3. rendezvous

TEST_F(ControlIntegration, ConnectSendsBothPunchesWithRoundTripCompensatedDelays) {
    release_pair_session();
    ensure_registered(a());
    ensure_registered(b());
    constexpr uint32_t kRttA = 20000, kRttB = 80000;
    keepalive(a(), 0, kRttA);
    keepalive(b(), 0, kRttB);
    drain_notifications(a());
    drain_notifications(b());

    control::Connect connect;
    connect.peer = b().wg_key;
    const auto ack = body_as<control::ConnectAck>(request(a(), 0, connect), "A connect");
    EXPECT_FALSE(ack.relayed) << "two open peers must punch";
    EXPECT_NE(ack.attempt_id, 0u);

    auto same_attempt = [&](const control::Punch& p) { return p.attempt_id == ack.attempt_id; };
    const auto punch_a = wait_notification<control::Punch>(a(), same_attempt);
    const auto punch_b = wait_notification<control::Punch>(b(), same_attempt);
    ASSERT_TRUE(punch_a.has_value()) << "A got no punch";
    ASSERT_TRUE(punch_b.has_value()) << "B got no punch";

    // Each learns the other's WireGuard key and address (no NAT: its own address and
    // WireGuard port).
    EXPECT_EQ(key_text(punch_a->peer), key_text(b().wg_key));
    EXPECT_EQ(key_text(punch_b->peer), key_text(a().wg_key));
    const control::Candidate b_candidate{b().wg->local(), control::CandidateKind::reflexive};
    const control::Candidate a_candidate{a().wg->local(), control::CandidateKind::reflexive};
    EXPECT_NE(std::find(punch_a->candidates.begin(), punch_a->candidates.end(), b_candidate),
              punch_a->candidates.end())
        << "A's punch lacks B's address " << format_socket_address(b().wg->local());
    EXPECT_NE(std::find(punch_b->candidates.begin(), punch_b->candidates.end(), a_candidate),
              punch_b->candidates.end())
        << "B's punch lacks A's address " << format_socket_address(a().wg->local());
    EXPECT_EQ(punch_a->deadline_ms, kPunchDeadlineMs);
    EXPECT_EQ(punch_b->deadline_ms, kPunchDeadlineMs);

    // Both first packets leave together: each delay is shortened by half its own round trip.
    const control::FireDelays expected = control::fire_delays(kRttA, kRttB, kPunchLeadMs);
    EXPECT_EQ(punch_a->fire_delay_ms, expected.a_ms);
    EXPECT_EQ(punch_b->fire_delay_ms, expected.b_ms);
    const int64_t difference = int64_t{punch_a->fire_delay_ms} - int64_t{punch_b->fire_delay_ms};
    EXPECT_NEAR(difference, (kRttB - kRttA) / 2 / 1000, 1)
        << "A fires after " << punch_a->fire_delay_ms << " ms, B after " << punch_b->fire_delay_ms;
}

// ---------------------------------------------------------------- 4. relay fallback

TEST_F(ControlIntegration, FailedPunchFallsBackToARelaySessionThatCarriesTraffic) {
    release_pair_session();
    ensure_registered(a());
    ensure_registered(b());
    drain_notifications(a());
    drain_notifications(b());
    control::Connect connect;
    connect.peer = b().wg_key;
    const auto ack = body_as<control::ConnectAck>(request(a(), 0, connect), "A connect");
    ASSERT_FALSE(ack.relayed);

    control::ResultReport failed;
    failed.attempt_id = ack.attempt_id;
    failed.peer = b().wg_key;
    failed.outcome = control::Outcome::direct_failed;
    failed.elapsed_ms = kPunchDeadlineMs;
    body_as<control::Ok>(request(a(), 0, failed), "A reports direct_failed");

    auto same_attempt = [&](const control::RelayOffer& o) {
        return o.attempt_id == ack.attempt_id;
    };
    const auto offer_a = wait_notification<control::RelayOffer>(a(), same_attempt);
    const auto offer_b = wait_notification<control::RelayOffer>(b(), same_attempt);
    ASSERT_TRUE(offer_a.has_value()) << "A got no relay offer";
    ASSERT_TRUE(offer_b.has_value()) << "B got no relay offer";
    EXPECT_EQ(offer_a->session_id, offer_b->session_id);
    EXPECT_EQ(offer_a->relay, offer_b->relay);
    EXPECT_EQ(offer_a->relay.ip, kRelayIp) << "the data plane's address";
    EXPECT_GE(offer_a->relay.port, kRelayPortMin);
    EXPECT_LE(offer_a->relay.port, kRelayPortMax);
    EXPECT_EQ(offer_a->policy, LatchPolicy::wireguard);
    EXPECT_EQ(offer_a->side, 0);
    EXPECT_EQ(offer_b->side, 1);
    EXPECT_EQ(key_text(offer_a->peer), key_text(b().wg_key));
    EXPECT_EQ(key_text(offer_b->peer), key_text(a().wg_key));
    const uint64_t id = offer_a->session_id;
    const SocketAddress relay = offer_a->relay;

    // The data plane has it, with the peers' WireGuard keys.
    auto stats = dataplane_session(id);
    ASSERT_TRUE(stats.has_value()) << "session " << id << " is not in the data plane";
    EXPECT_EQ(stats->spec.relay_ip, relay.ip);
    EXPECT_EQ(stats->spec.relay_port, relay.port);
    EXPECT_EQ(stats->spec.policy, LatchPolicy::wireguard);
    EXPECT_EQ(key_text(stats->spec.sides[0].public_key), key_text(a().wg_key));
    EXPECT_EQ(key_text(stats->spec.sides[1].public_key), key_text(b().wg_key));
    const auto listed_by_dataplane = dataplane_sessions();
    EXPECT_TRUE(std::any_of(listed_by_dataplane.begin(), listed_by_dataplane.end(),
                            [&](const SessionStats& s) { return s.spec.id == id; }))
        << "the data plane's session list lacks " << id;
    g_env->pair_session() = PairSession{stats->spec, 0};

    const json listed = admin_session(id);
    ASSERT_FALSE(listed.is_null()) << "admin sessions does not list " << id;
    EXPECT_EQ(listed["relay"], format_socket_address(relay));
    EXPECT_EQ(listed["in_dataplane"], true);
    EXPECT_EQ(listed["adopted"], false);
    EXPECT_EQ(listed["network"], kNetworkName);

    // Traffic through the data plane: the handshake latches both sides, data flows both ways.
    ASSERT_NO_THROW(latch_pair(relay, id));
    g_env->pair_session()->latched_in = g_env->dataplane().instance_id();
    constexpr unsigned kData = 100;
    const auto arrived = exchange_data(relay, kData, 1);
    EXPECT_EQ(arrived.first, kData) << "A->B data lost";
    EXPECT_EQ(arrived.second, kData) << "B->A data lost";

    // Per-side counters: A sent its response and the data (its first initiation had nowhere
    // to go), B its initiation and the data.
    stats = dataplane_session(id);
    ASSERT_TRUE(stats.has_value());
    const uint64_t ip_udp = 28;
    const uint64_t data_bytes = kData * (ip_udp + wgv::kDataAtoB1.size());
    const uint64_t response_bytes = ip_udp + wgv::kResponseFromA.size();
    const uint64_t initiation_bytes = ip_udp + wgv::kInitiationFromB.size();
    EXPECT_EQ(stats->sides[0].rx_packets, kData + 1);
    EXPECT_EQ(stats->sides[0].rx_bytes, data_bytes + response_bytes);
    EXPECT_EQ(stats->sides[0].tx_packets, kData + 1);
    EXPECT_EQ(stats->sides[0].tx_bytes, data_bytes + initiation_bytes);
    EXPECT_EQ(stats->sides[1].rx_packets, kData + 1);
    EXPECT_EQ(stats->sides[1].rx_bytes, data_bytes + initiation_bytes);
    EXPECT_EQ(stats->sides[1].tx_packets, kData + 1);
    EXPECT_EQ(stats->sides[1].tx_bytes, data_bytes + response_bytes);
    EXPECT_EQ(stats->sides[0].endpoint, a().wg->local());
    EXPECT_EQ(stats->sides[1].endpoint, b().wg->local());

    // relay-control's session listing shows the same counters.
    const json after = admin_session(id);
    ASSERT_FALSE(after.is_null());
    for (int s = 0; s < 2; ++s) {
        SCOPED_TRACE("side " + std::to_string(s));
        const json& side = after["sides"][s];
        EXPECT_EQ(side["wg_key"], key_text(s == 0 ? a().wg_key : b().wg_key));
        EXPECT_EQ(side["latched"], true);
        EXPECT_EQ(side["endpoint"], format_socket_address((s == 0 ? a() : b()).wg->local()));
        EXPECT_EQ(side["rx_packets"], stats->sides[s].rx_packets);
        EXPECT_EQ(side["tx_packets"], stats->sides[s].tx_packets);
        EXPECT_EQ(side["rx_bytes"], stats->sides[s].rx_bytes);
        EXPECT_EQ(side["tx_bytes"], stats->sides[s].tx_bytes);
    }
    EXPECT_GE(control_metric("relay_control_relay_allocations_total"), 1);
}

// ---------------------------------------------------------------- 5. control restart

TEST_F(ControlIntegration, ControlRestartLosesNoRelayedPacketAndAdoptsTheSession) {
    PairSession session;
    ASSERT_NO_THROW(session = ensure_pair_session());
    const uint64_t id = session.spec.id;
    const SocketAddress relay{session.spec.relay_ip, session.spec.relay_port};
    const lab::UdpSocket& from = *a().wg;
    const lab::UdpSocket& to = *b().wg;
    drain_socket(to);

    // A paced stream A -> B through the data plane: one datagram every 2 ms.
    constexpr uint64_t kFirst = 1'000'000;
    std::atomic<bool> stop_sending{false};
    std::atomic<uint64_t> sent{0};
    std::string send_error;
    std::thread sender([&] {
        try {
            while (!stop_sending.load()) {
                from.send_to(relay, numbered_data(wgv::kDataAtoB1, kFirst + sent.load()));
                sent.fetch_add(1);
                std::this_thread::sleep_for(2ms);
            }
        } catch (const std::exception& e) {
            send_error = e.what();
        }
    });
    std::set<uint64_t> received;
    std::atomic<bool> stop_receiving{false};
    std::mutex received_mutex;
    std::thread receiver([&] {
        while (!stop_receiving.load()) {
            auto d = to.receive(50ms);
            if (!d || !(d->source == relay)) continue;
            std::lock_guard lock(received_mutex);
            received.insert(counter_of(d->payload));
        }
    });
    struct Joiner {
        std::function<void()> fn;
        ~Joiner() { fn(); }
    } join_threads{[&] {
        stop_sending = true;
        stop_receiving = true;
        if (sender.joinable()) sender.join();
        if (receiver.joinable()) receiver.join();
    }};

    std::this_thread::sleep_for(100ms);  // the stream is flowing
    const uint64_t sent_at_kill = sent.load();
    g_env->kill_control();
    ASSERT_NO_THROW(g_env->start_control());
    ASSERT_NO_THROW(g_env->control().wait_for_admin());
    const uint64_t sent_when_back = sent.load();
    std::this_thread::sleep_for(100ms);
    stop_sending = true;
    sender.join();
    ASSERT_TRUE(send_error.empty()) << send_error;
    const uint64_t total = sent.load();
    EXPECT_GT(sent_when_back, sent_at_kill) << "no packet was sent while control was down";
    // Every packet arrives (each within kArrivalTimeout of the previous one).
    size_t last_count = 0;
    auto last_progress = Clock::now();
    for (;;) {
        size_t count;
        {
            std::lock_guard lock(received_mutex);
            count = received.size();
        }
        if (count >= total) break;
        if (count != last_count) last_count = count, last_progress = Clock::now();
        if (Clock::now() - last_progress > kArrivalTimeout) break;
        std::this_thread::sleep_for(10ms);
    }
    stop_receiving = true;
    receiver.join();
    EXPECT_EQ(received.size(), total)
        << total - received.size() << " of " << total << " relayed datagrams lost ("
        << sent_when_back - sent_at_kill << " sent while control restarted)";
    if (!received.empty()) {
        EXPECT_EQ(*received.begin(), kFirst);
        EXPECT_EQ(*received.rbegin(), kFirst + total - 1);
    }

    // Control read the session back from the data plane, intact, and holds it as adopted.
    json listed = admin_session(id);
    ASSERT_FALSE(listed.is_null()) << "restarted control does not list session " << id;
    EXPECT_EQ(listed["relay"], format_socket_address(relay));
    EXPECT_EQ(listed["adopted"], true);
    EXPECT_EQ(listed["in_dataplane"], true);
    EXPECT_EQ(listed["sides"][0]["wg_key"], key_text(a().wg_key));
    EXPECT_EQ(listed["sides"][1]["wg_key"], key_text(b().wg_key));
    EXPECT_EQ(admin_status()["relay_sessions"], 1);
    const auto stats = dataplane_session(id);
    ASSERT_TRUE(stats.has_value());
    EXPECT_TRUE(stats->spec == session.spec) << "the data plane's session spec changed";
    EXPECT_EQ(stats->spec.policy, LatchPolicy::wireguard);

    // The new control does not know the peers until they register again.
    const Message refused = request(a(), 0, control::Keepalive{});
    const auto* error = std::get_if<control::Error>(&refused.body);
    ASSERT_NE(error, nullptr) << describe(refused);
    EXPECT_EQ(error->code, control::ErrorCode::not_registered);
    register_peer(a());
    register_peer(b());
    keepalive(a(), 1), keepalive(a(), 0);
    keepalive(b(), 1), keepalive(b(), 0);
    EXPECT_TRUE(
        eventually([&] { return admin_session(id).value("adopted", true) == false; }, 5000ms))
        << "still adopted after both peers registered: " << admin_session(id).dump();
    EXPECT_EQ(admin_session(id)["network"], kNetworkName);

    // A releases it: gone from control and from the data plane, and its port is free again
    // (relay ports are drawn at random, so the pair's next session gets some free port of
    // the range; the data plane holds no session on the released one).
    body_as<control::Ok>(request(a(), 0, control::Release{id}), "A release");
    g_env->pair_session().reset();
    EXPECT_FALSE(dataplane_session(id).has_value()) << "the data plane still has session " << id;
    const ipc::Response get = ipc_call(ipc::GetSessionRequest{id});
    EXPECT_EQ(get.status, ipc::Status::not_found) << ipc::to_string(get.status);
    EXPECT_TRUE(admin_session(id).is_null());
    PairSession next;
    ASSERT_NO_THROW(next = ensure_pair_session());
    EXPECT_NE(next.spec.id, id);
    EXPECT_GE(next.spec.relay_port, kRelayPortMin);
    EXPECT_LE(next.spec.relay_port, kRelayPortMax);
    const ipc::Response in_dataplane = ipc_call(ipc::ListSessionsRequest{0, ipc::kMaxListPage});
    ASSERT_EQ(in_dataplane.status, ipc::Status::ok);
    for (const SessionStats& s : std::get<ipc::ListSessionsReply>(in_dataplane.body).sessions)
        if (s.spec.id != next.spec.id)
            EXPECT_NE(s.spec.relay_port, session.spec.relay_port)
                << "the released port is still held by session " << s.spec.id;
}

// ---------------------------------------------------------------- 6. authentication

TEST_F(ControlIntegration, WrongKeyReplayAndJunkGetNoReply) {
    const lab::UdpSocket raw = lab::UdpSocket::open_in(a().ns, {a().ip, 0});
    const SocketAddress control_port{kManagementIp, kControlPorts[0]};
    auto rejected = [](const std::string& reason) {
        return control_metric("relay_control_rejected_messages_total", {{"reason", reason}});
    };

    // Sealed to a key that is not the server's: it cannot be opened, so it is not answered.
    {
        const control::KeyPair agent = control::generate_key_pair();
        peer::ControlClient stranger =
            open_client_in(a().ns, agent, control::generate_key_pair().public_key, {a().ip, 0});
        control::RegisterPeer r = registration_of(a());
        r.wg_public_key = control::generate_key_pair().public_key;
        const double before = rejected("auth_failed");
        raw.send_to(control_port, stranger.seal(r));
        EXPECT_EQ(control_metric_when("relay_control_rejected_messages_total",
                                      {{"reason", "auth_failed"}}, before + 1),
                  before + 1);
        const auto reply = raw.receive(kSilence);
        EXPECT_FALSE(reply.has_value()) << "a reply of " << reply->payload.size() << " bytes";
    }

    // A register datagram sent twice: one reply, and the copy is counted as a replay.
    const control::KeyPair agent = control::generate_key_pair();
    peer::ControlClient d =
        open_client_in(a().ns, agent, g_env->topology().server_keys().public_key, {a().ip, 0});
    control::RegisterPeer r = registration_of(a());
    r.wg_public_key = control::generate_key_pair().public_key;
    const Bytes sealed = d.seal(r);
    const double replayed_before = rejected("replayed");
    raw.send_to(control_port, sealed);
    raw.send_to(control_port, sealed);
    const auto first = raw.receive(kArrivalTimeout);
    ASSERT_TRUE(first.has_value()) << "no reply to the register datagram";
    const auto opened = d.open(first->payload);
    ASSERT_TRUE(opened.ok()) << opened.error();
    EXPECT_TRUE(std::holds_alternative<control::Registered>(opened->body)) << describe(*opened);
    EXPECT_EQ(control_metric_when("relay_control_rejected_messages_total", {{"reason", "replayed"}},
                                  replayed_before + 1),
              replayed_before + 1);
    const auto second = raw.receive(kSilence);
    EXPECT_FALSE(second.has_value()) << "the replayed copy was answered too";

    // Junk: neither STUN, nor WireGuard, nor an envelope.
    const double unknown_before = rejected("unknown_datagram");
    const std::string junk = "\xee junk that is no protocol of ours";
    raw.send_to(control_port, Bytes(junk.begin(), junk.end()));
    EXPECT_EQ(control_metric_when("relay_control_rejected_messages_total",
                                  {{"reason", "unknown_datagram"}}, unknown_before + 1),
              unknown_before + 1);
    const auto junk_reply = raw.receive(kSilence);
    EXPECT_FALSE(junk_reply.has_value()) << "junk was answered";

    // The extra peer leaves again.
    const auto bye = d.request(0, control::Deregister{}, kRequestTimeoutMs);
    ASSERT_TRUE(bye.ok()) << bye.error();
    EXPECT_TRUE(std::holds_alternative<control::Ok>(bye->body)) << describe(*bye);
}

// ---------------------------------------------------------------- 7. admin socket

TEST_F(ControlIntegration, AdminStatusAndDrainRefuseNewSessionsOnly) {
    PairSession session;
    ASSERT_NO_THROW(session = ensure_pair_session());
    const size_t in_dataplane = dataplane_sessions().size();

    json status = admin_status();
    EXPECT_EQ(status["peers"], 2) << status.dump();
    EXPECT_EQ(status["relay_sessions"], in_dataplane) << status.dump();
    EXPECT_EQ(status["relay_sessions"], 1) << status.dump();
    EXPECT_EQ(status["dataplane_up"], true);
    EXPECT_EQ(status["draining"], false);
    EXPECT_EQ(status["relay_address"], format_ipv4(kRelayIp));
    EXPECT_EQ(status["server_public_key"], key_text(g_env->topology().server_keys().public_key));

    // A third peer, so that A has a pair without a session.
    TestPeer c;
    c.name = "C";
    c.ns = b().ns;
    c.ip = b().ip;
    c.agent = control::generate_key_pair();
    c.wg_key = control::generate_key_pair().public_key;
    c.client.emplace(
        open_client_in(c.ns, c.agent, g_env->topology().server_keys().public_key, {c.ip, 0}));
    c.wg.emplace(lab::UdpSocket::open_in(c.ns, {c.ip, 0}));
    register_peer(c);

    const json drained = g_env->control().admin({{"command", "drain"}, {"on", true}});
    EXPECT_EQ(drained["ok"], true) << drained.dump();
    EXPECT_EQ(drained["draining"], true) << drained.dump();
    EXPECT_EQ(admin_status()["draining"], true);
    EXPECT_EQ(control_metric("relay_control_draining"), 1);

    control::Connect to_c;
    to_c.peer = c.wg_key;
    to_c.force_relay = true;
    const Message refused = request(a(), 0, to_c);
    const auto* error = std::get_if<control::Error>(&refused.body);
    ASSERT_NE(error, nullptr) << "a new relay session while draining: " << describe(refused);
    EXPECT_EQ(error->code, control::ErrorCode::draining) << describe(refused);

    // Existing sessions stay, in control and in the data plane.
    EXPECT_TRUE(dataplane_session(session.spec.id).has_value());
    EXPECT_FALSE(admin_session(session.spec.id).is_null());
    EXPECT_EQ(dataplane_sessions().size(), in_dataplane);

    // Undrained, the same request gets a session (released again at once).
    const json undrained = g_env->control().admin({{"command", "drain"}, {"on", false}});
    EXPECT_EQ(undrained["draining"], false) << undrained.dump();
    const Message accepted = request(a(), 0, to_c);
    const auto* ack = std::get_if<control::ConnectAck>(&accepted.body);
    ASSERT_NE(ack, nullptr) << describe(accepted);
    EXPECT_TRUE(ack->relayed);
    const auto offer = wait_notification<control::RelayOffer>(
        c, [&](const control::RelayOffer& o) { return o.attempt_id == ack->attempt_id; });
    ASSERT_TRUE(offer.has_value()) << "C got no relay offer";
    EXPECT_TRUE(dataplane_session(offer->session_id).has_value());
    body_as<control::Ok>(request(c, 0, control::Release{offer->session_id}), "C release");
    EXPECT_FALSE(dataplane_session(offer->session_id).has_value());
    body_as<control::Ok>(request(c, 0, control::Deregister{}), "C deregister");
    EXPECT_EQ(admin_status()["peers"], 2);

    const json unknown = g_env->control().admin({{"command", "reboot"}});
    EXPECT_EQ(unknown["ok"], false) << unknown.dump();
}

// ---------------------------------------------------------------- 8. data-plane restart

TEST_F(ControlIntegration, DataplaneRestartIsNoticedAndSessionsProgrammedAgain) {
    PairSession session;
    ASSERT_NO_THROW(session = ensure_pair_session());
    const uint64_t id = session.spec.id;
    const double reprograms_before = control_metric("relay_control_dataplane_reprograms_total");
    const uint64_t old_instance = g_env->dataplane().instance_id();

    g_env->kill_dataplane();
    EXPECT_TRUE(eventually([] { return control_metric("relay_control_dataplane_up") == 0; }))
        << "control did not notice the data plane was gone";
    ASSERT_NO_THROW(g_env->start_dataplane());
    EXPECT_NE(g_env->dataplane().instance_id(), old_instance);

    // Control notices the new instance (health check every second) and programs the session
    // into it again, unchanged.
    EXPECT_TRUE(eventually([&] { return dataplane_session(id).has_value(); }))
        << "session " << id << " never reappeared in the new data plane";
    const auto stats = dataplane_session(id);
    ASSERT_TRUE(stats.has_value());
    EXPECT_TRUE(stats->spec == session.spec) << "reprogrammed with a different spec";
    EXPECT_GE(
        control_metric_when("relay_control_dataplane_reprograms_total", {}, reprograms_before + 1),
        reprograms_before + 1);
    EXPECT_EQ(control_metric("relay_control_dataplane_up"), 1);
    const json listed = admin_session(id);
    ASSERT_FALSE(listed.is_null());
    EXPECT_EQ(listed["in_dataplane"], true);

    // After the (bounded) gap, the peers' next handshake latches it again and data flows.
    ASSERT_NO_THROW(g_env->dataplane().wait_for_gateway());
    const SocketAddress relay{session.spec.relay_ip, session.spec.relay_port};
    ASSERT_NO_THROW(latch_pair(relay, id));
    g_env->pair_session()->latched_in = g_env->dataplane().instance_id();
    const auto arrived = exchange_data(relay, 20, 5'000'000);
    EXPECT_EQ(arrived.first, 20u);
    EXPECT_EQ(arrived.second, 20u);
}

}  // namespace
}  // namespace relay::integration
