// relay-control's protocol logic, with no sockets and no clock of its own: the server
// (server.cpp) hands it each datagram with the time, and sends what it puts in the
// outbox.  So unit tests and relay-bench drive exactly what the server runs.
//
// Two clocks (Clock): every timeout (peer silence, adoption deadlines, attempts, rate
// limits) runs on the monotonic clock; the wall clock judges only what the protocol
// carries (message timestamps, token expiry), so a step of the wall clock expires nothing.
//
// One thread owns a ControlCore (the server's event loop): no locks.  The one slow step an
// unknown sender causes, its key agreement (X25519), can be handed out instead of done
// inside handle() (defer_key_agreements): the server runs it on a crypto thread and
// feeds the result back (complete_key_agreement), so registered peers never wait
// behind one.  Tests and relay-bench run the same continuation synchronously.  Peers and relay
// sessions are soft state: peers refresh themselves with keepalives; relay sessions are
// read back from the data plane after a restart (adopt()) and programmed into it again
// after its restart (reprogram()).
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "authorizer.hpp"
#include "control_metrics.hpp"
#include "nat_policy.hpp"
#include "relay/config.hpp"
#include "relay/control/envelope.hpp"
#include "relay/control/messages.hpp"
#include "relay/crypto/mac1.hpp"
#include "relay_ports.hpp"
#include "replay_guard.hpp"
#include "session_ids.hpp"
#include "session_programmer.hpp"
#include "source_limiter.hpp"
#include "token_bucket.hpp"
#include "unauthenticated_budget.hpp"

namespace relay::control {

// The time of one event, on both clocks (milliseconds).
struct Clock {
    uint64_t monotonic_ms = 0;  // steady_clock: every timeout and rate limit
    uint64_t wall_ms = 0;       // Unix time: message timestamps, token expiry
};

// One datagram to send: from control port `port_index` (0 or 1) to `to`.
struct OutDatagram {
    uint8_t port_index = 0;
    SocketAddress to{};
    std::vector<uint8_t> bytes;
};
using Outbox = std::vector<OutDatagram>;

// A sealed request from a sender control does not know, admitted by the per-source limit
// and the global budget, waiting for its key agreement (defer_key_agreements).
struct KeyAgreementRequest {
    PublicKey sender{};  // the header's sender key
    uint8_t port_index = 0;
    SocketAddress from{};
    std::vector<uint8_t> datagram;  // the whole envelope (at most kMaxEnvelopeLen bytes)
};

struct KeyAgreementResult {
    KeyAgreementRequest request;
    std::optional<SharedKey> key;  // nullopt: not a valid public key (bad_key)
};

// The key agreement itself (what the crypto thread runs): shared_key(sender, ours).
KeyAgreementResult agree(KeyAgreementRequest request, const SecretKey& ours);

struct KeyHash {
    size_t operator()(const PublicKey& k) const;
};

struct Peer {
    PublicKey agent_key{};
    SharedKey shared{};
    size_t network = 0;  // index into ControlConfig::networks
    PublicKey wg_key{};
    uint16_t wg_listen_port = 0;
    PublicKey probe_key{};  // zero: none
    uint16_t agent_port = 0;
    std::vector<SocketAddress> local_addresses;
    NatObservation observation;
    NatClass nat_class = NatClass::unknown;
    std::optional<SocketAddress> wg_reflexive;
    uint32_t rtt_us = 0;
    SocketAddress notify_to{};  // where notifications go: its last source on port 0
    uint8_t notify_port = 0;
    uint64_t registered_ms = 0;  // monotonic
    uint64_t last_seen_ms = 0;   // monotonic
    // Timestamp (the agent's wall clock) of the registration in force: a registration
    // resets what control observed, so only a newer one may replace it (a copy of an
    // older one, delivered late or replayed from elsewhere, is refused).
    uint64_t register_timestamp_ms = 0;
    std::set<uint64_t> sessions;    // relay session ids it is a side of
    ReplayGuard replay;             // this agent's nonces (nobody else's)
    TokenBucket requests;           // limits.requests_per_s_per_peer
    TokenBucket connects;           // limits.connects_per_s_per_peer
    std::deque<uint64_t> attempts;  // ids of the attempts its connects started, oldest first
};

// A relay session control allocated (or read back from the data plane).
struct Allocation {
    SessionSpec spec;
    size_t network = 0;
    bool adopted = false;              // read back after a control restart, peers not yet back
    uint64_t created_ms = 0;           // monotonic, as every time below
    uint64_t release_deadline_ms = 0;  // adopted: released if its peers are not back by then
    uint64_t last_trial_ms = 0;        // last promotion trial
    bool update_pending = false;       // its expected sources changed; the data plane not told
};

// An adopted session whose id names no network (SessionIds): nobody can claim it.
constexpr size_t kNoNetwork = SIZE_MAX;

struct Attempt {
    uint64_t id = 0;
    size_t network = 0;
    std::array<PublicKey, 2> wg{};  // [0] asked to connect, [1] the other
    uint64_t started_ms = 0;        // monotonic
    bool promotion = false;         // a trial of a relayed pair
    bool relayed = false;           // a relay offer was made for it
    bool finished = false;          // a connected result was reported
};

class ControlCore {
  public:
    ControlCore(const Config& config, KeyPair server_keys, SessionProgrammer& dataplane,
                ControlMetrics& metrics);

    void handle(uint8_t port_index, SocketAddress from, std::span<const uint8_t> datagram,
                const Clock& now, Outbox& out);
    // From now on, handle() does not compute an unknown sender's key agreement: it queues
    // a KeyAgreementRequest (take_key_agreements) and the message goes on when its result
    // comes back (complete_key_agreement).  At most `max_in_flight` are out (taken or
    // not) and not completed; a datagram that would need one more is refused
    // (key_agreement_queue_full).  0 (the default): computed inside handle().
    void defer_key_agreements(size_t max_in_flight) { max_key_agreements_ = max_in_flight; }
    // Moves the requests queued since the last call to the back of `requests`.
    void take_key_agreements(std::vector<KeyAgreementRequest>& requests);
    // The continuation, at the time `now` the result is back: opens the request with the
    // computed key and goes on as handle() does (replay checks, authorisation, reply).
    // The sender's state is looked up again: if an earlier message registered it
    // meanwhile, this one is judged as a registered agent's (its replay guard).
    void complete_key_agreement(KeyAgreementResult result, const Clock& now, Outbox& out);
    size_t key_agreements_in_flight() const { return key_agreements_in_flight_; }

    // Timers: peer expiry, adopted-session deadlines, promotion trials, attempt expiry.
    void tick(const Clock& now, Outbox& out);

    // The data plane's relay address (from config, else its health reply).
    void set_relay_address(Ipv4 ip) { relay_address_ = ip; }
    Ipv4 relay_address() const { return relay_address_; }
    // At start: take over the sessions the data plane still has (monotonic time).
    void adopt(const std::vector<SessionStats>& live, uint64_t now_ms);
    // The data plane restarted: program every session again.  Returns how many failed.
    size_t reprogram();
    // Compares by id with the data plane's sessions (after adopt()): forgets those it no
    // longer has (its idle timeout expired them) and removes those control does not know.
    void reconcile(const std::vector<SessionStats>& live, uint64_t now_ms);

    void set_draining(bool on);
    bool draining() const { return draining_; }

    const std::unordered_map<PublicKey, Peer, KeyHash>& peers() const { return peers_; }
    const std::map<uint64_t, Allocation>& allocations() const { return allocations_; }
    const Config& config() const { return config_; }
    const PublicKey& server_public_key() const { return keys_.public_key; }
    size_t pending_attempts() const { return attempts_.size(); }

  private:
    using Reply = std::optional<Body>;

    void handle_envelope(uint8_t port, SocketAddress from, std::span<const uint8_t> datagram,
                         const Clock& now, Outbox& out);
    // handle_envelope once the key is known: `peer` is the registered sender (nullptr: an
    // unknown one), `agreed` whether the key was just computed for it.  The key is a copy:
    // the peer may be gone before the reply (deregister, a move to another network).
    void open_envelope(uint8_t port, SocketAddress from, std::span<const uint8_t> datagram,
                       const RequestHeader& header, Peer* peer, SharedKey key, bool agreed,
                       const Clock& now, Outbox& out);
    void handle_stun(uint8_t port, SocketAddress from, std::span<const uint8_t> datagram,
                     const Clock& now, Outbox& out);
    void handle_wireguard(SocketAddress from, std::span<const uint8_t> datagram, const Clock& now);
    // Whether unauthenticated work of `cost` key agreements may be done now: the sender's
    // source within its per-source limit, and the global budget not spent.
    bool allow_unauthenticated(Ipv4 source, UnauthenticatedBudget::Kind kind, const Clock& now,
                               double cost);

    // nullopt: a copy of an admitted registration, dropped without a reply.
    Reply on_register(const PublicKey& agent, const SharedKey& shared, const RegisterPeer& m,
                      const Nonce& nonce, uint64_t timestamp_ms, uint8_t port, SocketAddress from,
                      const Clock& now, Outbox& out);
    Body on_keepalive(Peer& p, const Keepalive& m, uint8_t port, SocketAddress from,
                      uint8_t& reply_port);
    Body on_connect(Peer& p, const Connect& m, const Clock& now, Outbox& out);
    Body on_result(Peer& p, const ResultReport& m, const Clock& now, Outbox& out);
    Body on_release(Peer& p, const Release& m);
    Body on_deregister(Peer& p);

    Peer* find_by_wg(size_t network, const PublicKey& wg);
    void reclassify(Peer& p, const Clock& now, Outbox& out);
    // Each side's expected source (SideSpec::allowed_source, allowed_port) from what
    // control observed of that peer's authenticated registration.
    void expect_sources(const Peer& p, SideSpec& side) const;
    // After anything that may change a peer's expected source: update its sessions in the
    // data plane where it changed.
    void refresh_sessions(const Peer& p);
    // Tells the data plane a session's expected sources; false if it could not.
    bool push_update(uint64_t id, Allocation& alloc);
    // Makes room for one more attempt of `p` (and of the node): the oldest give way.
    void make_room_for_attempt(Peer* p);
    // An adopted session whose two keys are registered again in one network becomes theirs.
    bool claim_adopted(uint64_t id, Allocation& alloc);
    // Starts a promotion trial of a relayed pair when its classes allow and it is due.
    void maybe_promote(Allocation& alloc, Peer& x, Peer& y, const Clock& now, Outbox& out);
    // Sends punches to both peers of a new attempt.
    void start_punch(Attempt& a, Peer& x, Peer& y, Outbox& out, const Clock& now);
    // Allocates (or finds) the pair's relay session and offers it to both.  An Error when
    // it cannot.
    std::optional<Error> offer_relay(Attempt& a, Peer& x, Peer& y, Outbox& out, const Clock& now);
    std::optional<uint64_t> allocation_of(size_t network, const PublicKey& a,
                                          const PublicKey& b) const;
    void release(uint64_t session_id, const char* reason);
    void forget_peer(const PublicKey& agent_key, const char* reason);
    std::vector<Candidate> candidates_of(const Peer& p, const Peer& other) const;
    void notify(const Peer& p, const Body& body, const Clock& now, Outbox& out);
    void reply(uint8_t port, SocketAddress to, const SharedKey& key, uint32_t request_id,
               const Body& body, const Clock& now, size_t max_len, Outbox& out);
    Peer new_peer(const PublicKey& agent, size_t network, const Clock& now) const;
    void update_peer_gauges();
    void reject(const char* reason) { metrics_.rejected(reason); }

    Config config_;
    const ControlConfig& cc_;
    KeyPair keys_;
    SessionProgrammer& dataplane_;
    ControlMetrics& metrics_;
    Authorizer authorizer_;
    SourceLimiter unauthenticated_;
    UnauthenticatedBudget unauthenticated_budget_;  // limits.unauthenticated_per_s, all sources
    SourceLimiter registrations_;
    // Registrations' nonces, per network, kept once the token (or allow-list) admitted
    // them: a register copied after its agent was forgotten (deregistered, moved to
    // another network, control restarted within the window) is still refused.
    std::vector<ReplayGuard> register_replay_;
    // Shared keys of the latest unknown senders whose envelope opened (they proved their
    // key): an agent told not_registered registers next, and pays no second key agreement.
    // FIFO-bounded; filled at most as fast as the budget allows key agreements.
    std::unordered_map<PublicKey, SharedKey, KeyHash> recent_keys_;
    std::deque<PublicKey> recent_order_;
    // Deferred key agreements (defer_key_agreements): 0 means computed inline.
    size_t max_key_agreements_ = 0;
    size_t key_agreements_in_flight_ = 0;                      // queued or taken, not completed
    std::vector<KeyAgreementRequest> key_agreement_requests_;  // queued, not taken
    RelayPorts ports_;
    SessionIds session_ids_;
    crypto::Mac1 mac1_;
    Ipv4 relay_address_ = 0;
    bool draining_ = false;

    std::unordered_map<PublicKey, Peer, KeyHash> peers_;       // by agent key
    std::map<std::pair<size_t, PublicKey>, PublicKey> by_wg_;  // (network, wg key) -> agent key
    std::vector<size_t> peers_per_network_;
    // Probe keys of peers whose WireGuard port was not observed yet -> agent key, with when
    // they were registered (a bounded list: each initiation is checked against all of it).
    struct PendingProbe {
        PublicKey agent{};
        uint64_t registered_ms = 0;
        crypto::Mac1Key mac1_key{};  // derived once, not per initiation
    };
    std::map<PublicKey, PendingProbe> pending_probes_;
    std::map<uint64_t, Allocation> allocations_;
    std::set<uint64_t> adopted_ids_;  // allocations read back and not yet claimed by their peers
    std::map<uint64_t, Attempt> attempts_;  // by id: the first is the oldest
    // Punches decided while a side's class was still unknown (tried as port-restricted):
    // looked at again when that class becomes known (reclassify()).  Few: a peer is
    // unclassified only for the second after it registers.
    std::set<uint64_t> guessed_attempts_;
    uint64_t next_attempt_id_ = 1;
    uint64_t last_gauge_ms_ = 0;
    uint64_t last_update_retry_ms_ = 0;
};

}  // namespace relay::control
