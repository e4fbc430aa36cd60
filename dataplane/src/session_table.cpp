#include "session_table.hpp"

#include <algorithm>
#include <stdexcept>

namespace relay::dp {

namespace {
// Messages that need a MAC check (handshakes, binds) per session and second.
// WireGuard sends at most one initiation per 5 s per peer; this leaves ample
// room for retries and roaming while bounding what a flood can cost.
constexpr uint64_t kHandshakesPerSecond = 50;
constexpr uint64_t kHandshakeBurst = 20;
}  // namespace

SessionTable::SessionTable(uint32_t capacity, std::vector<Ipv4> relay_addresses)
    : capacity_(capacity), addresses_(std::move(relay_addresses)) {
    if (capacity_ == 0 || capacity_ >= kNoSlot) throw std::invalid_argument("session capacity");
    if (addresses_.empty() || addresses_.size() > 256)
        throw std::invalid_argument("session table needs 1..256 relay addresses");
    const size_t index_size = addresses_.size() << 16;
    index_ = std::make_unique<uint32_t[]>(index_size);
    std::fill_n(index_.get(), index_size, kNoSlot);
    hot_ = std::make_unique<Session[]>(capacity_);
    cold_ = std::make_unique<SessionCold[]>(capacity_);
    free_.reserve(capacity_);
    for (uint32_t i = capacity_; i > 0; --i) free_.push_back(i - 1);
}

int SessionTable::address_index(Ipv4 ip) const {
    for (size_t i = 0; i < addresses_.size(); ++i)
        if (addresses_[i] == ip) return static_cast<int>(i);
    return -1;
}

uint32_t SessionTable::allocate_slot() {
    if (free_.empty()) return kNoSlot;
    uint32_t slot = free_.back();
    free_.pop_back();
    ++in_use_;
    return slot;
}

void SessionTable::free_slot(uint32_t slot) {
    free_.push_back(slot);
    --in_use_;
}

static void configure_limits(Session& s, const SessionLimits& l, uint64_t tsc_hz) {
    s.packet_limit.configure(l.packets_per_s, l.burst_packets, tsc_hz);
    s.byte_limit.configure(l.bytes_per_s, l.burst_bytes, tsc_hz);
    s.packet_tat = {};
    s.byte_tat = {};
    s.limited = !s.packet_limit.unlimited() || !s.byte_limit.unlimited();
}

bool SessionTable::install(uint32_t slot, const SessionSpec& spec, uint64_t now, uint64_t tsc_hz) {
    int addr = address_index(spec.relay_ip);
    if (addr < 0 || slot >= capacity_) return false;
    uint32_t& entry = index_[(static_cast<size_t>(addr) << 16) | spec.relay_port];
    if (entry != kNoSlot) return false;

    Session& s = hot_[slot];
    s = Session{};
    s.id = spec.id;
    s.relay_ip = spec.relay_ip;
    s.relay_port = spec.relay_port;
    s.addr_index = static_cast<uint8_t>(addr);
    s.policy = spec.policy;
    s.created = now;
    s.last_activity = now;
    s.idle_timeout = spec.idle_timeout_s * tsc_hz;
    s.handshakes.configure(kHandshakesPerSecond, kHandshakeBurst, tsc_hz);
    for (int i = 0; i < 2; ++i) {
        s.side[i].allowed = spec.sides[i].allowed_source;
        s.side[i].allowed_port = spec.sides[i].allowed_port;
    }
    configure_limits(s, spec.limits, tsc_hz);

    SessionCold& c = cold_[slot];
    c.spec = spec;
    for (int i = 0; i < 2; ++i) c.mac1_key[i] = crypto::mac1_key_for(spec.sides[i].public_key);
    entry = slot;
    return true;
}

void SessionTable::update(uint32_t slot, const SessionUpdate& u, uint64_t tsc_hz) {
    Session& s = hot_[slot];
    configure_limits(s, u.limits, tsc_hz);
    s.idle_timeout = u.idle_timeout_s * tsc_hz;
    for (int i = 0; i < 2; ++i) {
        s.side[i].allowed = u.allowed_source[i];
        s.side[i].allowed_port = u.allowed_port[i];
    }
    for (int i = 0; i < 2; ++i) {
        SideLatch& side = s.side[i];
        Endpoint& ep = s.ep[i];
        if (ep.latched && !side.expects({ep.ip, ep.port})) ep.latched = false;
        for (Candidate& c : side.cand)
            if (c.used() && !side.expects({c.ip, c.port})) c = Candidate{};
    }
    SessionCold& c = cold_[slot];
    c.spec.limits = u.limits;
    c.spec.idle_timeout_s = u.idle_timeout_s;
    for (int i = 0; i < 2; ++i) {
        c.spec.sides[i].allowed_source = u.allowed_source[i];
        c.spec.sides[i].allowed_port = u.allowed_port[i];
    }
}

void SessionTable::uninstall(uint32_t slot) {
    Session& s = hot_[slot];
    if (s.id == 0) return;
    uint32_t& entry = index_[(static_cast<size_t>(s.addr_index) << 16) | s.relay_port];
    if (entry == slot) entry = kNoSlot;
    s.id = 0;
}

uint32_t SessionTable::add(const SessionSpec& spec, uint64_t now, uint64_t tsc_hz) {
    uint32_t slot = allocate_slot();
    if (slot == kNoSlot) return kNoSlot;
    if (!install(slot, spec, now, tsc_hz)) {
        free_slot(slot);
        return kNoSlot;
    }
    return slot;
}

SessionStats SessionTable::stats(uint32_t slot, uint64_t now, uint64_t tsc_hz) const {
    const Session& s = hot_[slot];
    SessionStats out;
    out.spec = cold_[slot].spec;
    const uint64_t ms = tsc_hz / 1000 ? tsc_hz / 1000 : 1;
    out.idle_ms = now > s.last_activity ? (now - s.last_activity) / ms : 0;
    out.age_ms = now > s.created ? (now - s.created) / ms : 0;
    for (int i = 0; i < 2; ++i) {
        const Endpoint& ep = s.ep[i];
        const SideLatch& latch = s.side[i];
        SideStats& o = out.sides[i];
        o.latched = ep.latched;
        o.endpoint = {ep.ip, ep.port};
        // The most recent candidate.
        const Candidate* latest = nullptr;
        for (const Candidate& c : latch.cand)
            if (c.used() && (!latest || c.seen > latest->seen)) latest = &c;
        o.has_candidate = latest != nullptr;
        if (latest) o.candidate = {latest->ip, latest->port};
        o.rx_packets = s.rx_packets[i];
        o.rx_bytes = s.rx_bytes[i];
        // Whatever one side sent through the relay, the other received.
        o.tx_packets = s.rx_packets[1 - i];
        o.tx_bytes = s.rx_bytes[1 - i];
        o.dropped_packets = s.dropped[i];
        o.rate_limited_packets = s.rate_limited[i];
        o.latches = latch.latches;
        o.latch_refused = latch.latch_refused;
    }
    return out;
}

}  // namespace relay::dp
