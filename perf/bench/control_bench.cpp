// `relay-bench control` (perf/README.md): drives ControlCore::handle, exactly what
// relay-control's event loop calls for each datagram it receives, with sealed
// datagrams made beforehand, and opens and checks every reply it produced, so that
// no figure can come from a failure path.  Raw libsodium (X25519, box open) is
// measured in the same run on the same inputs: the control path is compared with
// its crypto bound as a ratio (BRIEF §8: the machines are shared and noisy).
#include "control_bench.hpp"

#include <prometheus/registry.h>
#include <sodium.h>
#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "control_core.hpp"
#include "control_flood.hpp"
#include "control_metrics.hpp"
#include "json_line.hpp"
#include "relay/config.hpp"
#include "relay/control/credentials.hpp"
#include "relay/control/envelope.hpp"
#include "relay/control/messages.hpp"
#include "session_programmer.hpp"

namespace relay::bench {

namespace {

namespace ctl = relay::control;
using Clock = std::chrono::steady_clock;

constexpr uint32_t kMinPeers = 8;
constexpr uint32_t kMaxPeers = 60000;     // one source IP each, within SourceLimiter's table
constexpr uint32_t kMaxConnects = 30000;  // both phases' attempts stay under ControlCore's cap
constexpr uint32_t kMaxRepeat = 100;
constexpr uint32_t kMaxKeepaliveRounds = 200;
// ControlCore keeps 256 nonces per registered agent (control_core.cpp, kPeerReplayEntries):
// a run sends each agent fewer messages.
constexpr uint64_t kMaxMessagesPerAgent = 240;

constexpr Ipv4 kFirstSource = 0xC612'0001;   // 198.18.0.1 (RFC 2544 benchmarking range)
constexpr uint16_t kSourcePort = 40000;      // first agent's NAT mapping
constexpr Ipv4 kLocalNet = 0xC0A8'0000;      // 192.168.0.0/16: the agents' LAN addresses
constexpr Ipv4 kRelayAddress = 0xCB00'7101;  // 203.0.113.1
constexpr uint16_t kWgPort = 51820;
constexpr uint16_t kAgentPort = 51821;
constexpr uint32_t kSessionsPerPeer = 16;  // ControlLimits' default, kept
// Relay pairs are (i, i + d) for d = 1, 2, ...: each d gives every peer two sessions.
constexpr uint32_t kRelayDistances = kSessionsPerPeer / 2;

// Where the envelope's fields are (relay/control/envelope.hpp): magic, version,
// direction, sender key, nonce, box.
constexpr size_t kRequestNonceOffset = 6 + 32;
constexpr size_t kRequestBoxOffset = kRequestNonceOffset + ctl::kNonceLen;

// The issue's absolute targets (BRIEF §8: thousands of registrations per second per
// core, rendezvous decided in well under a millisecond).
constexpr double kRegistrationsTarget = 5000;
constexpr double kKeepalivesTarget = 100000;
constexpr double kConnectP99TargetUs = 200;

struct ControlOptions {
    uint32_t peers = 20000;
    uint32_t connects = 10000;
    uint32_t keepalive_rounds = 10;
    uint32_t repeat = 3;
    bool check = false;
    bool help = false;
    FloodOptions flood;
};

// The issue's target for the flood phase: registered peers' p99 with the flood at most
// twice that without it (control_flood.hpp).
constexpr double kFloodP99RatioTarget = 2.0;

uint64_t wall_ms() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
}

// Both of control's clocks, as the server reads them for each datagram.
ctl::Clock clock_now() {
    return ctl::Clock{static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                Clock::now().time_since_epoch())
                                                .count()),
                      wall_ms()};
}

double seconds(Clock::duration d) {
    return std::chrono::duration<double>(d).count();
}

std::string address_text(SocketAddress a) {
    return std::to_string(a.ip >> 24) + "." + std::to_string((a.ip >> 16) & 0xff) + "." +
           std::to_string((a.ip >> 8) & 0xff) + "." + std::to_string(a.ip & 0xff) + ":" +
           std::to_string(a.port);
}

// ---------------------------------------------------------------------------
// Agents and their datagrams
// ---------------------------------------------------------------------------

struct Agent {
    ctl::KeyPair keys;
    ctl::SharedKey shared{};  // the agent's side: crypto_box_beforenm(server public, own secret)
    PublicKey wg{};
    PublicKey probe{};
    SocketAddress from{};   // its NAT mapping, as control sees it on port 0
    SocketAddress local{};  // its address on its own LAN
    uint32_t next_request = 1;
};

PublicKey random_key() {
    PublicKey k{};
    do {
        randombytes_buf(k.data(), k.size());
    } while (sodium_is_zero(k.data(), k.size()));
    return k;
}

bool make_agents(uint32_t count, const PublicKey& server_public, std::vector<Agent>& agents,
                 std::string& error) {
    agents.resize(count);
    for (uint32_t i = 0; i < count; ++i) {
        Agent& a = agents[i];
        a.keys = ctl::generate_key_pair();
        if (crypto_box_beforenm(a.shared.data(), server_public.data(), a.keys.secret_key.data()) !=
            0) {
            error = "crypto_box_beforenm failed for an agent";
            return false;
        }
        a.wg = random_key();
        a.probe = random_key();
        a.from = {kFirstSource + i, static_cast<uint16_t>(kSourcePort + i % 20000)};
        a.local = {kLocalNet + 1 + i % 65000, kWgPort};
    }
    return true;
}

// One sealed request and what its reply must look like.
struct Request {
    uint32_t agent = 0;
    uint8_t port = 0;  // control port it arrives on (0 or 1)
    SocketAddress from{};
    uint32_t id = 0;
    std::vector<uint8_t> bytes;
};

Request make_request(std::vector<Agent>& agents, uint32_t agent, uint8_t port, SocketAddress from,
                     ctl::Body body, uint64_t timestamp_ms) {
    Agent& a = agents[agent];
    Request q{agent, port, from, a.next_request++, {}};
    q.bytes = ctl::seal_request(a.keys.public_key, a.shared,
                                ctl::encode(ctl::Message{timestamp_ms, q.id, std::move(body)}));
    return q;
}

// A datagram from control to `a`, opened with a's key and decoded.
std::optional<ctl::Message> open_for(const Agent& a, const ctl::OutDatagram& d) {
    auto plain = ctl::open_reply(d.bytes, a.shared);
    if (!plain) return std::nullopt;
    auto message = ctl::decode(*plain);
    if (!message) return std::nullopt;
    return std::move(*message);
}

std::string describe(const ctl::Body& body) {
    std::string text = ctl::to_string(ctl::type_of(body));
    if (const auto* e = std::get_if<ctl::Error>(&body))
        text += std::string(" (") + ctl::to_string(e->code) + ": " + e->text + ")";
    return text;
}

// ---------------------------------------------------------------------------
// The in-memory data plane
// ---------------------------------------------------------------------------

// Accepts every new session, like a data plane with room.  The real one is a Unix
// socket round trip (DataplaneLink): what the relay figures leave out.
class InMemoryDataplane final : public ctl::SessionProgrammer {
  public:
    std::optional<ctl::ProgramError> add_session(const SessionSpec& spec) override {
        if (!sessions_.emplace(spec.id, spec).second)
            return ctl::ProgramError{false, ipc::Status::exists, "session exists"};
        return std::nullopt;
    }
    std::optional<ctl::ProgramError> remove_session(uint64_t id) override {
        if (sessions_.erase(id) == 0)
            return ctl::ProgramError{false, ipc::Status::not_found, "no such session"};
        return std::nullopt;
    }
    std::optional<ctl::ProgramError> update_session(const SessionUpdate& u) override {
        auto it = sessions_.find(u.id);
        if (it == sessions_.end())
            return ctl::ProgramError{false, ipc::Status::not_found, "no such session"};
        for (size_t i = 0; i < 2; ++i) {
            it->second.sides[i].allowed_source = u.allowed_source[i];
            it->second.sides[i].allowed_port = u.allowed_port[i];
        }
        return std::nullopt;
    }
    std::optional<std::vector<SessionStats>> list_sessions() override {
        std::vector<SessionStats> live;
        for (const auto& [id, spec] : sessions_) live.push_back(SessionStats{spec, {}, 0, 0});
        return live;
    }
    std::optional<ctl::DataplaneHealth> health() override {
        return ctl::DataplaneHealth{1, {kRelayAddress}};
    }
    size_t size() const { return sessions_.size(); }

  private:
    std::unordered_map<uint64_t, SessionSpec> sessions_;
};

// ---------------------------------------------------------------------------
// One run
// ---------------------------------------------------------------------------

struct Latency {
    double p50_us = NAN;
    double p99_us = NAN;
    double max_us = NAN;
    double mean_us = NAN;
};

// Nearest-rank percentiles.
Latency summarize(std::vector<double> us) {
    Latency l;
    if (us.empty()) return l;
    std::sort(us.begin(), us.end());
    auto rank = [&](double p) {
        const size_t r = static_cast<size_t>(std::ceil(p * static_cast<double>(us.size())));
        return us[std::clamp<size_t>(r, 1, us.size()) - 1];
    };
    l.p50_us = rank(0.50);
    l.p99_us = rank(0.99);
    l.max_us = us.back();
    double sum = 0;
    for (double v : us) sum += v;
    l.mean_us = sum / static_cast<double>(us.size());
    return l;
}

struct RunResult {
    double x25519_beforenm_per_s = 0;
    double shared_key_per_s = 0;
    double registrations_per_s = 0;
    double box_open_afternm_per_s = 0;
    double keepalives_per_s = 0;
    double class_change_keepalives_per_s = 0;
    Latency connect;        // punch path
    Latency connect_relay;  // relay allocation path
    uint32_t punch_connects = 0;
    uint32_t relay_connects = 0;
    size_t relay_sessions_held = 0;  // while the punch connects were timed
    size_t box_open_bytes = 0;
    double seconds = 0;  // the whole run, checks included
    FloodResult flood;

    double registrations_vs_x25519() const { return registrations_per_s / x25519_beforenm_per_s; }
    double keepalives_vs_box_open() const { return keepalives_per_s / box_open_afternm_per_s; }
};

// Hands every request to the core, in order, on this thread, each with the wall clock
// at the time of the call (as the server does); returns requests per second.
double drive(ctl::ControlCore& core, const std::vector<Request>& requests, ctl::Outbox& out) {
    out.clear();
    out.reserve(requests.size());
    const auto start = Clock::now();
    for (const Request& q : requests) core.handle(q.port, q.from, q.bytes, clock_now(), out);
    return static_cast<double>(requests.size()) / seconds(Clock::now() - start);
}

// Every request got exactly one reply, in order, to its source and port, that opens
// under its agent's key, echoes its id and is an `Expected` that `check` accepts.
template <typename Expected>
bool check_replies(const char* phase, const std::vector<Request>& requests, const ctl::Outbox& out,
                   const std::vector<Agent>& agents,
                   const std::function<bool(const Request&, const Expected&)>& check,
                   std::string& error) {
    if (out.size() != requests.size()) {
        error = std::string(phase) + ": " + std::to_string(requests.size()) +
                " requests produced " + std::to_string(out.size()) + " datagrams";
        return false;
    }
    for (size_t i = 0; i < requests.size(); ++i) {
        const Request& q = requests[i];
        const ctl::OutDatagram& d = out[i];
        const std::string which = std::string(phase) + ": reply " + std::to_string(i);
        if (!(d.to == q.from) || d.port_index != q.port) {
            error =
                which + " went to " + address_text(d.to) + " instead of " + address_text(q.from);
            return false;
        }
        const auto message = open_for(agents[q.agent], d);
        if (!message) {
            error = which + " does not open or decode";
            return false;
        }
        const auto* body = std::get_if<Expected>(&message->body);
        if (!body) {
            error = which + " is " + describe(message->body);
            return false;
        }
        if (message->request_id != q.id || !check(q, *body)) {
            error = which + " has wrong contents";
            return false;
        }
    }
    return true;
}

struct Pair {
    uint32_t a = 0;  // asks to connect
    uint32_t b = 0;
};

// The three datagrams of a connect: the ack to `a` and a punch (or relay offer) to each.
bool check_connect(const std::vector<Agent>& agents, const Pair& pair, const Request& q,
                   const ctl::Outbox& out, bool relayed, std::string& error) {
    const char* phase = relayed ? "relay connect" : "connect";
    if (out.size() != 3) {
        error = std::string(phase) + ": " + std::to_string(out.size()) +
                " datagrams instead of 3 (ack, and one " + (relayed ? "offer" : "punch") +
                " to each peer)";
        if (!out.empty() && out.back().to == q.from)
            if (auto m = open_for(agents[pair.a], out.back())) error += ": " + describe(m->body);
        return false;
    }
    std::optional<uint64_t> attempt;
    std::optional<uint64_t> session;
    int acks = 0;
    int notified[2] = {0, 0};
    uint8_t sides_seen = 0;
    for (const ctl::OutDatagram& d : out) {
        int who = -1;
        if (d.to == agents[pair.a].from && d.port_index == 0) who = 0;
        if (d.to == agents[pair.b].from && d.port_index == 0) who = 1;
        if (who < 0) {
            error = std::string(phase) + ": a datagram went to " + address_text(d.to);
            return false;
        }
        const Agent& self = agents[who == 0 ? pair.a : pair.b];
        const Agent& other = agents[who == 0 ? pair.b : pair.a];
        const auto m = open_for(self, d);
        if (!m) {
            error = std::string(phase) + ": a datagram does not open or decode";
            return false;
        }
        uint64_t attempt_id = 0;
        bool ok = false;
        if (const auto* ack = std::get_if<ctl::ConnectAck>(&m->body)) {
            ok = who == 0 && m->request_id == q.id && ack->relayed == relayed;
            attempt_id = ack->attempt_id;
            ++acks;
        } else if (const auto* punch = std::get_if<ctl::Punch>(&m->body); punch && !relayed) {
            const SocketAddress reflexive{other.from.ip, kWgPort};
            ok = m->request_id == 0 && punch->peer == other.wg && !punch->candidates.empty() &&
                 punch->candidates.back().address == reflexive;
            attempt_id = punch->attempt_id;
            ++notified[who];
        } else if (const auto* offer = std::get_if<ctl::RelayOffer>(&m->body); offer && relayed) {
            ok = m->request_id == 0 && offer->peer == other.wg &&
                 offer->relay.ip == kRelayAddress && offer->side < 2 &&
                 (!session || *session == offer->session_id);
            session = offer->session_id;
            sides_seen |= static_cast<uint8_t>(1u << (offer->side & 1));
            attempt_id = offer->attempt_id;
            ++notified[who];
        } else {
            error = std::string(phase) + ": unexpected " + describe(m->body);
            return false;
        }
        if (!ok || (attempt && *attempt != attempt_id)) {
            error = std::string(phase) + ": wrong contents in " + describe(m->body);
            return false;
        }
        attempt = attempt_id;
    }
    if (acks != 1 || notified[0] != 1 || notified[1] != 1 || (relayed && sides_seen != 3)) {
        error = std::string(phase) + ": not one ack and one notification per peer";
        return false;
    }
    return true;
}

// Times each connect on its own; checks its datagrams after stopping the clock.
bool time_connects(ctl::ControlCore& core, const std::vector<Agent>& agents,
                   const std::vector<Pair>& pairs, const std::vector<Request>& requests,
                   bool relayed, Latency& latency, std::string& error) {
    std::vector<double> us(requests.size());
    ctl::Outbox out;
    out.reserve(8);
    for (size_t k = 0; k < requests.size(); ++k) {
        const Request& q = requests[k];
        out.clear();
        const ctl::Clock now = clock_now();
        const auto start = Clock::now();
        core.handle(q.port, q.from, q.bytes, now, out);
        const auto stop = Clock::now();
        us[k] = std::chrono::duration<double, std::micro>(stop - start).count();
        if (!check_connect(agents, pairs[k], q, out, relayed, error)) {
            error += " (connect " + std::to_string(k) + ")";
            return false;
        }
    }
    latency = summarize(std::move(us));
    return true;
}

Config make_config(uint32_t peers, const ctl::NetworkSecret& secret) {
    Config config;
    config.source = "relay-bench control";
    config.has_control = true;
    NetworkSecretConfig network_secret;
    network_secret.id = 1;
    network_secret.value = secret;
    NetworkConfig network;
    network.name = "bench";
    network.secrets.push_back(network_secret);
    network.max_peers = peers;
    config.control.networks.push_back(network);
    // Large limits: room for every agent and every relay pair.  The per-source rate
    // limits keep their defaults: every agent has a source address of its own.
    config.control.limits.max_peers = peers;
    config.control.limits.sessions_per_peer = kSessionsPerPeer;
    // These phases measure what each message costs, not the limits: the global budget of
    // key agreements and the per-peer request limits are opened wide (every agent
    // registers at once, then sends its keepalives and connects back to back).  The
    // flood phase measures them at their defaults.
    config.control.limits.unauthenticated_per_s = 10'000'000;
    config.control.limits.requests_per_s_per_peer = 1'000'000;
    config.control.limits.connects_per_s_per_peer = 1'000'000;
    config.control.relay.relay_address = kRelayAddress;
    config.control.relay.port_min = 1024;
    config.control.relay.port_max = 65535;
    return config;
}

// What control counted as rejected (relay_control_rejected_messages_total), for the
// message of a failed run: "reason=count, ...".
std::string rejections(prometheus::Registry& registry) {
    std::string text;
    for (const prometheus::MetricFamily& family : registry.Collect()) {
        if (family.name != "relay_control_rejected_messages_total") continue;
        for (const prometheus::ClientMetric& metric : family.metric) {
            if (!text.empty()) text += ", ";
            for (const prometheus::ClientMetric::Label& label : metric.label) text += label.value;
            text += '=';
            text += std::to_string(static_cast<uint64_t>(metric.counter.value));
        }
    }
    return text.empty() ? "none" : text;
}

// One run on a fresh ControlCore (so every registration is of a new peer).
bool run_phases(const ControlOptions& options, const Config& config, const ctl::KeyPair& server,
                const std::string& token, std::vector<Agent>& agents,
                const std::shared_ptr<prometheus::Registry>& registry, RunResult& r,
                std::string& error) {
    const auto run_start = Clock::now();
    const uint32_t n = static_cast<uint32_t>(agents.size());
    for (Agent& a : agents) a.next_request = 1;

    ctl::ControlMetrics metrics(registry);  // part of the real path: kept
    InMemoryDataplane dataplane;
    ctl::ControlCore core(config, server, dataplane, metrics);
    ctl::Outbox out;

    // ---- registrations: a new sender costs an X25519 (beforenm) and the key checks.
    {
        ctl::SharedKey key{};
        unsigned failures = 0;
        auto start = Clock::now();
        for (const Agent& a : agents)
            failures += crypto_box_beforenm(key.data(), a.keys.public_key.data(),
                                            server.secret_key.data()) != 0;
        r.x25519_beforenm_per_s = n / seconds(Clock::now() - start);
        start = Clock::now();
        for (const Agent& a : agents)
            failures += !ctl::shared_key(a.keys.public_key, server.secret_key).has_value();
        r.shared_key_per_s = n / seconds(Clock::now() - start);
        if (failures != 0) {
            error = "baseline: " + std::to_string(failures) + " key agreements failed";
            return false;
        }
    }
    std::vector<Request> requests;
    requests.reserve(n);
    uint64_t sealed_ms = wall_ms();
    for (uint32_t i = 0; i < n; ++i) {
        const Agent& a = agents[i];
        requests.push_back(make_request(
            agents, i, 0, a.from,
            ctl::RegisterPeer{token, a.wg, kWgPort, a.probe, kAgentPort, {a.local}}, sealed_ms));
    }
    r.registrations_per_s = drive(core, requests, out);
    if (!check_replies<ctl::Registered>(
            "register", requests, out, agents,
            [&](const Request& q, const ctl::Registered& m) {
                return m.reflexive == q.from &&
                       m.keepalive_interval_s == config.control.keepalive_interval_s;
            },
            error))
        return false;
    if (core.peers().size() != n) {
        error = "register: " + std::to_string(core.peers().size()) + " peers registered of " +
                std::to_string(n);
        return false;
    }

    // ---- keepalives: known senders, cached shared key; round by round over all peers.
    requests.clear();
    requests.reserve(size_t{n} * options.keepalive_rounds);
    sealed_ms = wall_ms();
    for (uint32_t round = 0; round < options.keepalive_rounds; ++round)
        for (uint32_t i = 0; i < n; ++i)
            requests.push_back(make_request(
                agents, i, 0, agents[i].from,
                ctl::Keepalive{20000 + i % 1000 * 100, false, false, false}, sealed_ms));
    {
        // Baseline: opening the very same boxes with the very same keys.
        std::array<uint8_t, ctl::kMaxEnvelopeLen> plain{};
        unsigned failures = 0;
        const auto start = Clock::now();
        for (const Request& q : requests)
            failures +=
                crypto_box_open_easy_afternm(plain.data(), q.bytes.data() + kRequestBoxOffset,
                                             q.bytes.size() - kRequestBoxOffset,
                                             q.bytes.data() + kRequestNonceOffset,
                                             agents[q.agent].shared.data()) != 0;
        r.box_open_afternm_per_s =
            static_cast<double>(requests.size()) / seconds(Clock::now() - start);
        r.box_open_bytes = requests.front().bytes.size() - kRequestBoxOffset;
        if (failures != 0) {
            error = "baseline: " + std::to_string(failures) + " boxes did not open";
            return false;
        }
    }
    r.keepalives_per_s = drive(core, requests, out);
    if (!check_replies<ctl::Status>(
            "keepalive", requests, out, agents,
            [&](const Request& q, const ctl::Status& m) {
                return m.reflexive == q.from && m.server_port == config.control.ports[0];
            },
            error))
        return false;

    // ---- NAT discovery: one keepalive on port 1 per peer makes the first half cone
    // (same mapping on both ports, the other-port probe got through) and the second
    // half symmetric (another mapping on port 1).  Each changes the peer's class, which
    // runs tick() (O(peers)): slow, so each is sealed just before it is handed over
    // (else the last ones could fall out of the 30 s clock window) and only the
    // handle() calls are timed.
    const uint32_t cone = n / 2 & ~1u;
    requests.clear();
    out.clear();
    out.reserve(n);
    Clock::duration busy{};
    for (uint32_t i = 0; i < n; ++i) {
        const Agent& a = agents[i];
        const bool is_cone = i < cone;
        const SocketAddress from =
            is_cone ? a.from : SocketAddress{a.from.ip, static_cast<uint16_t>(a.from.port + 1)};
        requests.push_back(make_request(agents, i, 1, from,
                                        ctl::Keepalive{20000, false, is_cone, is_cone}, wall_ms()));
        const Request& q = requests.back();
        const ctl::Clock now = clock_now();
        const auto start = Clock::now();
        core.handle(q.port, q.from, q.bytes, now, out);
        busy += Clock::now() - start;
    }
    r.class_change_keepalives_per_s = n / seconds(busy);
    if (!check_replies<ctl::Status>(
            "nat discovery", requests, out, agents,
            [&](const Request& q, const ctl::Status& m) {
                return m.reflexive == q.from && m.server_port == config.control.ports[1];
            },
            error))
        return false;
    for (uint32_t i = 0; i < n; ++i) {
        const auto it = core.peers().find(agents[i].keys.public_key);
        const ctl::NatClass expected = i < cone ? ctl::NatClass::cone : ctl::NatClass::symmetric;
        if (it == core.peers().end() || it->second.nat_class != expected) {
            error =
                "nat discovery: peer " + std::to_string(i) + " is not " + ctl::to_string(expected);
            return false;
        }
    }

    // ---- relayed connects: symmetric pairs, which cannot punch; each gets a new relay
    // session (pairs (i, i + d), d = 1, 2, ...: at most 16 sessions per peer).
    const uint32_t symmetric = n - cone;
    const uint32_t distances = std::min(kRelayDistances, (symmetric - 1) / 2);
    r.relay_connects = std::min(options.connects, symmetric * distances);
    std::vector<Pair> pairs;
    requests.clear();
    sealed_ms = wall_ms();
    for (uint32_t k = 0; k < r.relay_connects; ++k) {
        const uint32_t i = k % symmetric;
        const uint32_t j = (i + 1 + k / symmetric) % symmetric;
        const Pair pair{cone + i, cone + j};
        pairs.push_back(pair);
        requests.push_back(make_request(agents, pair.a, 0, agents[pair.a].from,
                                        ctl::Connect{agents[pair.b].wg, false}, sealed_ms));
    }
    if (!time_connects(core, agents, pairs, requests, true, r.connect_relay, error)) return false;
    if (dataplane.size() != r.relay_connects || core.allocations().size() != r.relay_connects) {
        error = "relay connect: " + std::to_string(dataplane.size()) + " sessions programmed for " +
                std::to_string(r.relay_connects) + " connects";
        return false;
    }

    // ---- direct connects: cone pairs, punches to both.  The relay sessions above stay:
    // a node that serves a mesh holds both kinds.
    r.punch_connects = options.connects;
    r.relay_sessions_held = core.allocations().size();
    pairs.clear();
    requests.clear();
    sealed_ms = wall_ms();
    for (uint32_t k = 0; k < r.punch_connects; ++k) {
        const uint32_t a = 2 * k % cone;
        const Pair pair{a, a + 1};
        pairs.push_back(pair);
        requests.push_back(make_request(agents, pair.a, 0, agents[pair.a].from,
                                        ctl::Connect{agents[pair.b].wg, false}, sealed_ms));
    }
    if (!time_connects(core, agents, pairs, requests, false, r.connect, error)) return false;

    r.seconds = seconds(Clock::now() - run_start);
    return true;
}

bool run_once(const ControlOptions& options, const Config& config, const ctl::KeyPair& server,
              const std::string& token, std::vector<Agent>& agents, RunResult& r,
              std::string& error) {
    auto registry = std::make_shared<prometheus::Registry>();
    const bool ok = run_phases(options, config, server, token, agents, registry, r, error);
    if (!ok) {
        error += " (control's rejections: " + rejections(*registry) + ")";
        return false;
    }
    return run_flood(options.flood, server, r.flood, error);
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

double median(std::vector<double> values) {
    if (values.empty()) return NAN;
    std::sort(values.begin(), values.end());
    const size_t mid = values.size() / 2;
    return values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

double median_of(const std::vector<RunResult>& runs,
                 const std::function<double(const RunResult&)>& f) {
    std::vector<double> values;
    for (const RunResult& r : runs) values.push_back(f(r));
    return median(values);
}

std::string run_json(const RunResult& r) {
    JsonLine line;
    line.add("registrations_per_s", r.registrations_per_s, 0)
        .add("x25519_beforenm_per_s", r.x25519_beforenm_per_s, 0)
        .add("shared_key_per_s", r.shared_key_per_s, 0)
        .add("registrations_vs_x25519_beforenm", r.registrations_vs_x25519(), 3)
        .add("keepalives_per_s", r.keepalives_per_s, 0)
        .add("box_open_afternm_per_s", r.box_open_afternm_per_s, 0)
        .add("keepalives_vs_box_open_afternm", r.keepalives_vs_box_open(), 3)
        .add("class_change_keepalives_per_s", r.class_change_keepalives_per_s, 0)
        .add("connect_p50_us", r.connect.p50_us, 1)
        .add("connect_p99_us", r.connect.p99_us, 1)
        .add("connect_max_us", r.connect.max_us, 1)
        .add("connect_relay_p50_us", r.connect_relay.p50_us, 1)
        .add("connect_relay_p99_us", r.connect_relay.p99_us, 1)
        .add("connect_relay_max_us", r.connect_relay.max_us, 1)
        .add("flood_keepalive_p99_us", r.flood.keepalive.p99_us, 1)
        .add("flood_keepalive_base_p99_us", r.flood.keepalive_base.p99_us, 1)
        .add("flood_connect_p99_us", r.flood.connect.p99_us, 1)
        .add("flood_connect_base_p99_us", r.flood.connect_base.p99_us, 1)
        .add("flood_keepalive_p99_ratio", r.flood.keepalive_p99_ratio(), 2)
        .add("flood_connect_p99_ratio", r.flood.connect_p99_ratio(), 2)
        .add("flood_registered_unanswered", static_cast<uint64_t>(r.flood.registered_unanswered))
        .add("run_s", r.seconds, 2);
    return line.str();
}

struct Target {
    const char* name;
    double limit;
    bool at_most;  // true: measured <= limit
    double measured;
};

// Prints the result; returns whether every target was met.
bool print_result(const ControlOptions& options, const std::vector<RunResult>& runs,
                  double setup_s) {
    const RunResult& first = runs.front();
    auto med = [&](const std::function<double(const RunResult&)>& f) { return median_of(runs, f); };
    const double registrations = med([](const RunResult& r) { return r.registrations_per_s; });
    const double keepalives = med([](const RunResult& r) { return r.keepalives_per_s; });
    const double connect_p99 = med([](const RunResult& r) { return r.connect.p99_us; });
    const double relay_p99 = med([](const RunResult& r) { return r.connect_relay.p99_us; });
    const double flood_keepalive_ratio =
        med([](const RunResult& r) { return r.flood.keepalive_p99_ratio(); });
    const double flood_connect_ratio =
        med([](const RunResult& r) { return r.flood.connect_p99_ratio(); });
    double unanswered = 0;
    for (const RunResult& r : runs)
        unanswered += static_cast<double>(r.flood.registered_unanswered);

    const Target targets[] = {
        {"registrations_per_s", kRegistrationsTarget, false, registrations},
        {"keepalives_per_s", kKeepalivesTarget, false, keepalives},
        {"connect_p99_us", kConnectP99TargetUs, true, connect_p99},
        {"connect_relay_p99_us", kConnectP99TargetUs, true, relay_p99},
        {"flood_keepalive_p99_ratio", kFloodP99RatioTarget, true, flood_keepalive_ratio},
        {"flood_connect_p99_ratio", kFloodP99RatioTarget, true, flood_connect_ratio},
        {"flood_registered_unanswered", 0, true, unanswered},
    };
    bool all_pass = true;
    std::string targets_json = "[";
    for (const Target& t : targets) {
        const bool pass = std::isfinite(t.measured) &&
                          (t.at_most ? t.measured <= t.limit : t.measured >= t.limit);
        all_pass = all_pass && pass;
        JsonLine entry;
        entry.add("target", t.name)
            .add("limit", t.limit, 1)
            .add("comparison", t.at_most ? "<=" : ">=")
            .add("measured", t.measured, 1)
            .add("pass", pass);
        if (targets_json.size() > 1) targets_json += ',';
        targets_json += entry.str();
    }
    targets_json += ']';
    std::string runs_json = "[";
    for (const RunResult& r : runs) {
        if (runs_json.size() > 1) runs_json += ',';
        runs_json += run_json(r);
    }
    runs_json += ']';

    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);

    JsonLine line;
    line.add("benchmark", "control")
        .add("peers", options.peers)
        .add("keepalives", uint64_t{options.peers} * options.keepalive_rounds)
        .add("connects", first.punch_connects)
        .add("relay_connects", first.relay_connects)
        .add("relay_sessions_held", first.relay_sessions_held)
        .add("repeat", options.repeat)
        .add("statistic", "median")
        .add("registrations_per_s", registrations, 0)
        .add("x25519_beforenm_per_s",
             med([](const RunResult& r) { return r.x25519_beforenm_per_s; }), 0)
        .add("shared_key_per_s", med([](const RunResult& r) { return r.shared_key_per_s; }), 0)
        .add("registrations_vs_x25519_beforenm",
             med([](const RunResult& r) { return r.registrations_vs_x25519(); }), 3)
        .add("keepalives_per_s", keepalives, 0)
        .add("box_open_afternm_per_s",
             med([](const RunResult& r) { return r.box_open_afternm_per_s; }), 0)
        .add("box_open_bytes", first.box_open_bytes)
        .add("keepalives_vs_box_open_afternm",
             med([](const RunResult& r) { return r.keepalives_vs_box_open(); }), 3)
        .add("class_change_keepalives_per_s",
             med([](const RunResult& r) { return r.class_change_keepalives_per_s; }), 0)
        .add("connect_p50_us", med([](const RunResult& r) { return r.connect.p50_us; }), 1)
        .add("connect_p99_us", connect_p99, 1)
        .add("connect_max_us", med([](const RunResult& r) { return r.connect.max_us; }), 1)
        .add("connect_mean_us", med([](const RunResult& r) { return r.connect.mean_us; }), 1)
        .add("connect_relay_p50_us", med([](const RunResult& r) { return r.connect_relay.p50_us; }),
             1)
        .add("connect_relay_p99_us", relay_p99, 1)
        .add("connect_relay_max_us", med([](const RunResult& r) { return r.connect_relay.max_us; }),
             1)
        .add("connect_relay_mean_us",
             med([](const RunResult& r) { return r.connect_relay.mean_us; }), 1)
        .add("flood_peers", options.flood.peers)
        .add("flood_seconds", options.flood.seconds)
        .add("flood_registered_per_s", options.flood.registered_per_s)
        .add("flood_attacker_sources", options.flood.attacker_sources)
        .add("flood_key_agreements_per_s_one_core",
             med([](const RunResult& r) { return r.flood.key_agreements_per_s; }), 0)
        .add("flood_offered_per_s",
             med([](const RunResult& r) { return r.flood.flood_offered_per_s; }), 0)
        .add("flood_unauthenticated_budget_per_s", first.flood.unauthenticated_per_s)
        .add("flood_key_agreements_done_per_s",
             med([](const RunResult& r) { return r.flood.flood_key_agreements_per_s; }), 0)
        .add("flood_answered_per_s",
             med([](const RunResult& r) { return r.flood.flood_answered_per_s; }), 0)
        .add("flood_clock_overhead_us",
             med([](const RunResult& r) { return r.flood.clock_overhead_us; }), 2)
        .add("flood_crypto_share",
             med([](const RunResult& r) { return r.flood.flood_crypto_share; }), 3)
        .add("flood_loop_share", med([](const RunResult& r) { return r.flood.flood_loop_share; }),
             3)
        .add("flood_keepalive_p50_us",
             med([](const RunResult& r) { return r.flood.keepalive.p50_us; }), 1)
        .add("flood_keepalive_p99_us",
             med([](const RunResult& r) { return r.flood.keepalive.p99_us; }), 1)
        .add("flood_keepalive_base_p50_us",
             med([](const RunResult& r) { return r.flood.keepalive_base.p50_us; }), 1)
        .add("flood_keepalive_base_p99_us",
             med([](const RunResult& r) { return r.flood.keepalive_base.p99_us; }), 1)
        .add("flood_connect_p50_us", med([](const RunResult& r) { return r.flood.connect.p50_us; }),
             1)
        .add("flood_connect_p99_us", med([](const RunResult& r) { return r.flood.connect.p99_us; }),
             1)
        .add("flood_connect_base_p50_us",
             med([](const RunResult& r) { return r.flood.connect_base.p50_us; }), 1)
        .add("flood_connect_base_p99_us",
             med([](const RunResult& r) { return r.flood.connect_base.p99_us; }), 1)
        .add("flood_keepalive_p99_ratio", flood_keepalive_ratio, 2)
        .add("flood_connect_p99_ratio", flood_connect_ratio, 2)
        .add("flood_registered_unanswered", static_cast<uint64_t>(unanswered))
        .add_raw("targets", targets_json)
        .add("all_pass", all_pass)
        .add("replies_verified", true)  // a run whose replies were wrong prints no figures
        .add_raw("runs", runs_json)
        .add("setup_s", setup_s, 2)
        .add("max_rss_kb", static_cast<int64_t>(usage.ru_maxrss))
        .print();
    return all_pass;
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

template <typename Number>
bool parse_number(std::string_view text, Number& value) {
    const char* end = text.data() + text.size();
    const auto [stop, status] = std::from_chars(text.data(), end, value);
    return status == std::errc() && stop == end && !text.empty();
}

std::optional<ControlOptions> parse_options(int argc, char** argv, std::string& error) {
    ControlOptions options;
    for (int i = 1; i < argc; ++i) {
        std::string_view argument = argv[i];
        std::string_view value;
        bool has_value = false;
        if (const size_t equals = argument.find('=');
            argument.starts_with("--") && equals != std::string_view::npos) {
            value = argument.substr(equals + 1);
            argument = argument.substr(0, equals);
            has_value = true;
        }
        auto take_value = [&]() -> bool {
            if (has_value) return true;
            if (i + 1 >= argc) {
                error = std::string(argument) + " needs a value";
                return false;
            }
            value = argv[++i];
            return true;
        };
        auto take_count = [&](uint32_t& out, uint32_t min, uint32_t max) -> bool {
            if (!take_value()) return false;
            if (!parse_number(value, out) || out < min || out > max) {
                error = std::string(argument) + ": between " + std::to_string(min) + " and " +
                        std::to_string(max);
                return false;
            }
            return true;
        };
        if (argument == "--help" || argument == "-h") {
            options.help = true;
        } else if (argument == "--check") {
            options.check = true;
        } else if (argument == "--peers") {
            if (!take_count(options.peers, kMinPeers, kMaxPeers)) return std::nullopt;
        } else if (argument == "--connects") {
            if (!take_count(options.connects, 1, kMaxConnects)) return std::nullopt;
        } else if (argument == "--keepalive-rounds") {
            if (!take_count(options.keepalive_rounds, 1, kMaxKeepaliveRounds)) return std::nullopt;
        } else if (argument == "--repeat") {
            if (!take_count(options.repeat, 1, kMaxRepeat)) return std::nullopt;
        } else if (argument == "--flood-peers") {
            if (!take_count(options.flood.peers, 2, 20000)) return std::nullopt;
        } else if (argument == "--flood-seconds") {
            if (!take_count(options.flood.seconds, 1, 60)) return std::nullopt;
        } else if (argument == "--registered-per-s") {
            if (!take_count(options.flood.registered_per_s, 10, 100000)) return std::nullopt;
        } else if (argument == "--unauthenticated-per-s") {
            uint32_t budget = 0;
            if (!take_count(budget, 1, 10000000)) return std::nullopt;
            options.flood.unauthenticated_per_s = budget;
        } else if (argument == "--flood-per-s") {
            uint32_t rate = 0;
            if (!take_count(rate, 1, 10000000)) return std::nullopt;
            options.flood.flood_per_s = rate;
        } else {
            error = "unknown argument '" + std::string(argv[i]) + "'";
            return std::nullopt;
        }
    }
    // Each agent's messages of a run, many sealed in the same millisecond: they must fit
    // its replay guard, which refuses what is at or below the timestamps it let go of.
    const uint64_t cone_pairs = std::max<uint64_t>(1, (options.peers / 2 & ~1u) / 2);
    const uint64_t per_agent = 2 + uint64_t{options.keepalive_rounds} + kRelayDistances +
                               (options.connects + cone_pairs - 1) / cone_pairs;
    if (per_agent > kMaxMessagesPerAgent) {
        error = "--keepalive-rounds + --connects / (--peers / 4) + 10: at most " +
                std::to_string(kMaxMessagesPerAgent) +
                " messages per agent and run (control's replay guard of each agent)";
        return std::nullopt;
    }
    return options;
}

}  // namespace

void print_control_usage(std::FILE* out) {
    std::fprintf(
        out,
        "usage: relay-bench control [options]\n"
        "  Runs relay-control's protocol logic (ControlCore::handle) on one thread with\n"
        "  sealed datagrams made beforehand: registrations of new peers, keepalives,\n"
        "  relayed and direct connects; raw libsodium on the same inputs as the bound.\n"
        "  Every reply is opened and checked.  Prints one JSON line.\n\n"
        "  --peers N             agents (own key pair and source address), %u..%u\n"
        "                        (default 20000)\n"
        "  --connects N          timed connects per path, 1..%u (default 10000); the\n"
        "                        relayed ones: at most 8 per symmetric peer (half the peers)\n"
        "  --keepalive-rounds N  keepalives per peer (default 10)\n"
        "  --repeat R            runs, each on a fresh ControlCore; figures are the median\n"
        "                        (default 3)\n"
        "  Flood phase (each run): registered peers' keepalive and connect latency while\n"
        "  self-made keys from many sources flood control, against the same traffic\n"
        "  without the flood; one queue served by ControlCore::handle on a modelled clock:\n"
        "  --flood-peers N        registered peers (default 1000)\n"
        "  --flood-seconds S      modelled seconds of traffic (default 3)\n"
        "  --registered-per-s N   their keepalives and connects (1 in 5) a second (default 2000)\n"
        "  --flood-per-s N        flood datagrams a second (default: the key agreements one\n"
        "                         core does a second, measured)\n"
        "  --unauthenticated-per-s N  control's budget (default: limits.unauthenticated_per_s)\n"
        "  --check               exit 1 if a target is missed\n"
        "  --help                this text\n",
        kMinPeers, kMaxPeers, kMaxConnects);
}

int run_control_bench(int argc, char** argv) {
    std::string error;
    const auto options = parse_options(argc, argv, error);
    if (!options) {
        std::fprintf(stderr, "relay-bench control: %s (try relay-bench control --help)\n",
                     error.c_str());
        return 2;
    }
    if (options->help) {
        print_control_usage(stdout);
        return 0;
    }
    if (sodium_init() < 0) {
        std::fprintf(stderr, "relay-bench control: sodium_init failed\n");
        return 1;
    }

    const auto setup_start = Clock::now();
    const ctl::KeyPair server = ctl::generate_key_pair();
    ctl::NetworkSecret secret{};
    randombytes_buf(secret.data(), secret.size());
    const std::string token =
        ctl::issue_token(ctl::TokenClaims{"bench", 1, wall_ms() / 1000 + 86400}, secret);
    const Config config = make_config(options->peers, secret);
    std::vector<Agent> agents;
    if (!make_agents(options->peers, server.public_key, agents, error)) {
        std::fprintf(stderr, "relay-bench control: %s\n", error.c_str());
        return 1;
    }
    const double setup_s = seconds(Clock::now() - setup_start);

    std::vector<RunResult> runs(options->repeat);
    for (uint32_t run = 0; run < options->repeat; ++run) {
        if (!run_once(*options, config, server, token, agents, runs[run], error)) {
            std::fprintf(stderr, "relay-bench control: run %u: %s\n", run + 1, error.c_str());
            return 1;
        }
    }
    const bool all_pass = print_result(*options, runs, setup_s);
    return options->check && !all_pass ? 1 : 0;
}

}  // namespace relay::bench
