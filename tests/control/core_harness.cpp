#include "core_harness.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "relay/control/credentials.hpp"
#include "relay/crypto/mac1.hpp"
#include "relay/wire/wireguard.hpp"

namespace relay::control::testing {

NetworkSecret secret_of(const std::string& network, uint8_t id) {
    NetworkSecret s{};
    // Distinct per network and id, and not all zero.
    const uint8_t base = network == "alpha" ? 0x10 : network == "beta" ? 0x20 : 0x30;
    for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<uint8_t>(base + id + 3 * i);
    return s;
}

Config make_config(const PublicKey& listed_agent) {
    Config c;
    c.source = "core_harness";
    c.has_control = true;
    ControlConfig& cc = c.control;
    cc.listen_address = ip4(192, 0, 2, 1);
    cc.ports = {3478, 3479};
    cc.keepalive_interval_s = 20;
    cc.peer_timeout_s = 75;
    cc.punch_lead_ms = 150;
    cc.punch_deadline_ms = 2500;
    cc.promotion_interval_s = 60;
    cc.timestamp_window_s = 30;
    cc.relay.relay_address = kRelayAddress;
    cc.relay.port_min = kRelayPortMin;
    cc.relay.port_max = kRelayPortMax;
    cc.relay.idle_timeout_s = 180;
    cc.relay.packets_per_s = 1000;
    cc.relay.bytes_per_s = 1'000'000;
    cc.limits.sessions_per_peer = 2;
    cc.limits.registrations_per_s_per_source = 5;
    cc.limits.unauthenticated_per_s_per_source = 20;
    // Room for the unknown senders of the tests (flood_test.cpp sets its own budgets).
    cc.limits.unauthenticated_per_s = 1000;
    cc.limits.max_peers = 64;

    auto network = [](const std::string& name, unsigned max_peers) {
        NetworkConfig n;
        n.name = name;
        n.max_peers = max_peers;
        NetworkSecretConfig active;
        active.id = 1;
        active.value = secret_of(name, 1);
        NetworkSecretConfig retired;
        retired.id = 2;
        retired.value = secret_of(name, 2);
        retired.retired = true;
        n.secrets = {active, retired};
        return n;
    };
    cc.networks.push_back(network("alpha", 8));
    cc.networks.push_back(network("beta", 3));
    NetworkConfig listed;
    listed.name = "listed";
    listed.max_peers = 4;
    listed.allowed_peers = {listed_agent};
    cc.networks.push_back(listed);
    return c;
}

// ---------------------------------------------------------------- FakeDataplane

std::optional<ProgramError> FakeDataplane::add_session(const SessionSpec& spec) {
    ++add_calls;
    if (unavailable) return ProgramError{true, ipc::Status::internal, "data plane unreachable"};
    if (refuse_adds) return ProgramError{false, *refuse_adds, "refused by the test"};
    // Idempotent by id, as relay-dataplane's add is.
    if (auto it = sessions.find(spec.id); it != sessions.end())
        return it->second == spec
                   ? std::nullopt
                   : std::optional(ProgramError{false, ipc::Status::exists, "session exists"});
    for (const auto& [id, s] : sessions) {
        if (s.relay_ip == spec.relay_ip && s.relay_port == spec.relay_port)
            return ProgramError{false, ipc::Status::exists, "relay port in use"};
    }
    sessions.emplace(spec.id, spec);
    added.push_back(spec);
    // A stalled worker: the session is installed, but the answer says `busy`.
    if (late_adds) return ProgramError{true, ipc::Status::busy, "worker did not answer in time"};
    return std::nullopt;
}

std::optional<ProgramError> FakeDataplane::remove_session(uint64_t id) {
    ++remove_calls;
    if (unavailable) return ProgramError{true, ipc::Status::internal, "data plane unreachable"};
    if (!sessions.erase(id)) return std::nullopt;  // gone already: what was asked
    removed.push_back(id);
    return std::nullopt;
}

std::optional<ProgramError> FakeDataplane::update_session(const SessionUpdate& u) {
    if (unavailable) return ProgramError{true, ipc::Status::internal, "data plane unreachable"};
    auto it = sessions.find(u.id);
    if (it == sessions.end()) return ProgramError{false, ipc::Status::not_found, "no such session"};
    it->second.limits = u.limits;
    it->second.idle_timeout_s = u.idle_timeout_s;
    for (size_t i = 0; i < 2; ++i) {
        it->second.sides[i].allowed_source = u.allowed_source[i];
        it->second.sides[i].allowed_port = u.allowed_port[i];
    }
    updates.push_back(u);
    return std::nullopt;
}

std::optional<std::vector<SessionStats>> FakeDataplane::list_sessions() {
    if (unavailable) return std::nullopt;
    std::vector<SessionStats> live;
    for (const auto& [id, spec] : sessions) {
        SessionStats s;
        s.spec = spec;
        live.push_back(s);
    }
    return live;
}

std::optional<DataplaneHealth> FakeDataplane::health() {
    if (unavailable) return std::nullopt;
    return DataplaneHealth{instance_id, relay_addresses};
}

void FakeDataplane::restart() {
    sessions.clear();
    ++instance_id;
}

// ---------------------------------------------------------------- TestPeer

TestPeer::TestPeer(const PublicKey& server_public, SocketAddress src, Mapping mapping,
                   std::string tok, KeyPair agent_keys)
    : agent(agent_keys), token(std::move(tok)) {
    shared = *shared_key(server_public, agent.secret_key);
    agent_port = src.port;
    source[0] = src;
    source[1] = src;
    if (mapping == Mapping::symmetric) source[1].port = static_cast<uint16_t>(src.port + 1);
    if (mapping == Mapping::none) {
        local_addresses = {{src.ip, src.port}};
    } else {
        // Behind a NAT: one private address (the host byte follows the public one).
        local_addresses = {{ip4(192, 168, 1, static_cast<uint8_t>(src.ip & 0xff)), src.port}};
    }
}

RegisterPeer TestPeer::register_body() const {
    RegisterPeer r;
    r.token = token;
    r.wg_public_key = wg.public_key;
    r.wg_listen_port = wg_listen_port;
    if (send_probe_key) r.probe_key = probe.public_key;
    r.agent_port = agent_port;
    r.local_addresses = local_addresses;
    return r;
}

std::vector<uint8_t> TestPeer::seal(const Body& body, uint64_t timestamp_ms, uint32_t request_id) {
    if (request_id == 0) request_id = next_request_id++;
    return seal_request(agent.public_key, shared, encode(Message{timestamp_ms, request_id, body}));
}

std::optional<Message> TestPeer::open(std::span<const uint8_t> datagram) const {
    auto plain = open_reply(datagram, shared);
    if (!plain) return std::nullopt;
    auto message = decode(*plain);
    if (!message) {
        ADD_FAILURE() << "control sent an undecodable message: " << to_string(message.error());
        return std::nullopt;
    }
    return *message;
}

std::vector<Received> TestPeer::received(const Outbox& out) const {
    std::vector<Received> r;
    for (const OutDatagram& d : out) {
        if (auto m = open(d.bytes))
            r.push_back({d.port_index, d.to, d.bytes.size(), std::move(*m)});
    }
    return r;
}

// ---------------------------------------------------------------- Harness

Harness::Harness(void (*tweak)(Config&)) {
    config = make_config(listed_agent.public_key);
    if (tweak) tweak(config);
    restart_control();
}

void Harness::restart_control() {
    core.reset();
    registry = std::make_shared<prometheus::Registry>();
    metrics = std::make_unique<ControlMetrics>(registry);
    core = std::make_unique<ControlCore>(config, server, dataplane, *metrics);
}

TestPeer Harness::symmetric_peer(const std::string& network) {
    TestPeer p = make_peer(network, Mapping::symmetric);
    register_and_classify(p);
    return p;
}

uint64_t Harness::relayed_pair(TestPeer& a, TestPeer& b, bool force_relay) {
    Outbox out;
    const Message m = request(a, 0, Connect{b.wg.public_key, force_relay}, &out);
    EXPECT_TRUE(std::holds_alternative<ConnectAck>(m.body));
    const auto offers = b.notifications<RelayOffer>(out);
    EXPECT_EQ(offers.size(), 1u);
    return offers.empty() ? 0 : offers[0].session_id;
}

TestPeer Harness::make_peer(const std::string& network, Mapping mapping,
                            std::optional<SocketAddress> source) {
    const uint32_t n = next_host_++;
    const SocketAddress src = source.value_or(SocketAddress{
        ip4(203, 0, 113, static_cast<uint8_t>(n)), static_cast<uint16_t>(20000 + 2 * n)});
    TestPeer p(server.public_key, src, mapping, token(network));
    p.wg_listen_port = static_cast<uint16_t>(51000 + n);
    return p;
}

std::string Harness::token(const std::string& network, uint8_t secret_id,
                           uint64_t expires_unix_s) const {
    return issue_token(TokenClaims{network, secret_id, expires_unix_s},
                       secret_of(network, secret_id));
}

std::string Harness::token(const std::string& network) const {
    if (network == "listed") return "";
    return token(network, 1, wall() / 1000 + 3600);
}

Outbox Harness::deliver(uint8_t port, SocketAddress from, std::span<const uint8_t> datagram) {
    Outbox out;
    core->handle(port, from, datagram, clock(), out);
    return out;
}

Outbox Harness::send(TestPeer& peer, uint8_t port, const Body& body,
                     std::optional<SocketAddress> from, size_t* sent) {
    const auto datagram = peer.seal(body, wall());
    if (sent) *sent = datagram.size();
    return deliver(port, from.value_or(peer.source[port]), datagram);
}

Message Harness::request(TestPeer& peer, uint8_t port, const Body& body, Outbox* out_copy) {
    const uint32_t id = peer.next_request_id;
    Outbox out = send(peer, port, body);
    if (out_copy) *out_copy = out;
    std::vector<Message> replies;
    for (const Received& r : peer.received(out)) {
        if (r.message.request_id == 0) continue;
        EXPECT_EQ(r.message.request_id, id);
        replies.push_back(r.message);
    }
    if (replies.size() != 1) {
        ADD_FAILURE() << "expected one reply, got " << replies.size();
        return Message{0, 0, Error{ErrorCode::internal, "no reply"}};
    }
    return replies.front();
}

void Harness::register_peer(TestPeer& peer) {
    Message m = request(peer, 0, peer.register_body());
    const auto* r = std::get_if<Registered>(&m.body);
    ASSERT_NE(r, nullptr) << "registration refused: " << to_string(type_of(m.body))
                          << (std::holds_alternative<Error>(m.body)
                                  ? std::string(" ") + to_string(std::get<Error>(m.body).code)
                                  : std::string());
    EXPECT_EQ(r->reflexive, peer.source[0]);
}

void Harness::register_and_classify(TestPeer& peer, uint32_t rtt_us) {
    register_peer(peer);
    Message m = request(peer, 1, Keepalive{rtt_us, false, false, false});
    ASSERT_TRUE(std::holds_alternative<Status>(m.body));
}

Outbox Harness::tick() {
    Outbox out;
    core->tick(clock(), out);
    return out;
}

const Peer* Harness::peer_state(const TestPeer& peer) const {
    auto it = core->peers().find(peer.agent.public_key);
    return it == core->peers().end() ? nullptr : &it->second;
}

NatClass Harness::nat_class(const TestPeer& peer) const {
    const Peer* p = peer_state(peer);
    return p ? p->nat_class : NatClass::unknown;
}

double Harness::metric(const std::string& family,
                       const std::map<std::string, std::string>& labels) const {
    for (const prometheus::MetricFamily& f : registry->Collect()) {
        if (f.name != family) continue;
        for (const prometheus::ClientMetric& m : f.metric) {
            std::map<std::string, std::string> have;
            for (const auto& l : m.label) have[l.name] = l.value;
            if (have != labels) continue;
            if (f.type == prometheus::MetricType::Counter) return m.counter.value;
            if (f.type == prometheus::MetricType::Gauge) return m.gauge.value;
            if (f.type == prometheus::MetricType::Histogram)
                return static_cast<double>(m.histogram.sample_count);
        }
    }
    return 0;
}

// ---------------------------------------------------------------- helpers

bool codec_has_probe_bits() {
    const Message m{kStartMs, 1, Keepalive{0, false, true, true}};
    auto back = decode(encode(m));
    return back && *back == m;
}

std::vector<uint8_t> wireguard_initiation(const PublicKey& receiver, uint32_t sender_index) {
    std::vector<uint8_t> d(wire::wg::kInitiationLen, 0);
    d[0] = static_cast<uint8_t>(wire::wg::kTypeInitiation);
    for (size_t i = 0; i < 4; ++i)
        d[wire::wg::kSenderIndex + i] = static_cast<uint8_t>(sender_index >> (8 * i));
    // Ephemeral key, encrypted static and timestamp: any bytes will do for control.
    for (size_t i = 8; i < wire::wg::kInitiationMac1; ++i) d[i] = static_cast<uint8_t>(i * 37 + 11);
    crypto::Mac1 mac1;
    const crypto::Mac mac =
        mac1.compute(crypto::mac1_key_for(receiver),
                     std::span<const uint8_t>(d.data(), wire::wg::kInitiationMac1));
    std::copy(mac.begin(), mac.end(), d.begin() + wire::wg::kInitiationMac1);
    return d;  // mac2 stays zero (no cookie)
}

}  // namespace relay::control::testing
