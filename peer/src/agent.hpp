// relay-peer's agent: registers with relay-control, keeps the registration alive, learns
// its NAT class and the reflexive address of WireGuard's own port, and connects every
// peer configured on the WireGuard interface — directly when the punch works, else
// through the relay session control offers — reporting each result (BRIEF §2, §5).
//
// One thread, one loop (run()): control messages, timers and `wg` calls in turn.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent_config.hpp"
#include "network_watch.hpp"
#include "relay/ipc/unix_socket.hpp"
#include "relay/peer/control_client.hpp"
#include "rtt_estimator.hpp"
#include "wg_interface.hpp"

namespace relay::peer {

enum class Path { connecting, direct, relayed };
const char* to_string(Path p);

// What the agent knows of one WireGuard peer.
struct PeerState {
    WgPeer wg;
    Path path = Path::connecting;
    std::optional<SocketAddress> endpoint;  // where WireGuard sends to now
    uint64_t since_ms = 0;                  // path entered at
    // Connecting
    uint64_t next_connect_ms = 0;     // when to (re)send connect
    uint32_t connect_request = 0;     // request id of the outstanding connect
    uint64_t refused_retry_ms = 500;  // after an error reply to connect (doubles)
    uint64_t attempt_id = 0;
    // A punch in progress (also a promotion trial while relayed)
    bool punching = false;
    std::vector<control::Candidate> candidates;
    size_t candidate = 0;
    unsigned shot = 0;    // initiations sent to this candidate (two each)
    bool waited = false;  // a shot's deadline was extended for a handshake under way
    uint64_t fire_at_ms = 0;
    bool fired = false;
    uint64_t fired_at_s = 0;
    uint64_t candidate_deadline_ms = 0;
    uint32_t deadline_ms = 0;
    uint64_t punch_started_ms = 0;
    // Relay
    std::optional<control::RelayOffer> relay;
    bool relay_pending = false;  // offer applied, waiting for the handshake through it
    uint64_t relay_deadline_ms = 0;
    uint64_t relay_applied_s = 0;
};

class Agent {
  public:
    explicit Agent(AgentConfig config);
    // Runs until `stop`; deregisters on the way out.  Throws on a fatal start-up error.
    void run(const std::atomic<bool>& stop);

  private:
    bool register_now(uint64_t now_ms);
    void start_filtering_probe(uint64_t now_ms);
    void check_filtering_probe(uint64_t now_ms);
    void send_keepalives(uint64_t now_ms);
    void start_over(uint64_t now_ms);  // register again and connect every peer anew
    void watch_network(uint64_t now_ms);
    void resend_from_new_address();
    void on_network_change(uint64_t now_ms);
    void on_message(const control::Message& m, uint64_t now_ms);
    std::map<PublicKey, PeerState>::iterator find_peer(const PublicKey& key, uint64_t now_ms);
    void on_punch(const control::Punch& p, uint64_t now_ms);
    void on_relay_offer(const control::RelayOffer& o, uint64_t now_ms);
    void refresh_wireguard(uint64_t now_ms);
    void drive_peer(PeerState& p, uint64_t now_ms);
    bool read_peer(PeerState& p);
    bool direct_handshake(const PeerState& p) const;
    void rejoin_relay(PeerState& p, uint64_t now_ms);
    uint64_t shot_ms(const PeerState& p) const;
    void report(PeerState& p, control::Outcome outcome, uint64_t now_ms);
    void enter(PeerState& p, Path path, std::optional<SocketAddress> endpoint, uint64_t now_ms);
    void manage_probe_peer(uint64_t now_ms);
    std::vector<SocketAddress> local_addresses() const;
    std::vector<uint8_t> status_json() const;

    AgentConfig config_;
    WgInterface wg_;
    control::KeyPair keys_;
    std::optional<ControlClient> client_;
    std::optional<ipc::SeqpacketServer> status_server_;
    WgState wg_state_;
    std::map<PublicKey, PeerState> peers_;

    bool registered_ = false;
    uint64_t registered_at_ms_ = 0;
    SocketAddress reflexive_{};
    control::NatClass nat_class_ = control::NatClass::unknown;
    std::optional<SocketAddress> wg_reflexive_;
    uint32_t keepalive_interval_s_ = 20;
    uint64_t next_keepalive_ms_ = 0;
    uint64_t last_reply_ms_ = 0;
    uint64_t next_wg_refresh_ms_ = 0;
    RttEstimator rtt_;                           // to control, from keepalives
    std::optional<NetworkWatch> network_watch_;  // nullopt: keepalives alone show changes
    uint64_t network_changed_since_ms_ = 0;      // first change of a burst not acted on; 0 = none
    uint64_t network_changed_last_ms_ = 0;
    uint64_t next_register_ms_ = 0;                 // while unregistered: when to try again
    std::optional<ControlClient> filtering_probe_;  // its fresh socket, while it runs
    uint64_t filtering_probe_deadline_ms_ = 0;
    bool probe_done_ = false;
    bool probe_reply_seen_ = false;
    control::KeyPair probe_keys_{};
    bool probe_peer_added_ = false;
    uint64_t probe_added_ms_ = 0;
    std::vector<SocketAddress> registered_locals_;
    std::vector<SocketAddress> host_locals_;  // at start and at the last settled network change
};

}  // namespace relay::peer
