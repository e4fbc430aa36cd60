#include "agent.hpp"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "relay/control/credentials.hpp"

namespace relay::peer {

using namespace relay::control;

namespace {

constexpr uint64_t kRegisterRetryMs = 2000;
constexpr uint64_t kConnectRetryMs = 10'000;  // a connect nobody answered is sent again
constexpr uint64_t kConnectErrorRetryMs = 2000;
// A refused connect (most often: the other peer has not registered yet, as when both
// start together) is sent again after 0.5 s, doubling up to 8 s while refusals go on.
constexpr uint64_t kConnectRefusedFirstRetryMs = 500;
constexpr uint64_t kConnectRefusedMaxRetryMs = 8000;
constexpr uint64_t kResponderWaitMs = 15'000;  // the non-initiator connects itself after this
constexpr uint64_t kRelayDeadlineMs = 8000;
constexpr uint64_t kWgRefreshMs = 500;
// Address and route changes come in bursts (an address removed, another added, the
// default route put back): act once they have been quiet this long, or this long after
// the first of them at the latest.
constexpr uint64_t kNetworkSettleMs = 100;
constexpr uint64_t kNetworkSettleMaxMs = 1000;
constexpr uint64_t kProbeGiveUpMs = 15'000;
constexpr uint64_t kHandshakeStaleS = 200;  // WireGuard re-handshakes every 120 s under keepalives
constexpr int kFilteringProbeWaitMs = 1000;

void log(const char* fmt, const std::string& a = "", const std::string& b = "") {
    std::printf(fmt, a.c_str(), b.c_str());
    std::printf("\n");
    std::fflush(stdout);
}

std::string short_key(const PublicKey& k) {
    return key_to_base64(k).substr(0, 8);
}

}  // namespace

const char* to_string(Path p) {
    switch (p) {
        case Path::connecting:
            return "connecting";
        case Path::direct:
            return "direct";
        case Path::relayed:
            return "relayed";
    }
    return "unknown";
}

Agent::Agent(AgentConfig config)
    : config_(std::move(config)), wg_(config_.interface, config_.wg_program) {}

std::vector<SocketAddress> Agent::local_addresses() const {
    std::vector<SocketAddress> out;
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) return out;
    for (ifaddrs* i = list; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
        if ((i->ifa_flags & IFF_LOOPBACK) || config_.interface == i->ifa_name) continue;
        const auto* sa = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
        if (out.size() < kMaxLocalAddresses)
            out.push_back({ntohl(sa->sin_addr.s_addr), wg_state_.listen_port});
    }
    ::freeifaddrs(list);
    return out;
}

bool Agent::register_now(uint64_t now_ms) {
    if (probe_peer_added_) {  // the previous registration's throw-away peer
        wg_.remove_peer(key_to_base64(probe_keys_.public_key));
        probe_peer_added_ = false;
    }
    probe_keys_ = generate_key_pair();
    wg_reflexive_.reset();
    registered_locals_ = local_addresses();
    RegisterPeer r;
    r.token = config_.token;
    r.wg_public_key = wg_state_.public_key;
    r.wg_listen_port = wg_state_.listen_port;
    r.probe_key = probe_keys_.public_key;
    r.agent_port = client_->local_address().port;
    r.local_addresses = registered_locals_;
    auto reply = client_->request(0, r, 1000);
    if (!reply) {
        log("relay-peer: register: %s", reply.error());
        return false;
    }
    if (const auto* e = std::get_if<Error>(&reply->body)) {
        log("relay-peer: register refused: %s (%s)", to_string(e->code), e->text);
        return false;
    }
    const auto* ok = std::get_if<Registered>(&reply->body);
    if (!ok) return false;
    registered_ = true;
    registered_at_ms_ = now_ms;
    nat_class_ = NatClass::unknown;  // control classifies a new registration afresh
    last_reply_ms_ = now_ms;
    reflexive_ = ok->reflexive;
    keepalive_interval_s_ = std::max<uint16_t>(1, ok->keepalive_interval_s);
    rtt_.seed(client_->last_rtt_us());
    log("relay-peer: registered, reflexive address %s", format_socket_address(reflexive_));
    // The throw-away peer first, so that control observes WireGuard's port while the
    // filtering probe waits: punches name that address as this peer's candidate, and
    // until it is observed control can only guess it (public IP and listen port, wrong
    // behind a symmetric NAT or for the second host of a shared one).
    manage_probe_peer(now_ms);
    start_filtering_probe(now_ms);
    // The first keepalives wait for the probe's result (check_filtering_probe()), so
    // that control does not classify us from half the evidence.
    next_keepalive_ms_ = filtering_probe_ ? now_ms + kFilteringProbeWaitMs + 100 : 0;
    return true;
}

// Filtering: from a fresh socket (whose NAT mapping has only seen control's first port),
// ask for the answer from the other port.  It gets through a cone NAT, not a
// port-restricted one.  The loop keeps running meanwhile (check_filtering_probe()): a
// punch that arrives while we wait must still fire on time.
void Agent::start_filtering_probe(uint64_t now_ms) {
    filtering_probe_.reset();
    auto probe = ControlClient::open(keys_, config_.control);
    if (!probe) {
        log("relay-peer: filtering probe: %s", probe.error());
        return;
    }
    Keepalive k;
    k.reply_from_other_port = true;
    probe->send(0, k);
    filtering_probe_.emplace(std::move(*probe));
    filtering_probe_deadline_ms_ = now_ms + kFilteringProbeWaitMs;
}

void Agent::check_filtering_probe(uint64_t now_ms) {
    if (!filtering_probe_) return;
    const bool seen = filtering_probe_->poll(0).has_value();
    if (!seen && now_ms < filtering_probe_deadline_ms_) return;
    filtering_probe_.reset();
    probe_reply_seen_ = seen;
    probe_done_ = true;
    next_keepalive_ms_ = 0;  // both ports at once, with the result: that classifies us
}

void Agent::send_keepalives(uint64_t now_ms) {
    Keepalive k;
    k.rtt_us = rtt_.us();
    k.probe_done = probe_done_;
    k.probe_reply_seen = probe_reply_seen_;
    for (uint8_t port = 0; port < 2; ++port) {
        rtt_.sent(client_->next_request_id());
        client_->send(port, k);
    }
    next_keepalive_ms_ = now_ms + keepalive_interval_s_ * 1000ull;
}

void Agent::enter(PeerState& p, Path path, std::optional<SocketAddress> endpoint, uint64_t now_ms) {
    if (p.path != path) {
        log("relay-peer: peer %s is now %s", short_key(p.wg.key), to_string(path));
        p.since_ms = now_ms;
    }
    p.path = path;
    p.endpoint = endpoint;
}

void Agent::report(PeerState& p, Outcome outcome, uint64_t now_ms) {
    ResultReport r;
    r.attempt_id = p.attempt_id;
    r.peer = p.wg.key;
    r.outcome = outcome;
    r.elapsed_ms = static_cast<uint32_t>(now_ms - p.punch_started_ms);
    client_->send(0, r);
}

void Agent::start_over(uint64_t now_ms) {
    registered_ = false;
    for (auto& [k, p] : peers_) {
        p.next_connect_ms = 0;
        // The relay latched our old address, and WireGuard re-handshakes on its own only
        // after minutes when nothing but keepalives flows: handshake through the relay
        // now, so that it latches the new address (a roam).
        if (p.path == Path::relayed && p.relay && !p.punching) rejoin_relay(p, now_ms);
    }
}

// The host's addresses or routes changed and have settled.  If its addresses changed,
// WireGuard must stop sending from a vanished one, whatever state the registration is
// in (a keepalive may have shown the move first).  New local addresses are a new network
// (or a new candidate for peers behind our NAT): register again.  A route change alone
// may have moved our traffic to another uplink: a keepalive round now shows whether our
// reflexive address moved (on_message() handles that).  While unregistered (a
// registration failed meanwhile, say for want of a route), try again now.
void Agent::on_network_change(uint64_t now_ms) {
    auto locals = local_addresses();
    if (locals != host_locals_) resend_from_new_address();
    host_locals_ = std::move(locals);
    if (!registered_) {
        next_register_ms_ = now_ms;
    } else if (host_locals_ != registered_locals_) {
        log("relay-peer: local addresses changed; registering again");
        start_over(now_ms);
        next_register_ms_ = now_ms;
    } else {
        next_keepalive_ms_ = now_ms;
    }
}

// WireGuard remembers the local address it last sent to each peer from (wireguard-go
// keeps using a vanished one until a handshake has failed, ~15 s).  Setting a direct
// peer's endpoint again, unchanged, makes it forget that source: its next packet leaves
// from the new address and the other side roams to it.  (Relayed peers were reset by
// start_over(), which does the same.)
void Agent::resend_from_new_address() {
    for (auto& [k, p] : peers_) {
        if (p.path != Path::direct || p.punching || !p.wg.endpoint) continue;
        if (auto r =
                wg_.set_endpoint(p.wg.key_text, *p.wg.endpoint, config_.persistent_keepalive_s);
            !r)
            log("relay-peer: %s", r.error());
    }
}

void Agent::watch_network(uint64_t now_ms) {
    if (!network_watch_) return;
    if (network_watch_->changed()) {
        if (!network_changed_since_ms_) network_changed_since_ms_ = now_ms;
        network_changed_last_ms_ = now_ms;
    }
    if (!network_changed_since_ms_) return;
    if (now_ms - network_changed_last_ms_ < kNetworkSettleMs &&
        now_ms - network_changed_since_ms_ < kNetworkSettleMaxMs)
        return;
    network_changed_since_ms_ = 0;
    on_network_change(now_ms);
}

void Agent::on_message(const Message& m, uint64_t now_ms) {
    last_reply_ms_ = now_ms;
    if (const auto* s = std::get_if<Status>(&m.body)) {
        rtt_.answered(m.request_id);
        nat_class_ = s->nat_class;
        if (s->wg_reflexive.ip) wg_reflexive_ = s->wg_reflexive;
        if (s->server_port == config_.control.ports[0] && !(s->reflexive == reflexive_)) {
            // Our public address changed: a new network.  Register again and connect anew.
            log("relay-peer: reflexive address changed to %s; registering again",
                format_socket_address(s->reflexive));
            start_over(now_ms);
        }
        return;
    }
    if (const auto* e = std::get_if<Error>(&m.body)) {
        if (e->code == ErrorCode::not_registered) {
            // Control restarted (or forgot us): register again; paths stay as they are.
            registered_ = false;
            return;
        }
        for (auto& [k, p] : peers_) {
            if (p.connect_request == m.request_id) {
                p.connect_request = 0;
                p.next_connect_ms = now_ms + p.refused_retry_ms;
                p.refused_retry_ms = std::min(2 * p.refused_retry_ms, kConnectRefusedMaxRetryMs);
            }
        }
        return;
    }
    if (const auto* ack = std::get_if<ConnectAck>(&m.body)) {
        for (auto& [k, p] : peers_)
            if (p.connect_request == m.request_id) p.attempt_id = ack->attempt_id;
        return;
    }
    if (const auto* punch = std::get_if<Punch>(&m.body)) return on_punch(*punch, now_ms);
    if (const auto* offer = std::get_if<RelayOffer>(&m.body)) return on_relay_offer(*offer, now_ms);
}

// A punch or relay offer may name a peer added to the interface since the last
// refresh (the operator configured both sides, and the other agent saw it first):
// look again at once rather than let the attempt fail.
std::map<PublicKey, PeerState>::iterator Agent::find_peer(const PublicKey& key, uint64_t now_ms) {
    auto it = peers_.find(key);
    if (it != peers_.end()) return it;
    refresh_wireguard(now_ms);
    next_wg_refresh_ms_ = now_ms + kWgRefreshMs;
    return peers_.find(key);
}

void Agent::on_punch(const Punch& punch, uint64_t now_ms) {
    if (punch.candidates.empty()) return;
    auto it = find_peer(punch.peer, now_ms);
    if (it == peers_.end()) return;
    PeerState& p = it->second;
    p.connect_request = 0;
    p.refused_retry_ms = kConnectRefusedFirstRetryMs;
    p.attempt_id = punch.attempt_id;
    p.punching = true;
    p.candidates = punch.candidates;
    p.candidate = 0;
    p.shot = 0;
    p.waited = false;
    p.relay_pending = false;  // the punch takes over (a failed trial goes back to the relay)
    p.fire_at_ms = now_ms + punch.fire_delay_ms;
    p.fired = false;
    p.deadline_ms = punch.deadline_ms;
    p.punch_started_ms = now_ms;
    // Forget the old session now, not at the fire instant: the other side's first
    // initiation arrives about then, and one that meets the peer removed (mid-reset) is
    // lost; WireGuard would not send another for 5 s.  Without an endpoint the peer still
    // answers that initiation (and roams to its source).
    if (auto r = wg_.reset_peer(p.wg); !r) log("relay-peer: %s", r.error());
    p.wg.latest_handshake_s = 0;
}

void Agent::on_relay_offer(const RelayOffer& offer, uint64_t now_ms) {
    auto it = find_peer(offer.peer, now_ms);
    if (it == peers_.end()) return;
    PeerState& p = it->second;
    p.connect_request = 0;
    p.refused_retry_ms = kConnectRefusedFirstRetryMs;
    p.attempt_id = offer.attempt_id;
    const bool same = p.relay && p.relay->session_id == offer.session_id;
    p.relay = offer;
    if (same && (p.path == Path::relayed || p.relay_pending)) return;
    p.punching = false;
    if (auto r = wg_.reset_peer(p.wg, offer.relay, config_.persistent_keepalive_s); !r)
        log("relay-peer: %s", r.error());
    p.wg.latest_handshake_s = 0;
    p.relay_pending = true;
    p.relay_deadline_ms = now_ms + kRelayDeadlineMs;
    if (p.punch_started_ms == 0) p.punch_started_ms = now_ms;
    enter(p, Path::connecting, offer.relay, now_ms);
}

void Agent::refresh_wireguard(uint64_t now_ms) {
    auto state = wg_.read();
    if (!state) {
        log("relay-peer: %s", state.error());
        return;
    }
    wg_state_ = *state;
    std::map<PublicKey, PeerState> next;
    for (const WgPeer& w : wg_state_.peers) {
        if (w.key == probe_keys_.public_key) continue;
        auto it = peers_.find(w.key);
        if (it == peers_.end()) {
            PeerState p;
            p.wg = w;
            p.since_ms = now_ms;
            // The peer with the lower key asks; the other waits for the punch, and asks
            // itself only if nothing comes (its partner's agent may be older or down).
            p.next_connect_ms = wg_state_.public_key < w.key ? now_ms : now_ms + kResponderWaitMs;
            log("relay-peer: new peer %s", short_key(w.key));
            next.emplace(w.key, std::move(p));
        } else {
            it->second.wg = w;
            next.emplace(w.key, std::move(it->second));
        }
    }
    for (auto& [k, p] : peers_)
        if (!next.count(k) && p.relay && registered_)
            client_->send(0, Release{p.relay->session_id});
    peers_ = std::move(next);
}

// The peer's line of `wg show dump` now (the periodic refresh may be up to 500 ms old).
bool Agent::read_peer(PeerState& p) {
    auto state = wg_.read();
    if (!state) return false;
    for (const WgPeer& w : state->peers) {
        if (w.key != p.wg.key) continue;
        p.wg = w;
        return true;
    }
    return false;
}

// How long one initiation to one candidate may take: the punch deadline shared by two
// shots per candidate, at least 500 ms each.
uint64_t Agent::shot_ms(const PeerState& p) const {
    const uint64_t shots = 2 * std::max<size_t>(1, p.candidates.size());
    return std::max<uint64_t>(500, p.deadline_ms / shots);
}

// A handshake over a direct path: WireGuard's endpoint (where the handshake came from,
// or went to) is not the relay session's address.
bool Agent::direct_handshake(const PeerState& p) const {
    return p.wg.latest_handshake_s != 0 && p.wg.endpoint &&
           !(p.relay && *p.wg.endpoint == p.relay->relay);
}

// Points WireGuard at the relay session we hold and waits for a handshake through it.
void Agent::rejoin_relay(PeerState& p, uint64_t now_ms) {
    if (auto r = wg_.reset_peer(p.wg, p.relay->relay, config_.persistent_keepalive_s); !r)
        log("relay-peer: %s", r.error());
    p.wg.latest_handshake_s = 0;
    p.relay_pending = true;
    p.relay_deadline_ms = now_ms + kRelayDeadlineMs;
}

void Agent::drive_peer(PeerState& p, uint64_t now_ms) {
    const uint64_t now_s = now_ms / 1000;
    if (p.punching && !p.fired && now_ms >= p.fire_at_ms) {
        // Fire: WireGuard sends its handshake initiation at once.
        p.fired = true;
        p.shot = 1;
        // Turning the keepalive on makes WireGuard send at once.  If the other side's
        // initiation came first, WireGuard answered it and roamed to its source, which is
        // the address that works (a symmetric NAT's port for us): keep that one.  One that
        // came through the relay (the other side still going back to the relay session)
        // proves nothing about the direct path: start afresh at the candidate.
        const bool fresh = read_peer(p);
        if (fresh && direct_handshake(p)) {
            if (auto r =
                    wg_.set_endpoint(p.wg.key_text, *p.wg.endpoint, config_.persistent_keepalive_s);
                !r)
                log("relay-peer: %s", r.error());
        } else if (fresh && p.wg.latest_handshake_s != 0) {
            if (auto r =
                    wg_.reset_peer(p.wg, p.candidates[0].address, config_.persistent_keepalive_s);
                !r)
                log("relay-peer: %s", r.error());
            p.wg.latest_handshake_s = 0;
        } else if (auto r = wg_.set_endpoint(p.wg.key_text, p.candidates[0].address,
                                             config_.persistent_keepalive_s);
                   !r) {
            log("relay-peer: %s", r.error());
        }
        // The second shot comes early (it is what an address-restricted NAT facing a
        // symmetric one needs: its filter is open once its own first packet left), but the
        // two sides' second shots must not coincide: a reset that meets the other side's
        // initiation would answer it and then throw the new session away.  The side with
        // the higher key shoots later.
        const uint64_t first = std::max<uint64_t>(300, shot_ms(p) / 2);
        const uint64_t stagger = wg_state_.public_key < p.wg.key ? 0 : first / 2;
        p.candidate_deadline_ms = now_ms + first + stagger;
        return;
    }
    if (p.punching && !p.fired) return;  // waiting for the fire instant
    if (p.punching) {
        if (direct_handshake(p)) {
            p.punching = false;
            enter(p, Path::direct, p.wg.endpoint, now_ms);
            report(p, Outcome::direct_ok, now_ms);
            return;
        }
        if (now_ms < p.candidate_deadline_ms) return;
        if (read_peer(p) && direct_handshake(p)) return;  // up since the last refresh
        if (p.wg.rx_bytes != 0 && !p.waited) {
            // The other side's initiation got through and was answered: the handshake is
            // completing (a responder sees it done with the first data packet).  A reset
            // now would throw that session away; wait one more shot instead.
            p.waited = true;
            p.candidate_deadline_ms = now_ms + shot_ms(p);
            return;
        }
        // WireGuard sends one initiation per 5 s, so each candidate gets a second one
        // (a fresh peer sends at once).  The first may have reached the other NAT before
        // that NAT's own packet left and been dropped: an address-restricted NAT facing a
        // symmetric one lets only the symmetric side's packet in, and only after its own.
        if (p.shot < 2 || ++p.candidate < p.candidates.size()) {
            p.shot = p.shot < 2 ? p.shot + 1 : 1;
            wg_.reset_peer(p.wg, p.candidates[p.candidate].address, config_.persistent_keepalive_s);
            p.wg.latest_handshake_s = 0;
            p.candidate_deadline_ms = now_ms + shot_ms(p);
            return;
        }
        p.punching = false;
        report(p, Outcome::direct_failed, now_ms);
        // A promotion trial failed: back to the relay session we still hold.
        if (p.relay) rejoin_relay(p, now_ms);
        return;
    }
    if (p.relay_pending) {
        if (p.wg.latest_handshake_s != 0) {
            p.relay_pending = false;
            enter(p, Path::relayed, p.relay->relay, now_ms);
            report(p, Outcome::relayed_ok, now_ms);
        } else if (now_ms >= p.relay_deadline_ms) {
            p.relay_pending = false;
            report(p, Outcome::relay_failed, now_ms);
            enter(p, Path::connecting, std::nullopt, now_ms);
            p.next_connect_ms = now_ms + kConnectErrorRetryMs;
        }
        return;
    }
    if (p.path == Path::direct && p.relay) {
        // Promoted: the relay session was released by control on our direct_ok.
        p.relay.reset();
    }
    if (p.path != Path::connecting && p.wg.latest_handshake_s &&
        now_s > p.wg.latest_handshake_s + kHandshakeStaleS) {
        log("relay-peer: peer %s went quiet; connecting again", short_key(p.wg.key));
        enter(p, Path::connecting, std::nullopt, now_ms);
        p.next_connect_ms = now_ms;
    }
    // Not before control has classified our NAT: it decides punch or relay from both
    // classes, and would decide on a guess (unknown is tried as port-restricted).
    // Nor before it has observed WireGuard's port (or given up on it): the punch
    // candidates control sends our partner are made of that address.
    const bool observed = wg_reflexive_ || now_ms - registered_at_ms_ > kProbeGiveUpMs;
    if (p.path == Path::connecting && registered_ && nat_class_ != NatClass::unknown && observed &&
        now_ms >= p.next_connect_ms) {
        Connect c;
        c.peer = p.wg.key;
        p.connect_request = client_->next_request_id();
        client_->send(0, c);
        p.punch_started_ms = now_ms;
        p.next_connect_ms = now_ms + kConnectRetryMs;
    }
}

void Agent::manage_probe_peer(uint64_t now_ms) {
    const std::string probe = key_to_base64(probe_keys_.public_key);
    if (!probe_peer_added_ && registered_ && !wg_reflexive_ &&
        now_ms - registered_at_ms_ < kProbeGiveUpMs) {
        // A throw-away peer pointed at control: WireGuard sends it a handshake initiation
        // from its own port, whose mac1 (keyed with this key) tells control it is ours.
        if (wg_.set_endpoint(probe, {config_.control.address, config_.control.ports[0]}, 1)) {
            probe_peer_added_ = true;
            probe_added_ms_ = now_ms;
        }
    }
    if (probe_peer_added_ && (wg_reflexive_ || now_ms - probe_added_ms_ > kProbeGiveUpMs)) {
        wg_.remove_peer(probe);
        probe_peer_added_ = false;
    }
}

std::vector<uint8_t> Agent::status_json() const {
    using nlohmann::json;
    const uint64_t now_ms = unix_ms_now();
    json peers = json::array();
    for (const auto& [k, p] : peers_) {
        peers.push_back({{"peer", key_to_base64(k)},
                         {"path", to_string(p.path)},
                         {"endpoint", p.endpoint ? format_socket_address(*p.endpoint) : ""},
                         {"since_s", (now_ms - p.since_ms) / 1000},
                         {"latest_handshake_s", p.wg.latest_handshake_s},
                         {"relay_session", p.relay ? p.relay->session_id : 0}});
    }
    json status = {{"interface", config_.interface},
                   {"public_key", key_to_base64(wg_state_.public_key)},
                   {"registered", registered_},
                   {"reflexive", format_socket_address(reflexive_)},
                   {"wg_reflexive", wg_reflexive_ ? format_socket_address(*wg_reflexive_) : ""},
                   {"nat_class", to_string(nat_class_)},
                   {"rtt_ms", rtt_.us() / 1000.0},
                   {"peers", peers}};
    const std::string text = status.dump();
    return {text.begin(), text.end()};
}

void Agent::run(const std::atomic<bool>& stop) {
    if (auto keys = read_key_file(config_.key_file)) {
        keys_ = *keys;
    } else if (::access(config_.key_file.c_str(), F_OK) != 0) {
        auto created = write_new_key_file(config_.key_file);
        if (!created) throw std::runtime_error(created.error());
        keys_ = *created;
    } else {
        throw std::runtime_error(keys.error());
    }
    auto client = ControlClient::open(keys_, config_.control);
    if (!client) throw std::runtime_error(client.error());
    client_.emplace(std::move(*client));
    status_server_.emplace(config_.status_socket, 0660);
    if (auto watch = NetworkWatch::open())
        network_watch_.emplace(std::move(*watch));
    else
        log("relay-peer: not watching for network changes (%s); keepalives will show them",
            watch.error());
    auto state = wg_.read();
    if (!state) throw std::runtime_error(state.error());
    wg_state_ = *state;
    host_locals_ = local_addresses();  // (local_addresses() needs the listen port)
    // Know the WireGuard peers before the first message: a punch or relay offer for a
    // peer not in peers_ is dropped, and one can arrive right after registering.
    refresh_wireguard(unix_ms_now());
    next_wg_refresh_ms_ = unix_ms_now() + kWgRefreshMs;

    while (!stop.load()) {
        uint64_t now = unix_ms_now();
        if (!registered_ && now >= next_register_ms_) {
            if (!register_now(now)) next_register_ms_ = now + kRegisterRetryMs;
            now = unix_ms_now();
        }
        if (registered_ && now >= next_keepalive_ms_) send_keepalives(now);
        if (registered_ && now - last_reply_ms_ > 3ull * keepalive_interval_s_ * 1000 + 2000) {
            log("relay-peer: control silent; registering again");
            registered_ = false;
        }
        for (int budget = 64; budget > 0; --budget) {
            auto m = client_->poll(budget == 64 ? 20 : 0);
            if (!m) break;
            on_message(*m, unix_ms_now());
        }
        now = unix_ms_now();
        if (now >= next_wg_refresh_ms_) {
            refresh_wireguard(now);
            next_wg_refresh_ms_ = now + kWgRefreshMs;
        }
        watch_network(now);
        manage_probe_peer(now);
        check_filtering_probe(now);
        for (auto& [k, p] : peers_) drive_peer(p, now);
        status_server_->poll_once(0, [&](std::span<const uint8_t>) { return status_json(); });
    }
    if (registered_) client_->request(0, Deregister{}, 500);
    if (probe_peer_added_) wg_.remove_peer(key_to_base64(probe_keys_.public_key));
}

}  // namespace relay::peer
