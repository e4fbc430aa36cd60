// Test harness for relay-control's protocol core (control/src/control_core.hpp): an
// in-memory data plane, a config built in code, a server key pair, metrics on a fresh
// registry, and TestPeer, which seals requests the way relay-peer does and opens what
// the core puts in its outbox.  Time is explicit (Harness::now), so nothing sleeps.
#pragma once

#include <prometheus/registry.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "control_core.hpp"
#include "control_metrics.hpp"
#include "relay/config.hpp"
#include "relay/control/credentials.hpp"
#include "relay/control/envelope.hpp"
#include "relay/control/messages.hpp"
#include "relay/net.hpp"
#include "session_programmer.hpp"

namespace relay::control::testing {

constexpr Ipv4 ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return Ipv4{a} << 24 | Ipv4{b} << 16 | Ipv4{c} << 8 | d;
}

// 2023-11-14T22:13:20Z: tokens carry Unix seconds, so the clock must look real.
constexpr uint64_t kStartMs = 1'700'000'000'000ULL;
constexpr Ipv4 kRelayAddress = ip4(198, 51, 100, 10);
constexpr uint16_t kRelayPortMin = 40000;
constexpr uint16_t kRelayPortMax = 40009;

// Indexes of the networks in make_config().
constexpr size_t kAlpha = 0;
constexpr size_t kBeta = 1;
constexpr size_t kListed = 2;

// The network secrets of make_config(): id 1 active, id 2 retired, in alpha and beta.
NetworkSecret secret_of(const std::string& network, uint8_t id);

// alpha (max 8 peers) and beta (max 3 peers) with token secrets; "listed" with a static
// allow-list holding `listed_agent`.  Ports 3478/3479, relay 198.51.100.10:40000-40009,
// small limits (2 sessions per peer, 5 registrations and 20 unauthenticated datagrams a
// second per source, 64 peers in all; 1000 key agreements a second for unknown senders).
Config make_config(const PublicKey& listed_agent);

// A SessionProgrammer in memory: records what control asked for and can be told to fail.
// Idempotent by id like the real one: the same add again succeeds, and removing a
// session that is not there succeeds (it is gone).
class FakeDataplane : public SessionProgrammer {
  public:
    std::optional<ProgramError> add_session(const SessionSpec& spec) override;
    std::optional<ProgramError> remove_session(uint64_t id) override;
    std::optional<ProgramError> update_session(const SessionUpdate& update) override;
    std::optional<std::vector<SessionStats>> list_sessions() override;
    std::optional<DataplaneHealth> health() override;

    // A data-plane restart: every session gone, a new instance id.
    void restart();
    bool has(uint64_t id) const { return sessions.count(id) != 0; }

    std::map<uint64_t, SessionSpec> sessions;  // what the data plane holds now
    std::vector<SessionSpec> added;            // every successful add, in order
    std::vector<uint64_t> removed;             // every successful remove, in order
    std::vector<SessionUpdate> updates;        // every successful update, in order
    size_t add_calls = 0;
    size_t remove_calls = 0;
    bool unavailable = false;                // every call fails as unreachable
    std::optional<ipc::Status> refuse_adds;  // add_session refuses with this status
    bool late_adds = false;  // add_session installs, but answers `busy` (a late worker)
    uint64_t instance_id = 1;
    std::vector<Ipv4> relay_addresses = {kRelayAddress};
};

// One datagram from control that a TestPeer could open.
struct Received {
    uint8_t port_index = 0;
    SocketAddress to{};
    size_t size = 0;
    Message message;
};

enum class Mapping {
    endpoint_independent,  // one source for both control ports
    symmetric,             // a different source port towards each control port
    none,                  // no NAT: the source is one of its local addresses
};

// A peer agent as seen from control: its keys, its sources towards control ports 0 and 1
// and what it registers with.
class TestPeer {
  public:
    TestPeer(const PublicKey& server_public, SocketAddress source, Mapping mapping,
             std::string token, KeyPair agent = generate_key_pair());

    // What register() sends (token, WireGuard key and port, probe key, local addresses).
    RegisterPeer register_body() const;
    // A sealed request with the given timestamp and request id (the next one if 0).
    std::vector<uint8_t> seal(const Body& body, uint64_t timestamp_ms, uint32_t request_id = 0);
    // Opens and decodes a datagram from control; nullopt if it is not for this peer.
    std::optional<Message> open(std::span<const uint8_t> datagram) const;
    // Every datagram of `out` this peer can open, in order.
    std::vector<Received> received(const Outbox& out) const;
    // Only the notifications (request id 0) of type T, in order.
    template <typename T>
    std::vector<T> notifications(const Outbox& out) const {
        std::vector<T> found;
        for (const Received& r : received(out))
            if (const T* t = std::get_if<T>(&r.message.body); t && r.message.request_id == 0)
                found.push_back(*t);
        return found;
    }

    KeyPair agent;
    SharedKey shared{};
    KeyPair wg = generate_key_pair();
    KeyPair probe = generate_key_pair();
    std::array<SocketAddress, 2> source{};  // towards control port 0 and 1
    uint16_t wg_listen_port = 51820;
    uint16_t agent_port = 0;
    std::vector<SocketAddress> local_addresses;
    std::string token;
    bool send_probe_key = true;
    uint32_t next_request_id = 1;
};

class Harness {
  public:
    // `tweak` edits the default config before the core is built.
    explicit Harness(void (*tweak)(Config&) = nullptr);

    // A control restart: a new core (and metrics registry) on the same data plane.
    void restart_control();

    // A peer of `network` with a fresh public address (203.0.113.x) unless one is given.
    TestPeer make_peer(const std::string& network = "alpha",
                       Mapping mapping = Mapping::endpoint_independent,
                       std::optional<SocketAddress> source = std::nullopt);
    std::string token(const std::string& network, uint8_t secret_id, uint64_t expires_unix_s) const;
    std::string token(const std::string& network) const;  // id 1, valid for an hour

    // Hands `datagram` to the core as if received on control port `port` from `from`.
    Outbox deliver(uint8_t port, SocketAddress from, std::span<const uint8_t> datagram);
    // Seals `body` from `peer` (timestamp now) and delivers it from its source on `port`
    // (or from `from`).  `sent` receives the datagram's size, for amplification checks.
    Outbox send(TestPeer& peer, uint8_t port, const Body& body,
                std::optional<SocketAddress> from = std::nullopt, size_t* sent = nullptr);
    // send(), then the one reply to it (request id checked); fails the test otherwise.
    Message request(TestPeer& peer, uint8_t port, const Body& body, Outbox* out = nullptr);

    // Registers on port 0 and expects Registered.
    void register_peer(TestPeer& peer);
    // Registers, then keepalives on port 1 (its source towards port 1): the class is known.
    void register_and_classify(TestPeer& peer, uint32_t rtt_us = 0);
    // A peer of `network` behind a symmetric NAT, registered and classified.
    TestPeer symmetric_peer(const std::string& network = "alpha");
    // `a` asks to connect to `b` (forced onto the relay if `force_relay`): the session id
    // of the relay offer `b` gets (0, with a failed expectation, if none).
    uint64_t relayed_pair(TestPeer& a, TestPeer& b, bool force_relay = false);
    Outbox tick();

    const Peer* peer_state(const TestPeer& peer) const;
    NatClass nat_class(const TestPeer& peer) const;

    // A counter's (or gauge's) value in the registry: labels must match exactly; 0 if absent.
    double metric(const std::string& family,
                  const std::map<std::string, std::string>& labels = {}) const;
    double rejected(const std::string& reason) const {
        return metric("relay_control_rejected_messages_total", {{"reason", reason}});
    }

    // The server's wall clock: `now` plus a step (NTP setting the clock), which the
    // monotonic clock (`now` itself) never sees.  Peers' clocks follow the wall clock.
    uint64_t wall() const { return now + wall_step; }
    Clock clock() const { return Clock{now, wall()}; }

    KeyPair listed_agent = generate_key_pair();
    Config config;
    KeyPair server = generate_key_pair();
    FakeDataplane dataplane;
    std::shared_ptr<prometheus::Registry> registry;
    std::unique_ptr<ControlMetrics> metrics;
    std::unique_ptr<ControlCore> core;
    uint64_t now = kStartMs;
    int64_t wall_step = 0;

  private:
    uint32_t next_host_ = 10;
};

// Whether the Keepalive codec carries probe_done / probe_reply_seen (flags bits 1 and 2).
bool codec_has_probe_bits();

// A WireGuard handshake initiation (type 1, 148 bytes) whose mac1 is keyed for
// `receiver` (the agent's throw-away probe key).
std::vector<uint8_t> wireguard_initiation(const PublicKey& receiver, uint32_t sender_index = 7);

}  // namespace relay::control::testing
