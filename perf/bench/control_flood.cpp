#include "control_flood.hpp"

#include <prometheus/registry.h>
#include <sodium.h>

#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <algorithm>

#include <chrono>
#include <cmath>
#include <deque>
#include <memory>
#include <random>
#include <vector>

#include "control_core.hpp"
#include "control_metrics.hpp"
#include "relay/config.hpp"
#include "relay/control/credentials.hpp"
#include "relay/control/messages.hpp"
#include "session_programmer.hpp"

namespace relay::bench {

namespace {

namespace ctl = relay::control;
using Steady = std::chrono::steady_clock;

constexpr Ipv4 kAgentNet = 0xC612'0000;      // 198.18.0.0/16: registered agents
constexpr Ipv4 kAttackerNet = 0xC613'0000;   // 198.19.0.0/16: the flood's sources
constexpr Ipv4 kRelayAddress = 0xCB00'7101;  // 203.0.113.1
constexpr uint64_t kMonotonicStartMs = 1'000'000;

// Accepts every session (the flood phase's relay path is not what is measured).
class NullDataplane final : public ctl::SessionProgrammer {
  public:
    std::optional<ctl::ProgramError> add_session(const SessionSpec&) override {
        return std::nullopt;
    }
    std::optional<ctl::ProgramError> remove_session(uint64_t) override { return std::nullopt; }
    std::optional<ctl::ProgramError> update_session(const SessionUpdate&) override {
        return std::nullopt;
    }
    std::optional<std::vector<SessionStats>> list_sessions() override {
        return std::vector<SessionStats>{};
    }
    std::optional<ctl::DataplaneHealth> health() override {
        return ctl::DataplaneHealth{1, {kRelayAddress}};
    }
};

struct Sender {
    ctl::KeyPair keys;
    ctl::SharedKey shared{};
    SocketAddress from{};
    PublicKey wg{};  // the WireGuard key it registers (others connect to it by this key)
};

enum class Kind : uint8_t { keepalive, connect, flood };

struct Event {
    double at_us = 0;  // arrival, modelled time since the start of traffic
    Kind kind = Kind::flood;
    uint32_t sender = 0;  // agent index, or attacker key index
    uint32_t request_id = 0;
    SocketAddress from{};
    std::vector<uint8_t> bytes;
};

// The thread's CPU time (µs): a datagram's service time is the CPU control spends on it,
// so that other processes of a shared machine preempting the benchmark do not enter the
// model as if control had been busy (they would delay every datagram queued behind).
double thread_cpu_us() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

// What reading the thread CPU clock twice costs (a system call each): taken off every
// service time, so that the measurement does not make cheap datagrams look dearer.  The
// median of many empty measurements.
double clock_overhead_us() {
    std::vector<double> d(20000);
    for (double& x : d) {
        const double t0 = thread_cpu_us();
        x = thread_cpu_us() - t0;
    }
    std::nth_element(d.begin(), d.begin() + d.size() / 2, d.end());
    return d[d.size() / 2];
}

uint64_t wall_now_ms() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
}

FloodLatency summarize(std::vector<double> us) {
    FloodLatency l;
    l.count = us.size();
    if (us.empty()) return l;
    std::sort(us.begin(), us.end());
    auto rank = [&](double p) {
        const size_t r = static_cast<size_t>(std::ceil(p * static_cast<double>(us.size())));
        return us[std::clamp<size_t>(r, 1, us.size()) - 1];
    };
    l.p50_us = rank(0.50);
    l.p99_us = rank(0.99);
    l.max_us = us.back();
    return l;
}

// A time on both of control's clocks, `t_us` into the model.
struct ModelClock {
    uint64_t wall_start_ms;
    ctl::Clock at(double t_us) const {
        const auto ms = static_cast<uint64_t>(t_us / 1000.0);
        return ctl::Clock{kMonotonicStartMs + ms, wall_start_ms + ms};
    }
};

std::vector<uint8_t> seal(const Sender& s, uint32_t id, uint64_t wall_ms, ctl::Body body) {
    return ctl::seal_request(s.keys.public_key, s.shared,
                             ctl::encode(ctl::Message{wall_ms, id, std::move(body)}));
}

// Whether `out` holds the reply of type T to request `id` for `agent`.
template <typename T>
bool answered(const Sender& agent, uint32_t id, const ctl::Outbox& out) {
    for (const ctl::OutDatagram& d : out) {
        if (!(d.to == agent.from)) continue;
        auto plain = ctl::open_reply(d.bytes, agent.shared);
        if (!plain) continue;
        auto m = ctl::decode(*plain);
        if (m && m->request_id == id && std::holds_alternative<T>(m->body)) return true;
    }
    return false;
}

struct Model {
    FloodLatency keepalive, connect;
    size_t unanswered = 0;
    size_t flood_answered = 0;
    double key_agreements = 0;  // during the traffic (relay_control_key_agreements_total)
    double flood_busy_us = 0;   // the loop thread's time on the flood
    double crypto_busy_us = 0;  // the crypto thread's
};

// relay-control's loop hands unknown senders' key agreements to its crypto thread
// (control_server.cpp: the same bound).
constexpr size_t kKeyAgreementsInFlight = 256;

double counter(prometheus::Registry& registry, const std::string& name) {
    for (const prometheus::MetricFamily& f : registry.Collect())
        if (f.name == name && !f.metric.empty()) return f.metric.front().counter.value;
    return 0;
}

// Registers and classifies every agent (cone: punches, no relay), spaced so that the
// budget of key agreements admits them; returns the modelled time after the setup.
bool set_up(ctl::ControlCore& core, std::vector<Sender>& agents, const std::string& token,
            uint32_t budget_per_s, const ModelClock& clock, double& t_us, std::string& error) {
    const double spacing_us = 1.2e6 / budget_per_s;
    ctl::Outbox out;
    uint32_t id = 1;
    for (Sender& a : agents) {
        out.clear();
        const ctl::Clock now = clock.at(t_us);
        core.handle(
            0, a.from,
            seal(a, id, now.wall_ms,
                 ctl::RegisterPeer{token, a.wg, 51820, {}, a.from.port, {{a.from.ip, 51820}}}),
            now, out);
        if (!answered<ctl::Registered>(a, id, out)) {
            error = "flood setup: a registration was refused";
            return false;
        }
        // Same mapping on port 1, and the other-port probe got through: cone.
        out.clear();
        core.handle(1, a.from,
                    seal(a, id + 1, now.wall_ms, ctl::Keepalive{20000, false, true, true}), now,
                    out);
        if (!answered<ctl::Status>(a, id + 1, out)) {
            error = "flood setup: a keepalive was not answered";
            return false;
        }
        t_us += spacing_us;
    }
    t_us += 1e6;  // a second of quiet: every budget full again
    return true;
}

Config make_config(uint32_t peers, const ctl::NetworkSecret& secret,
                   std::optional<uint32_t> budget) {
    Config config;
    config.source = "relay-bench control (flood)";
    config.has_control = true;
    NetworkSecretConfig s;
    s.id = 1;
    s.value = secret;
    NetworkConfig n;
    n.name = "flood";
    n.secrets.push_back(s);
    n.max_peers = peers;
    config.control.networks.push_back(n);
    config.control.limits.max_peers = peers;
    // Every other limit at its default: this is what they are measured at.
    if (budget) config.control.limits.unauthenticated_per_s = *budget;
    config.control.relay.relay_address = kRelayAddress;
    return config;
}

// One model: set up a fresh core, then serve `events` (sorted by arrival) one at a time.
bool run_model(const Config& config, const ctl::KeyPair& server, const std::string& token,
               std::vector<Sender> agents, const std::vector<Event>& events,
               const ModelClock& clock, double traffic_start_us, double overhead_us, Model& model,
               std::string& error) {
    auto registry = std::make_shared<prometheus::Registry>();
    ctl::ControlMetrics metrics(registry);
    NullDataplane dataplane;
    ctl::ControlCore core(config, server, dataplane, metrics);
    double t_us = 0;
    if (!set_up(core, agents, token, config.control.limits.unauthenticated_per_s, clock, t_us,
                error))
        return false;
    if (t_us > traffic_start_us) {
        error = "flood setup ran past the start of traffic";
        return false;
    }
    // From here on as the server runs: key agreements handed to the crypto thread.
    core.defer_key_agreements(kKeyAgreementsInFlight);
    // The wake-ups between the two threads: the loop pays one system call to hand work
    // over (the server's condition variable wakes the crypto thread) and one to take a
    // result (it reads the crypto thread's eventfd).  Done here on an eventfd of our own.
    const int wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake < 0) {
        error = "flood: eventfd failed";
        return false;
    }
    const double agreements_before = counter(*registry, "relay_control_key_agreements_total");
    std::vector<double> keepalive_us, connect_us;
    ctl::Outbox out;
    out.reserve(8);
    std::vector<ctl::KeyAgreementRequest> requests;
    // The crypto thread, on the second core: FIFO, so its results come back in order.
    struct Back {
        double at_us = 0;
        ctl::KeyAgreementResult result;
    };
    std::deque<Back> back;
    double free_at_us = traffic_start_us;      // the loop thread
    double crypto_free_us = traffic_start_us;  // the crypto thread
    uint64_t one = 1, count = 0;
    size_t next = 0;
    while (next < events.size() || !back.empty()) {
        if (!back.empty() && (next == events.size() ||
                              back.front().at_us <= traffic_start_us + events[next].at_us)) {
            // A key agreement is back: the loop runs the continuation (open, replay check,
            // authorise, reply) in its turn.
            const double start = std::max(back.front().at_us, free_at_us);
            out.clear();
            const double t0 = thread_cpu_us();
            [[maybe_unused]] const ssize_t n = ::read(wake, &count, sizeof count);
            core.complete_key_agreement(std::move(back.front().result), clock.at(start), out);
            const double service = std::max(0.0, thread_cpu_us() - t0 - overhead_us);
            back.pop_front();
            free_at_us = start + service;
            model.flood_busy_us += service;
            model.flood_answered += !out.empty();
            continue;
        }
        const Event& e = events[next++];
        const double arrival = traffic_start_us + e.at_us;
        const double start = std::max(arrival, free_at_us);
        out.clear();
        const double t0 = thread_cpu_us();
        core.handle(0, e.from, e.bytes, clock.at(start), out);
        core.take_key_agreements(requests);
        if (!requests.empty()) {
            [[maybe_unused]] const ssize_t n = ::write(wake, &one, sizeof one);
        }
        const double service = std::max(0.0, thread_cpu_us() - t0 - overhead_us);
        free_at_us = start + service;
        const double latency = free_at_us - arrival;
        // The key agreements it handed over: on the crypto thread, each for the CPU time
        // it really takes (timed here), once that thread is free.
        for (ctl::KeyAgreementRequest& r : requests) {
            const double c0 = thread_cpu_us();
            ctl::KeyAgreementResult result = ctl::agree(std::move(r), server.secret_key);
            const double cost = std::max(0.0, thread_cpu_us() - c0 - overhead_us);
            crypto_free_us = std::max(crypto_free_us, free_at_us) + cost;
            model.crypto_busy_us += cost;
            back.push_back({crypto_free_us, std::move(result)});
        }
        requests.clear();
        switch (e.kind) {
            case Kind::flood:
                model.flood_busy_us += service;
                model.flood_answered += !out.empty();
                break;
            case Kind::keepalive:
                keepalive_us.push_back(latency);
                model.unanswered += !answered<ctl::Status>(agents[e.sender], e.request_id, out);
                break;
            case Kind::connect:
                connect_us.push_back(latency);
                model.unanswered += !answered<ctl::ConnectAck>(agents[e.sender], e.request_id, out);
                break;
        }
    }
    ::close(wake);
    model.key_agreements =
        counter(*registry, "relay_control_key_agreements_total") - agreements_before;
    model.keepalive = summarize(std::move(keepalive_us));
    model.connect = summarize(std::move(connect_us));
    return true;
}

}  // namespace

bool run_flood(const FloodOptions& options, const ctl::KeyPair& server, FloodResult& result,
               std::string& error) {
    std::mt19937_64 rng(20240917);
    // The crypto limit of one core: what an unknown sender costs (key checks + X25519).
    {
        std::vector<ctl::KeyPair> keys(1000);
        for (auto& k : keys) k = ctl::generate_key_pair();
        const double t0 = thread_cpu_us();  // CPU time, as the model's service times
        size_t ok = 0;
        for (const auto& k : keys)
            ok += ctl::shared_key(k.public_key, server.secret_key).has_value();
        const double s = (thread_cpu_us() - t0) / 1e6;
        if (ok != keys.size()) {
            error = "flood: key agreements failed";
            return false;
        }
        result.key_agreements_per_s = static_cast<double>(keys.size()) / s;
    }
    result.flood_offered_per_s =
        options.flood_per_s > 0 ? options.flood_per_s : result.key_agreements_per_s;

    ctl::NetworkSecret secret{};
    randombytes_buf(secret.data(), secret.size());
    const ModelClock clock{wall_now_ms()};
    const std::string token =
        ctl::issue_token(ctl::TokenClaims{"flood", 1, clock.wall_start_ms / 1000 + 86400}, secret);
    const Config config = make_config(options.peers, secret, options.unauthenticated_per_s);
    result.unauthenticated_per_s = config.control.limits.unauthenticated_per_s;

    auto make_sender = [&](SocketAddress from) {
        Sender s;
        s.keys = ctl::generate_key_pair();
        s.shared = *ctl::shared_key(server.public_key, s.keys.secret_key);
        s.from = from;
        s.wg = ctl::generate_key_pair().public_key;
        return s;
    };
    std::vector<Sender> agents;
    for (uint32_t i = 0; i < options.peers; ++i)
        agents.push_back(
            make_sender({kAgentNet + 1 + i, static_cast<uint16_t>(20000 + i % 40000)}));
    std::vector<Sender> attackers;
    for (uint32_t i = 0; i < options.attacker_keys; ++i) attackers.push_back(make_sender({}));

    // Traffic starts after the setup (registrations spaced for the budget, then a second).
    const double traffic_start_us = options.peers * 1.2e6 / result.unauthenticated_per_s + 2e6;
    const double duration_us = options.seconds * 1e6;

    // Registered traffic, then the flood, each a Poisson stream; sealed beforehand with
    // the wall time of their arrival.
    std::vector<Event> registered, flood;
    std::vector<uint32_t> next_id(options.peers, 1000);
    std::exponential_distribution<double> reg_gap(options.registered_per_s / 1e6);
    for (double t = reg_gap(rng); t < duration_us; t += reg_gap(rng)) {
        Event e;
        e.at_us = t;
        e.sender = static_cast<uint32_t>(rng() % options.peers);
        e.kind = rng() % 5 == 0 ? Kind::connect : Kind::keepalive;
        e.request_id = next_id[e.sender]++;
        e.from = agents[e.sender].from;
        const uint64_t wall = clock.at(traffic_start_us + t).wall_ms;
        if (e.kind == Kind::connect) {
            // Its partner (agent i ^ 1): both cone, so a punch.
            const uint32_t other = e.sender ^ 1u;
            if (other >= options.peers) continue;
            e.bytes =
                seal(agents[e.sender], e.request_id, wall, ctl::Connect{agents[other].wg, false});
        } else {
            e.bytes = seal(agents[e.sender], e.request_id, wall,
                           ctl::Keepalive{20000, false, false, false});
        }
        registered.push_back(std::move(e));
    }
    std::exponential_distribution<double> flood_gap(result.flood_offered_per_s / 1e6);
    uint32_t n = 0;
    for (double t = flood_gap(rng); t < duration_us; t += flood_gap(rng), ++n) {
        Event e;
        e.at_us = t;
        e.kind = Kind::flood;
        e.sender = n % options.attacker_keys;
        const uint32_t source = n % options.attacker_sources;
        e.from = {kAttackerNet + 1 + source, static_cast<uint16_t>(1024 + n % 60000)};
        e.bytes = seal(attackers[e.sender], n + 1, clock.at(traffic_start_us + t).wall_ms,
                       ctl::Keepalive{});
        flood.push_back(std::move(e));
    }
    std::vector<Event> both;
    both.reserve(registered.size() + flood.size());
    std::merge(registered.begin(), registered.end(), flood.begin(), flood.end(),
               std::back_inserter(both),
               [](const Event& a, const Event& b) { return a.at_us < b.at_us; });

    // Without the flood first, then with it: same registered traffic, fresh cores.
    Model base, flooded;
    result.clock_overhead_us = clock_overhead_us();
    if (!run_model(config, server, token, agents, registered, clock, traffic_start_us,
                   result.clock_overhead_us, base, error))
        return false;
    if (base.unanswered != 0) {
        error = "flood baseline: " + std::to_string(base.unanswered) +
                " registered requests unanswered without a flood";
        return false;
    }
    if (!run_model(config, server, token, agents, both, clock, traffic_start_us,
                   result.clock_overhead_us, flooded, error))
        return false;
    result.keepalive_base = base.keepalive;
    result.connect_base = base.connect;
    result.keepalive = flooded.keepalive;
    result.connect = flooded.connect;
    result.registered_unanswered = flooded.unanswered;
    result.flood_key_agreements_per_s = flooded.key_agreements / options.seconds;
    result.flood_answered_per_s = static_cast<double>(flooded.flood_answered) / options.seconds;
    result.flood_loop_share = flooded.flood_busy_us / duration_us;
    result.flood_crypto_share = flooded.crypto_busy_us / duration_us;
    return true;
}

}  // namespace relay::bench
