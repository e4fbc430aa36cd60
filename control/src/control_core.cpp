#include "control_core.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>

#include "relay/control/credentials.hpp"
#include "relay/wire/stun.hpp"
#include "relay/wire/wireguard.hpp"

namespace relay::control {

namespace {

// Nonces one registered agent's guard keeps (replay_guard.hpp): a well-behaved agent sends
// a few messages in a timestamp window; the rest is bounded by its request limit.
constexpr size_t kPeerReplayEntries = 256;
// Registrations' nonces kept per network: room for every peer it may hold registering
// four times within a window, at most this many.
constexpr size_t kMaxRegisterReplayEntries = 65536;
constexpr size_t kMaxPendingProbes = 1024;  // probe keys each WG initiation is checked against
// A WireGuard initiation to control costs one mac1 check per pending probe key: charged
// to the unauthenticated budget as one key agreement per this many keys (a mac1 check
// costs about 1/200 of a key agreement: relay-bench control).
constexpr size_t kProbeKeysPerToken = 256;
constexpr uint64_t kProbeLifetimeMs = 60'000;  // a probe key not observed by then is dropped
constexpr uint64_t kAttemptLifetimeMs = 120'000;
constexpr size_t kMaxAttempts = 1 << 16;    // attempts held in all; the oldest give way
constexpr size_t kMaxAttemptsPerPeer = 64;  // attempts one peer's connects hold; the same
constexpr uint64_t kGaugeIntervalMs = 1000;
constexpr uint64_t kUpdateRetryMs = 1000;  // session updates the data plane missed: retried
// Unknown senders whose shared key is kept after their envelope opened (recent_keys_).
constexpr size_t kRecentKeys = 1024;

bool is_zero(const PublicKey& k) {
    return std::all_of(k.begin(), k.end(), [](uint8_t b) { return b == 0; });
}

bool looks_like_wg_initiation(std::span<const uint8_t> d) {
    return d.size() == wire::wg::kInitiationLen && d[0] == wire::wg::kTypeInitiation && d[1] == 0 &&
           d[2] == 0 && d[3] == 0;
}

uint64_t unix_s(uint64_t wall_ms) {
    return wall_ms / 1000;
}

// Monotonic time since `then` (never negative, even for a `then` from another clock run).
uint64_t elapsed(uint64_t now_ms, uint64_t then_ms) {
    return now_ms > then_ms ? now_ms - then_ms : 0;
}

bool within_window(uint64_t timestamp_ms, uint64_t wall_ms, uint64_t window_ms) {
    const uint64_t skew = timestamp_ms > wall_ms ? timestamp_ms - wall_ms : wall_ms - timestamp_ms;
    return skew <= window_ms;
}

std::vector<std::string> network_names(const ControlConfig& cc) {
    std::vector<std::string> names;
    for (const NetworkConfig& n : cc.networks) names.push_back(n.name);
    return names;
}

bool maps_endpoint_independently(NatClass c) {
    return c == NatClass::open || c == NatClass::cone || c == NatClass::port_restricted;
}

}  // namespace

size_t KeyHash::operator()(const PublicKey& k) const {
    uint64_t h;
    std::memcpy(&h, k.data(), sizeof h);
    return static_cast<size_t>(h);
}

ControlCore::ControlCore(const Config& config, KeyPair server_keys, SessionProgrammer& dataplane,
                         ControlMetrics& metrics)
    : config_(config),
      cc_(config_.control),
      keys_(server_keys),
      dataplane_(dataplane),
      metrics_(metrics),
      authorizer_(config_.control.networks),
      unauthenticated_(config_.control.limits.unauthenticated_per_s_per_source),
      // A tenth of a second's worth at once (at least one): a burst of key agreements
      // holds the loop up briefly, not for a second's worth of them.
      unauthenticated_budget_(config_.control.limits.unauthenticated_per_s),
      registrations_(config_.control.limits.registrations_per_s_per_source),
      ports_(config_.control.relay.port_min, config_.control.relay.port_max),
      session_ids_(server_keys.secret_key, network_names(config_.control)),
      relay_address_(config_.control.relay.relay_address),
      peers_per_network_(config_.control.networks.size(), 0) {
    for (const NetworkConfig& n : cc_.networks)
        register_replay_.emplace_back(
            uint64_t{cc_.timestamp_window_s} * 1000,
            std::min<size_t>(size_t{4} * n.max_peers + 64, kMaxRegisterReplayEntries));
}

Peer ControlCore::new_peer(const PublicKey& agent, size_t network, const Clock& now) const {
    Peer p;
    p.agent_key = agent;
    p.network = network;
    p.registered_ms = now.monotonic_ms;
    p.replay = ReplayGuard(uint64_t{cc_.timestamp_window_s} * 1000, kPeerReplayEntries);
    p.requests =
        TokenBucket(cc_.limits.requests_per_s_per_peer, cc_.limits.requests_per_s_per_peer);
    p.connects =
        TokenBucket(cc_.limits.connects_per_s_per_peer, cc_.limits.connects_per_s_per_peer);
    return p;
}

// ---------------------------------------------------------------- datagrams

void ControlCore::handle(uint8_t port_index, SocketAddress from, std::span<const uint8_t> datagram,
                         const Clock& now, Outbox& out) {
    if (looks_like_envelope(datagram)) return handle_envelope(port_index, from, datagram, now, out);
    if (looks_like_wg_initiation(datagram)) return handle_wireguard(from, datagram, now);
    if (wire::stun::looks_like_stun(datagram))
        return handle_stun(port_index, from, datagram, now, out);
    reject("unknown_datagram");
}

bool ControlCore::allow_unauthenticated(Ipv4 source, UnauthenticatedBudget::Kind kind,
                                        const Clock& now, double cost) {
    if (!unauthenticated_.allow(source, now.monotonic_ms)) {
        reject("rate_limited");
        return false;
    }
    // One budget for all sources: a flood from many addresses, each within its own
    // limit, cannot make control spend more than this on senders it does not know; and
    // half of it is kept for sources not served lately, so that the flood cannot
    // crowd out an agent that registers during it (unauthenticated_budget.hpp).
    if (unauthenticated_budget_.take(source, kind, now.monotonic_ms, cost) ==
        UnauthenticatedBudget::Verdict::refused) {
        reject("unauthenticated_budget");
        return false;
    }
    return true;
}

void ControlCore::handle_stun(uint8_t port, SocketAddress from, std::span<const uint8_t> datagram,
                              const Clock& now, Outbox& out) {
    // STUN costs no cryptography (a parse and a reply no larger than the request): the
    // per-source limit only, so that it cannot spend the budget of key agreements.
    if (!unauthenticated_.allow(from.ip, now.monotonic_ms)) return reject("rate_limited");
    auto request = wire::stun::parse_binding_request(datagram);
    if (!request) return reject(wire::stun::to_string(request.error()));
    // No amplification: the request's size, except that a bare 20..28-byte request (coturn's
    // turnutils_stunclient sends one) may get the 32-byte minimal response (stun.hpp).
    auto response = wire::stun::make_binding_success(request->transaction, from,
                                                     wire::stun::response_size_limit(*request));
    if (!response) return reject("stun_too_small");
    metrics_.stun_answered.Increment();
    out.push_back({port, from, std::move(*response)});
}

void ControlCore::handle_wireguard(SocketAddress from, std::span<const uint8_t> datagram,
                                   const Clock& now) {
    if (pending_probes_.empty()) return reject("wireguard_unknown_probe");
    const double cost =
        static_cast<double>((pending_probes_.size() + kProbeKeysPerToken - 1) / kProbeKeysPerToken);
    if (!allow_unauthenticated(from.ip, UnauthenticatedBudget::Kind::probe_check, now, cost))
        return;
    // The agent pointed a throw-away WireGuard peer (its probe key) at us: the initiation's
    // mac1 is keyed with that key, so a match names the agent whose WireGuard port this is.
    for (auto it = pending_probes_.begin(); it != pending_probes_.end(); ++it) {
        if (!mac1_.verify(it->second.mac1_key, datagram, wire::wg::kInitiationMac1)) continue;
        auto peer = peers_.find(it->second.agent);
        pending_probes_.erase(it);
        if (peer == peers_.end()) return reject("wireguard_unknown_probe");
        peer->second.wg_reflexive = from;
        metrics_.wg_observations.Increment();
        refresh_sessions(peer->second);
        return;
    }
    reject("wireguard_unknown_probe");
}

void ControlCore::handle_envelope(uint8_t port, SocketAddress from,
                                  std::span<const uint8_t> datagram, const Clock& now,
                                  Outbox& out) {
    auto header = peek_request(datagram);
    if (!header) return reject(to_string(header.error()));

    if (auto peer_it = peers_.find(header->sender); peer_it != peers_.end()) {
        // A registered agent's key is cached: its messages cost no key agreement, and no
        // budget an unknown sender can spend stands in their way.
        return open_envelope(port, from, datagram, *header, &peer_it->second,
                             peer_it->second.shared, false, now, out);
    }
    if (auto recent = recent_keys_.find(header->sender); recent != recent_keys_.end()) {
        // Proved its key a moment ago (most often: told not_registered, now registering).
        // Once: each key agreement buys at most one more message, so the flood's cheap
        // replies are bounded by the budget too.
        if (!unauthenticated_.allow(from.ip, now.monotonic_ms)) return reject("rate_limited");
        const SharedKey key = recent->second;
        recent_keys_.erase(recent);  // its entry in recent_order_ goes when it comes round
        return open_envelope(port, from, datagram, *header, nullptr, key, false, now, out);
    }
    // An unknown sender costs a key agreement (X25519): its source's limit and the
    // global budget first.
    if (!allow_unauthenticated(from.ip, UnauthenticatedBudget::Kind::key_agreement, now, 1.0))
        return;
    if (max_key_agreements_ > 0) {
        // Deferred: the crypto thread computes it; the loop goes on with other datagrams.
        // Bounded, so that a stalled crypto thread cannot make control hold memory.
        if (key_agreements_in_flight_ >= max_key_agreements_)
            return reject("key_agreement_queue_full");
        ++key_agreements_in_flight_;
        metrics_.key_agreements.Increment();
        key_agreement_requests_.push_back(
            {header->sender, port, from, std::vector<uint8_t>(datagram.begin(), datagram.end())});
        return;
    }
    metrics_.key_agreements.Increment();
    auto computed = shared_key(header->sender, keys_.secret_key);
    if (!computed) return reject("bad_key");
    open_envelope(port, from, datagram, *header, nullptr, *computed, true, now, out);
}

KeyAgreementResult agree(KeyAgreementRequest request, const SecretKey& ours) {
    KeyAgreementResult result;
    result.key = shared_key(request.sender, ours);
    result.request = std::move(request);
    return result;
}

void ControlCore::take_key_agreements(std::vector<KeyAgreementRequest>& requests) {
    for (KeyAgreementRequest& r : key_agreement_requests_) requests.push_back(std::move(r));
    key_agreement_requests_.clear();
}

void ControlCore::complete_key_agreement(KeyAgreementResult result, const Clock& now, Outbox& out) {
    if (key_agreements_in_flight_ > 0) --key_agreements_in_flight_;
    const KeyAgreementRequest& r = result.request;
    if (!result.key) return reject("bad_key");
    auto header = peek_request(r.datagram);
    if (!header || header->sender != r.sender) return reject("bad_key");  // not what was asked
    // Looked up again: an earlier message of this sender (a copy of this one, say) may
    // have registered it while this one waited; then this is a registered agent's
    // message, and its replay guard judges it.
    auto peer_it = peers_.find(header->sender);
    if (peer_it != peers_.end())
        return open_envelope(r.port_index, r.from, r.datagram, *header, &peer_it->second,
                             peer_it->second.shared, false, now, out);
    open_envelope(r.port_index, r.from, r.datagram, *header, nullptr, *result.key, true, now, out);
}

void ControlCore::open_envelope(uint8_t port, SocketAddress from, std::span<const uint8_t> datagram,
                                const RequestHeader& header, Peer* peer, SharedKey key, bool agreed,
                                const Clock& now, Outbox& out) {
    const bool known = peer != nullptr;
    auto plaintext = open_request(datagram, key);
    if (!plaintext) return reject(to_string(plaintext.error()));
    if (agreed && recent_keys_.emplace(header.sender, key).second) {
        recent_order_.push_back(header.sender);
        if (recent_order_.size() > kRecentKeys) {
            recent_keys_.erase(recent_order_.front());
            recent_order_.pop_front();
        }
    }

    // From here on the sender proved its key: it may get (size-capped) error replies.
    // Replay state is kept only for senders control knows (each registered agent has its
    // own guard; a register's nonce is kept by its network once admitted: on_register),
    // so a sender with a self-made key stores nothing, and cannot fill anyone's guard.
    const uint64_t window_ms = uint64_t{cc_.timestamp_window_s} * 1000;
    auto message = decode(*plaintext);
    if (!message) {
        // A registered agent's nonce is spent like any other's, so that a copy of it gets
        // no second reply: checked against the header's timestamp when the header is
        // whole, else now.
        const uint64_t ts = peek_timestamp(*plaintext).value_or(now.wall_ms);
        if (known) {
            const auto verdict = peer->replay.check(header.nonce, ts, now.wall_ms);
            if (verdict != ReplayGuard::Verdict::fresh) return reject(to_string(verdict));
        } else if (!within_window(ts, now.wall_ms, window_ms)) {
            return reject("stale_timestamp");
        }
        // Counted once, as the Error reply's code (reply() counts every Error it sends).
        return reply(port, from, key, 0, Error{ErrorCode::malformed, to_string(message.error())},
                     now, datagram.size(), out);
    }
    if (known) {
        const auto verdict = peer->replay.check(header.nonce, message->timestamp_ms, now.wall_ms);
        if (verdict != ReplayGuard::Verdict::fresh) return reject(to_string(verdict));
        // After the replay check: a copy of its messages costs the agent nothing.
        if (!peer->requests.take(now.monotonic_ms)) {
            reject("peer_rate_limited");
            return reply(port, from, key, message->request_id,
                         Error{ErrorCode::rate_limited, "too many requests"}, now, datagram.size(),
                         out);
        }
    } else if (!within_window(message->timestamp_ms, now.wall_ms, window_ms)) {
        return reject("stale_timestamp");
    }

    const MessageType type = type_of(message->body);
    const uint32_t id = message->request_id;
    if (const auto* m = std::get_if<RegisterPeer>(&message->body)) {
        metrics_.message(to_string(type));
        Reply r = on_register(header.sender, key, *m, header.nonce, message->timestamp_ms, port,
                              from, now, out);
        if (!r) return;  // a copy of a registration: no second reply
        return reply(port, from, key, id, *r, now, datagram.size(), out);
    }
    if (!known) {
        // Counted once, by reply() (as for malformed above).
        return reply(port, from, key, id, Error{ErrorCode::not_registered, "register first"}, now,
                     datagram.size(), out);
    }
    Peer& agent = *peer;
    agent.last_seen_ms = now.monotonic_ms;
    uint8_t reply_port = port;
    Body r;
    if (const auto* m = std::get_if<Keepalive>(&message->body)) {
        r = on_keepalive(agent, *m, port, from, reply_port);
        reclassify(agent, now, out);
        refresh_sessions(agent);
        // The Status reports the class including what this keepalive just showed (else the
        // agent would learn it only a keepalive interval later).
        std::get<Status>(r).nat_class = agent.nat_class;
    } else if (const auto* m = std::get_if<Connect>(&message->body)) {
        if (agent.connects.take(now.monotonic_ms)) {
            r = on_connect(agent, *m, now, out);
        } else {
            reject("peer_connects_limited");
            r = Error{ErrorCode::rate_limited, "too many connects"};
        }
    } else if (const auto* m = std::get_if<ResultReport>(&message->body)) {
        r = on_result(agent, *m, now, out);
    } else if (const auto* m = std::get_if<Release>(&message->body)) {
        r = on_release(agent, *m);
    } else if (std::holds_alternative<Deregister>(message->body)) {
        r = on_deregister(agent);  // `agent` is gone after this
    } else {
        reject("unexpected_type");
        return;
    }
    metrics_.message(to_string(type));
    reply(reply_port, from, key, id, r, now, SIZE_MAX, out);
}

void ControlCore::reply(uint8_t port, SocketAddress to, const SharedKey& key, uint32_t request_id,
                        const Body& body, const Clock& now, size_t max_len, Outbox& out) {
    Message m{now.wall_ms, request_id, body};
    // Error texts are cut so that a reply to a peer not yet registered is never larger
    // than its request.
    if (auto* e = std::get_if<Error>(&m.body)) {
        const size_t fixed = kReplyOverhead + kPlainHeaderLen + 3;
        const size_t room = max_len > fixed ? max_len - fixed : 0;
        if (e->text.size() > room) e->text.resize(room);
        if (e->text.size() > kMaxErrorText) e->text.resize(kMaxErrorText);
        metrics_.rejected(to_string(e->code));
    }
    auto sealed = seal_reply(key, encode(m));
    if (sealed.size() > max_len) return;  // cannot happen for our replies; never amplify
    out.push_back({port, to, std::move(sealed)});
}

void ControlCore::notify(const Peer& p, const Body& body, const Clock& now, Outbox& out) {
    out.push_back(
        {p.notify_port, p.notify_to, seal_reply(p.shared, encode(Message{now.wall_ms, 0, body}))});
}

// ---------------------------------------------------------------- requests

ControlCore::Reply ControlCore::on_register(const PublicKey& agent, const SharedKey& shared,
                                            const RegisterPeer& m, const Nonce& nonce,
                                            uint64_t timestamp_ms, uint8_t port, SocketAddress from,
                                            const Clock& now, Outbox& out) {
    auto refuse = [&](ErrorCode code, std::string text) -> Body {
        metrics_.registration(to_string(code));
        return Error{code, std::move(text)};
    };
    // A registered agent registering again (roaming) is limited as that agent (its
    // request limit, handle_envelope); a new one by its source.
    auto existing = peers_.find(agent);
    if (existing == peers_.end() && !registrations_.allow(from.ip, now.monotonic_ms))
        return refuse(ErrorCode::rate_limited, "slow down");
    auto network = authorizer_.authorize(m.token, agent, unix_s(now.wall_ms));
    if (!network) return refuse(network.error(), to_string(network.error()));
    const size_t net = *network;
    // Admitted: from here on its nonce is kept (by the network: the agent may not be
    // registered yet, or be forgotten while a copy is still inside the window).
    if (const auto verdict = register_replay_[net].check(nonce, timestamp_ms, now.wall_ms);
        verdict != ReplayGuard::Verdict::fresh) {
        reject(to_string(verdict));
        return std::nullopt;
    }

    // A registration resets what control observed of the agent (and moves where its
    // sessions expect it): an older one than the one in force is a late copy, refused
    // whatever its nonce (one that never arrived first is fresh to the nonce check).
    if (existing != peers_.end() && existing->second.network == net &&
        timestamp_ms < existing->second.register_timestamp_ms) {
        reject("older_registration");
        return std::nullopt;
    }

    // The WireGuard key names the peer to others in its network: one agent per key.
    if (Peer* holder = find_by_wg(net, m.wg_public_key); holder && holder->agent_key != agent)
        return refuse(ErrorCode::not_allowed, "wireguard key registered by another agent");

    // The agent's own replay guard goes with it to its new network (else copies of its
    // last messages would be fresh again).
    std::optional<ReplayGuard> carried;
    if (existing != peers_.end() && existing->second.network != net) {
        carried = existing->second.replay;
        forget_peer(agent, "network_changed");
        existing = peers_.end();
    }
    if (existing == peers_.end()) {
        if (peers_.size() >= cc_.limits.max_peers)
            return refuse(ErrorCode::peer_limit, "node full");
        if (peers_per_network_[net] >= cc_.networks[net].max_peers)
            return refuse(ErrorCode::peer_limit, "network full");
        Peer p = new_peer(agent, net, now);
        if (carried) p.replay = std::move(*carried);
        p.replay.check(nonce, timestamp_ms, now.wall_ms);  // this registration's own nonce
        existing = peers_.emplace(agent, std::move(p)).first;
        ++peers_per_network_[net];
    }
    Peer& p = existing->second;
    p.shared = shared;
    p.register_timestamp_ms = timestamp_ms;
    if (p.wg_key != m.wg_public_key) {
        // Its relay sessions latch on the old key (mac1): useless now.  Released while the
        // old key still finds this peer, so that no stale id stays in its session set (where
        // it would count against sessions_per_peer for good).
        for (uint64_t id : std::set<uint64_t>(p.sessions)) release(id, "wireguard_key_changed");
        by_wg_.erase({net, p.wg_key});
        p.wg_key = m.wg_public_key;
    }
    by_wg_[{net, p.wg_key}] = agent;
    // A new registration is a new network situation: what was observed before is void.
    p.observation = NatObservation{};
    p.wg_reflexive.reset();
    p.wg_listen_port = m.wg_listen_port;
    p.agent_port = m.agent_port;
    p.local_addresses = m.local_addresses;
    p.observation.seen_on_port[port] = from;
    p.observation.reflexive_is_local =
        std::any_of(m.local_addresses.begin(), m.local_addresses.end(),
                    [&](const SocketAddress& a) { return a.ip == from.ip; });
    if (port == 0)
        p.notify_to = from, p.notify_port = 0;
    else if (p.notify_to.ip == 0)
        p.notify_to = from, p.notify_port = port;
    p.last_seen_ms = now.monotonic_ms;
    p.probe_key = m.probe_key;
    if (!is_zero(m.probe_key)) {
        if (pending_probes_.size() >= kMaxPendingProbes) {
            // Full: the oldest registration's probe gives way.
            auto oldest = std::min_element(
                pending_probes_.begin(), pending_probes_.end(), [](const auto& a, const auto& b) {
                    return a.second.registered_ms < b.second.registered_ms;
                });
            pending_probes_.erase(oldest);
        }
        pending_probes_[m.probe_key] = {agent, now.monotonic_ms, crypto::mac1_key_for(m.probe_key)};
    }
    reclassify(p, now, out);
    // Its sessions expect it where this registration came from now (roaming).
    refresh_sessions(p);
    // After a control restart, the sessions read back become their peers' again as soon as
    // both are back (not only at the next tick), so a connect finds them.
    for (uint64_t id : std::vector<uint64_t>(adopted_ids_.begin(), adopted_ids_.end())) {
        auto a = allocations_.find(id);
        if (a != allocations_.end()) claim_adopted(id, a->second);
    }
    metrics_.registration("ok");
    return Registered{from, static_cast<uint16_t>(cc_.keepalive_interval_s),
                      static_cast<uint16_t>(cc_.peer_timeout_s)};
}

Body ControlCore::on_keepalive(Peer& p, const Keepalive& m, uint8_t port, SocketAddress from,
                               uint8_t& reply_port) {
    if (m.rtt_us) p.rtt_us = m.rtt_us;
    if (m.probe_done) {
        p.observation.filtering_probed = true;
        p.observation.other_port_reply_seen = m.probe_reply_seen;
    }
    if (m.reply_from_other_port) {
        // The filtering probe comes from a fresh socket: its source is not the agent's
        // mapping, so it is not recorded; the answer leaves from the other port.
        reply_port = port ^ 1;
    } else {
        // The agent's mapping moved (a new network, or its NAT changed or forgot it): the
        // WireGuard port's, observed through the same NAT, is stale too.  Punches fall
        // back to the public IP and listen port until the agent registers again (it
        // does on seeing its new address) and a new probe observes it.
        const auto& seen = p.observation.seen_on_port[port];
        if (seen && !(*seen == from)) p.wg_reflexive.reset();
        p.observation.seen_on_port[port] = from;
        if (port == 0 || p.notify_port == port) p.notify_to = from, p.notify_port = port;
    }
    return Status{from, p.nat_class, p.wg_reflexive.value_or(SocketAddress{}),
                  cc_.ports[reply_port]};
}

Peer* ControlCore::find_by_wg(size_t network, const PublicKey& wg) {
    auto it = by_wg_.find({network, wg});
    if (it == by_wg_.end()) return nullptr;
    auto p = peers_.find(it->second);
    return p == peers_.end() ? nullptr : &p->second;
}

void ControlCore::reclassify(Peer& p, const Clock& now, Outbox& out) {
    const NatClass before = p.nat_class;
    p.nat_class = classify(p.observation);
    if (p.nat_class == before || p.nat_class == NatClass::unknown) return;
    // A punch decided while a class was unknown that the known classes say cannot work
    // (a symmetric NAT facing a port-restricted or symmetric one): relay at once, not
    // after the punch deadline.
    for (auto it = guessed_attempts_.begin(); it != guessed_attempts_.end();) {
        auto a = attempts_.find(*it);
        if (a == attempts_.end() || a->second.finished || a->second.relayed) {
            it = guessed_attempts_.erase(it);
            continue;
        }
        Attempt& at = a->second;
        Peer* x = find_by_wg(at.network, at.wg[0]);
        Peer* y = find_by_wg(at.network, at.wg[1]);
        if (at.network != p.network || (x != &p && y != &p)) {
            ++it;
            continue;
        }
        if (x && y && (x->nat_class == NatClass::unknown || y->nat_class == NatClass::unknown)) {
            ++it;  // the other one is still unknown: its classification decides
            continue;
        }
        it = guessed_attempts_.erase(it);
        // If the allocation is refused, the punch's direct_failed asks again.
        if (x && y && !can_punch(x->nat_class, y->nat_class)) offer_relay(at, *x, *y, out, now);
    }
    // Promotion (BRIEF §5): a relayed pair of this peer that can now punch tries at once.
    for (uint64_t id : std::vector<uint64_t>(p.sessions.begin(), p.sessions.end())) {
        auto a = allocations_.find(id);
        if (a == allocations_.end() || a->second.adopted) continue;
        Peer* x = find_by_wg(a->second.network, a->second.spec.sides[0].public_key);
        Peer* y = find_by_wg(a->second.network, a->second.spec.sides[1].public_key);
        if (!x || !y) continue;
        a->second.last_trial_ms = 0;
        maybe_promote(a->second, *x, *y, now, out);
    }
}

bool ControlCore::claim_adopted(uint64_t id, Allocation& alloc) {
    // Both keys registered again in the network that allocated it (its id names it:
    // session_ids.hpp): the session is theirs again.  Another network's peers with the
    // same keys never match.
    if (alloc.network == kNoNetwork) return false;
    Peer* x = find_by_wg(alloc.network, alloc.spec.sides[0].public_key);
    Peer* y = find_by_wg(alloc.network, alloc.spec.sides[1].public_key);
    if (!x || !y) return false;
    alloc.adopted = false;
    adopted_ids_.erase(id);
    x->sessions.insert(id);
    y->sessions.insert(id);
    refresh_sessions(*x);
    refresh_sessions(*y);
    return true;
}

void ControlCore::maybe_promote(Allocation& alloc, Peer& x, Peer& y, const Clock& now,
                                Outbox& out) {
    const uint64_t trial_ms = uint64_t{cc_.promotion_interval_s} * 1000;
    if (alloc.last_trial_ms != 0 && elapsed(now.monotonic_ms, alloc.last_trial_ms) < trial_ms)
        return;
    if (!can_punch(x.nat_class, y.nat_class) || attempts_.size() >= kMaxAttempts) return;
    alloc.last_trial_ms = now.monotonic_ms;
    Attempt a;
    a.id = next_attempt_id_++;
    a.network = alloc.network;
    a.wg = {x.wg_key, y.wg_key};
    a.started_ms = now.monotonic_ms;
    a.promotion = true;
    Attempt& stored = attempts_.emplace(a.id, a).first->second;
    metrics_.connect("promotion_trial");
    start_punch(stored, x, y, out, now);
}

void ControlCore::make_room_for_attempt(Peer* p) {
    auto drop = [&](uint64_t id) {
        attempts_.erase(id);
        guessed_attempts_.erase(id);
        metrics_.rejected("attempt_evicted");
    };
    if (p) {
        // Ids of attempts that expired meanwhile are skipped; the oldest live one goes.
        while (!p->attempts.empty() && !attempts_.count(p->attempts.front()))
            p->attempts.pop_front();
        if (p->attempts.size() >= kMaxAttemptsPerPeer) {
            drop(p->attempts.front());
            p->attempts.pop_front();
        }
    }
    if (attempts_.size() >= kMaxAttempts) drop(attempts_.begin()->first);
}

Body ControlCore::on_connect(Peer& p, const Connect& m, const Clock& now, Outbox& out) {
    const auto t0 = std::chrono::steady_clock::now();
    Peer* other = find_by_wg(p.network, m.peer);
    // Another network's peer is reported exactly like a missing one: networks never learn
    // of each other.
    if (!other || other == &p) return Error{ErrorCode::unknown_peer, "no such peer"};
    // A peer holds at most kMaxAttemptsPerPeer attempts, so that no peer (nor a few) can
    // fill the node's table and refuse everyone else's connects.
    make_room_for_attempt(&p);

    Attempt attempt;
    attempt.id = next_attempt_id_++;
    attempt.network = p.network;
    attempt.wg = {p.wg_key, other->wg_key};
    attempt.started_ms = now.monotonic_ms;
    Attempt& a = attempts_.emplace(attempt.id, attempt).first->second;
    p.attempts.push_back(attempt.id);

    const bool existing_relay = allocation_of(p.network, p.wg_key, other->wg_key).has_value();
    const bool punch =
        !m.force_relay && !existing_relay && can_punch(p.nat_class, other->nat_class);
    metrics_.connect(punch ? "punch" : "relay");
    if (punch) {
        if (p.nat_class == NatClass::unknown || other->nat_class == NatClass::unknown)
            guessed_attempts_.insert(a.id);
        start_punch(a, p, *other, out, now);
    } else if (auto error = offer_relay(a, p, *other, out, now)) {
        attempts_.erase(attempt.id);
        p.attempts.pop_back();
        return *error;
    }
    metrics_.rendezvous_seconds.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return ConnectAck{attempt.id, !punch};
}

std::vector<Candidate> ControlCore::candidates_of(const Peer& p, const Peer& other) const {
    std::vector<Candidate> c;
    // Behind the same public address: the local addresses, which the NAT need not hairpin.
    const bool same_nat = p.notify_to.ip != 0 && p.notify_to.ip == other.notify_to.ip;
    if (same_nat) {
        for (const SocketAddress& local : p.local_addresses) {
            if (c.size() + 1 >= kMaxCandidates) break;
            c.push_back({{local.ip, p.wg_listen_port}, CandidateKind::local});
        }
    }
    // The WireGuard port's own reflexive address when observed; else the agent's public IP
    // with WireGuard's port (right for port-preserving NATs).
    const SocketAddress reflexive =
        p.wg_reflexive.value_or(SocketAddress{p.notify_to.ip, p.wg_listen_port});
    c.push_back({reflexive, CandidateKind::reflexive});
    return c;
}

void ControlCore::start_punch(Attempt& a, Peer& x, Peer& y, Outbox& out, const Clock& now) {
    const FireDelays d = fire_delays(x.rtt_us, y.rtt_us, cc_.punch_lead_ms);
    notify(x, Punch{a.id, y.wg_key, d.a_ms, cc_.punch_deadline_ms, candidates_of(y, x)}, now, out);
    notify(y, Punch{a.id, x.wg_key, d.b_ms, cc_.punch_deadline_ms, candidates_of(x, y)}, now, out);
}

void ControlCore::expect_sources(const Peer& p, SideSpec& side) const {
    // The public IP of its WireGuard port: observed by the probe, else that of the
    // agent's own socket (its latest request on its main socket; its registration's at
    // first), the same NAT's address.  The port only where the NAT maps
    // endpoint-independently (the data plane sees the mapping control saw), and only once
    // observed: WireGuard's port is another mapping than the agent's socket.
    const Ipv4 ip = p.wg_reflexive ? p.wg_reflexive->ip : p.notify_to.ip;
    side.allowed_source = ip != 0 ? Ipv4Prefix{ip, 32} : Ipv4Prefix{};
    // And only where the NAT kept WireGuard's own listen port: the class comes from the
    // agent's socket, and a NAT that maps endpoint-independently may still have given
    // WireGuard's socket a port of its own per destination after a clash (Linux's
    // masquerade does, once the host changed its LAN address while the old mapping lives);
    // a preserved port is the same towards every destination.
    side.allowed_port = cc_.relay.pin_source_port && p.wg_reflexive &&
                                maps_endpoint_independently(p.nat_class) &&
                                p.wg_reflexive->port == p.wg_listen_port
                            ? p.wg_reflexive->port
                            : 0;
}

bool ControlCore::push_update(uint64_t id, Allocation& alloc) {
    const SessionSpec& s = alloc.spec;
    SessionUpdate u;
    u.id = id;
    u.limits = s.limits;
    u.allowed_source = {s.sides[0].allowed_source, s.sides[1].allowed_source};
    u.allowed_port = {s.sides[0].allowed_port, s.sides[1].allowed_port};
    u.idle_timeout_s = s.idle_timeout_s;
    const auto error = dataplane_.update_session(u);
    alloc.update_pending = error.has_value();
    metrics_.session_update(!error               ? "ok"
                            : error->unavailable ? "dataplane_unavailable"
                                                 : ipc::to_string(error->status));
    return !error;
}

void ControlCore::refresh_sessions(const Peer& p) {
    for (const uint64_t id : p.sessions) {
        auto it = allocations_.find(id);
        if (it == allocations_.end() || it->second.adopted) continue;
        SessionSpec& s = it->second.spec;
        bool changed = false;
        for (SideSpec& side : s.sides) {
            if (side.public_key != p.wg_key) continue;
            SideSpec want = side;
            expect_sources(p, want);
            changed = changed || !(want == side);
            side = want;
        }
        // The spec holds what the data plane should have (reprogram() sends it after a
        // data-plane restart); if the update does not get through, tick() tries again.
        if (changed) push_update(id, it->second);
    }
}

std::optional<uint64_t> ControlCore::allocation_of(size_t network, const PublicKey& a,
                                                   const PublicKey& b) const {
    // Few sessions per peer: the sessions of the pair's two registered peers are scanned,
    // not every allocation (a pair's session is in both peers' sets: offer_relay, and
    // tick() when an adopted one is claimed).  A scan of all allocations cost ~17 µs per
    // thousand sessions on every connect (relay-bench control).  Lowest id first, as the
    // scan in id order found it.
    std::optional<uint64_t> found;
    for (const PublicKey* key : {&a, &b}) {
        const auto holder = by_wg_.find({network, *key});
        if (holder == by_wg_.end()) continue;
        const auto peer = peers_.find(holder->second);
        if (peer == peers_.end()) continue;
        for (const uint64_t id : peer->second.sessions) {
            const auto it = allocations_.find(id);
            if (it == allocations_.end() || it->second.network != network) continue;
            const auto& s = it->second.spec.sides;
            if (((s[0].public_key == a && s[1].public_key == b) ||
                 (s[0].public_key == b && s[1].public_key == a)) &&
                (!found || id < *found))
                found = id;
        }
    }
    return found;
}

std::optional<Error> ControlCore::offer_relay(Attempt& a, Peer& x, Peer& y, Outbox& out,
                                              const Clock& now) {
    auto id = allocation_of(x.network, x.wg_key, y.wg_key);
    if (!id) {
        if (draining_) return Error{ErrorCode::draining, "node is draining"};
        if (x.sessions.size() >= cc_.limits.sessions_per_peer ||
            y.sessions.size() >= cc_.limits.sessions_per_peer)
            return Error{ErrorCode::session_limit, "too many relay sessions"};
        if (relay_address_ == 0) return Error{ErrorCode::dataplane_unavailable, "no relay address"};
        auto port = ports_.take();
        if (!port) return Error{ErrorCode::no_relay_ports, "no relay port free"};
        Allocation alloc;
        SessionSpec& s = alloc.spec;
        // The id names the network (session_ids.hpp): after a control restart, only this
        // network's peers can claim the session.
        s.id =
            session_ids_.next(x.network, [&](uint64_t id) { return allocations_.count(id) > 0; });
        s.relay_ip = relay_address_;
        s.relay_port = *port;
        s.policy = LatchPolicy::wireguard;
        s.sides[0].public_key = x.wg_key;
        s.sides[1].public_key = y.wg_key;
        expect_sources(x, s.sides[0]);
        expect_sources(y, s.sides[1]);
        s.limits.packets_per_s = cc_.relay.packets_per_s;
        s.limits.bytes_per_s = cc_.relay.bytes_per_s;
        s.idle_timeout_s = cc_.relay.idle_timeout_s;
        alloc.network = x.network;
        alloc.created_ms = now.monotonic_ms;
        alloc.last_trial_ms = now.monotonic_ms;
        if (auto error = dataplane_.add_session(s)) {
            ports_.give_back(*port);
            return Error{
                error->unavailable ? ErrorCode::dataplane_unavailable : ErrorCode::internal,
                error->message};
        }
        id = s.id;
        allocations_.emplace(s.id, alloc);
        x.sessions.insert(s.id);
        y.sessions.insert(s.id);
        metrics_.relay_allocations.Increment();
        metrics_.relay_sessions.Set(static_cast<double>(allocations_.size()));
    }
    a.relayed = true;
    const SessionSpec& s = allocations_.at(*id).spec;
    for (Peer* p : {&x, &y}) {
        const uint8_t side = s.sides[0].public_key == p->wg_key ? 0 : 1;
        const Peer& other = p == &x ? y : x;
        notify(*p,
               RelayOffer{a.id,
                          s.id,
                          other.wg_key,
                          {s.relay_ip, s.relay_port},
                          s.policy,
                          side,
                          s.bind_secret,
                          s.idle_timeout_s},
               now, out);
    }
    return std::nullopt;
}

Body ControlCore::on_result(Peer& p, const ResultReport& m, const Clock& now, Outbox& out) {
    auto it = attempts_.find(m.attempt_id);
    if (it == attempts_.end() || it->second.network != p.network ||
        (it->second.wg[0] != p.wg_key && it->second.wg[1] != p.wg_key))
        return Error{ErrorCode::unknown_attempt, "no such attempt"};
    Attempt& a = it->second;
    const PublicKey& other_key = a.wg[0] == p.wg_key ? a.wg[1] : a.wg[0];
    metrics_.punch_outcome(to_string(m.outcome));
    const double since_connect =
        static_cast<double>(elapsed(now.monotonic_ms, a.started_ms)) / 1000.0;
    switch (m.outcome) {
        case Outcome::direct_ok:
            if (!a.finished) metrics_.connect_direct_seconds.Observe(since_connect);
            a.finished = true;
            // Direct works: the pair's relay session is no longer needed (promotion).
            if (auto id = allocation_of(p.network, p.wg_key, other_key)) release(*id, "direct");
            break;
        case Outcome::direct_failed: {
            if (a.promotion) break;  // the relay session stays; the peers go back to it
            Peer* other = find_by_wg(p.network, other_key);
            if (!other) return Error{ErrorCode::unknown_peer, "no such peer"};
            if (auto error = offer_relay(a, p, *other, out, now)) return *error;
            break;
        }
        case Outcome::relayed_ok:
            if (!a.finished) metrics_.connect_relayed_seconds.Observe(since_connect);
            a.finished = true;
            break;
        case Outcome::relay_failed:
            break;
    }
    return Ok{};
}

Body ControlCore::on_release(Peer& p, const Release& m) {
    if (!p.sessions.count(m.session_id)) return Error{ErrorCode::unknown_session, "not yours"};
    release(m.session_id, "peer_request");
    return Ok{};
}

Body ControlCore::on_deregister(Peer& p) {
    forget_peer(p.agent_key, "deregistered");
    return Ok{};
}

// ---------------------------------------------------------------- lifecycle

void ControlCore::release(uint64_t session_id, const char* reason) {
    auto it = allocations_.find(session_id);
    if (it == allocations_.end()) return;
    // A data plane that is down forgets sessions anyway (it reprograms from us).
    dataplane_.remove_session(session_id);
    adopted_ids_.erase(session_id);
    ports_.give_back(it->second.spec.relay_port);
    for (const SideSpec& side : it->second.spec.sides) {
        if (Peer* p = find_by_wg(it->second.network, side.public_key))
            p->sessions.erase(session_id);
    }
    allocations_.erase(it);
    metrics_.relay_release(reason);
    metrics_.relay_sessions.Set(static_cast<double>(allocations_.size()));
}

void ControlCore::forget_peer(const PublicKey& agent_key, const char* reason) {
    auto it = peers_.find(agent_key);
    if (it == peers_.end()) return;
    const std::set<uint64_t> sessions = it->second.sessions;
    for (uint64_t id : sessions) release(id, reason);
    by_wg_.erase({it->second.network, it->second.wg_key});
    if (!is_zero(it->second.probe_key)) pending_probes_.erase(it->second.probe_key);
    --peers_per_network_[it->second.network];
    peers_.erase(it);
}

void ControlCore::tick(const Clock& now, Outbox& out) {
    const uint64_t now_ms = now.monotonic_ms;  // every timeout: the wall clock may step
    const uint64_t timeout_ms = uint64_t{cc_.peer_timeout_s} * 1000;
    std::vector<PublicKey> silent;
    for (const auto& [key, p] : peers_)
        if (elapsed(now_ms, p.last_seen_ms) > timeout_ms) silent.push_back(key);
    for (const PublicKey& key : silent) forget_peer(key, "peer_timeout");

    for (auto it = pending_probes_.begin(); it != pending_probes_.end();)
        it = elapsed(now_ms, it->second.registered_ms) > kProbeLifetimeMs
                 ? pending_probes_.erase(it)
                 : std::next(it);
    for (auto it = attempts_.begin(); it != attempts_.end();)
        it = elapsed(now_ms, it->second.started_ms) > kAttemptLifetimeMs ? attempts_.erase(it)
                                                                         : std::next(it);
    // A guessed punch is past help once its deadline passed (its peers report by then).
    for (auto it = guessed_attempts_.begin(); it != guessed_attempts_.end();) {
        const auto a = attempts_.find(*it);
        const bool live = a != attempts_.end() &&
                          elapsed(now_ms, a->second.started_ms) <= 2ull * cc_.punch_deadline_ms;
        it = live ? std::next(it) : guessed_attempts_.erase(it);
    }

    std::vector<uint64_t> expired;
    for (auto& [id, alloc] : allocations_) {
        if (alloc.adopted) {
            if (!claim_adopted(id, alloc) && now_ms >= alloc.release_deadline_ms)
                expired.push_back(id);
            continue;
        }
        Peer* x = find_by_wg(alloc.network, alloc.spec.sides[0].public_key);
        Peer* y = find_by_wg(alloc.network, alloc.spec.sides[1].public_key);
        // Promotion trial: a relayed pair whose classes allow punching tries again.
        if (x && y) maybe_promote(alloc, *x, *y, now, out);
    }
    for (uint64_t id : expired) {
        const bool orphan = allocations_.at(id).network == kNoNetwork;
        release(id, orphan ? "unknown_network" : "peers_not_back");
    }

    // Expected sources the data plane missed (it was unreachable): once a second, until
    // the first that fails again.
    if (elapsed(now_ms, last_update_retry_ms_) >= kUpdateRetryMs) {
        last_update_retry_ms_ = now_ms;
        for (auto& [id, alloc] : allocations_)
            if (alloc.update_pending && !push_update(id, alloc)) break;
    }

    if (now_ms < last_gauge_ms_ || now_ms - last_gauge_ms_ >= kGaugeIntervalMs) {
        last_gauge_ms_ = now_ms;
        update_peer_gauges();
    }
}

void ControlCore::update_peer_gauges() {
    std::array<double, 5> by_class{};
    for (const auto& [key, p] : peers_) by_class[static_cast<size_t>(p.nat_class)] += 1;
    for (size_t c = 0; c < by_class.size(); ++c)
        metrics_.set_peers(to_string(static_cast<NatClass>(c)), by_class[c]);
}

void ControlCore::adopt(const std::vector<SessionStats>& live, uint64_t now_ms) {
    for (const SessionStats& s : live) {
        if (allocations_.count(s.spec.id)) continue;
        // A port outside today's range (the config changed) is tracked all the same.
        ports_.take_specific(s.spec.relay_port);
        Allocation alloc;
        alloc.spec = s.spec;
        alloc.adopted = true;
        alloc.created_ms = now_ms;
        alloc.last_trial_ms = now_ms;
        alloc.release_deadline_ms = now_ms + uint64_t{cc_.peer_timeout_s} * 1000;
        // The data plane stores no network: the id names it (session_ids.hpp).  Only that
        // network's peers can claim it (claim_adopted); an id that names no network
        // (another control's, a renamed network's) is released at the deadline.
        alloc.network = session_ids_.network_of(s.spec.id).value_or(kNoNetwork);
        allocations_.emplace(s.spec.id, alloc);
        adopted_ids_.insert(s.spec.id);
    }
    metrics_.relay_sessions.Set(static_cast<double>(allocations_.size()));
}

size_t ControlCore::reprogram() {
    size_t failed = 0;
    for (const auto& [id, alloc] : allocations_) {
        auto error = dataplane_.add_session(alloc.spec);
        if (error && !(error->status == ipc::Status::exists && !error->unavailable)) ++failed;
    }
    metrics_.dataplane_reprograms.Increment();
    return failed;
}

void ControlCore::reconcile(const std::vector<SessionStats>& live, uint64_t now_ms) {
    (void)now_ms;
    std::set<uint64_t> present;
    for (const SessionStats& s : live) present.insert(s.spec.id);
    std::vector<uint64_t> gone;
    for (const auto& [id, alloc] : allocations_)
        if (!present.count(id)) gone.push_back(id);
    for (uint64_t id : gone) release(id, "dataplane_expired");
    // And the other way: a session the data plane holds that control does not know (an
    // add whose answer was lost, a remove that did not get through) has nobody to
    // release it.  Removed by id; a failure is tried again at the next reconcile.
    for (const SessionStats& s : live) {
        if (allocations_.count(s.spec.id)) continue;
        if (!dataplane_.remove_session(s.spec.id)) metrics_.relay_release("orphan");
    }
}

void ControlCore::set_draining(bool on) {
    draining_ = on;
    metrics_.draining.Set(on ? 1 : 0);
}

}  // namespace relay::control
