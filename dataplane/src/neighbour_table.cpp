#include "neighbour_table.hpp"

#include <bit>
#include <cstring>

namespace relay::dp {

namespace {
constexpr uint64_t kTombstone = 1;
}

uint64_t pack_mac(const MacAddr& mac) {
    uint64_t v = 0;
    for (uint8_t b : mac.bytes) v = v << 8 | b;
    return v;
}

MacAddr unpack_mac(uint64_t bits) {
    MacAddr mac;
    const uint64_t be = __builtin_bswap64(bits << 16);  // the 6 MAC bytes first, in order
    std::memcpy(mac.bytes.data(), &be, 6);
    return mac;
}

NeighbourTable::NeighbourTable(uint32_t capacity) {
    uint32_t size = std::bit_ceil(capacity < 16 ? 16u : capacity);
    mask_ = size - 1;
    slots_ = std::make_unique<Slot[]>(size);
}

bool NeighbourTable::lookup(uint16_t port, Ipv4 ip, uint64_t now, MacAddr& mac,
                            uint64_t* expires) const {
    uint32_t i = home(port, ip);
    for (unsigned probe = 0; probe < kProbe; ++probe, i = (i + 1) & mask_) {
        const Slot& s = slots_[i];
        uint32_t seq1 = s.seq.load(std::memory_order_acquire);
        if (seq1 & 1) continue;  // being written: treat as a miss for this slot
        uint32_t sip = s.ip.load(std::memory_order_relaxed);
        uint64_t pm = s.port_mac.load(std::memory_order_relaxed);
        uint64_t exp = s.expires.load(std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (s.seq.load(std::memory_order_relaxed) != seq1) continue;
        if (exp == 0) return false;  // empty slot ends the probe sequence
        if (sip == ip && (pm >> 48) == port) {
            if (exp <= now) return false;
            mac = unpack_mac(pm & 0xffffffffffffull);
            if (expires) *expires = exp;
            return true;
        }
    }
    return false;
}

void NeighbourTable::write(Slot& s, uint16_t port, Ipv4 ip, const MacAddr& mac, uint64_t expires) {
    uint32_t seq = s.seq.load(std::memory_order_relaxed);
    s.seq.store(seq + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    s.ip.store(ip, std::memory_order_relaxed);
    s.port_mac.store(uint64_t{port} << 48 | pack_mac(mac), std::memory_order_relaxed);
    s.expires.store(expires, std::memory_order_relaxed);
    s.seq.store(seq + 2, std::memory_order_release);
}

bool NeighbourTable::update(uint16_t port, Ipv4 ip, const MacAddr& mac, uint64_t expires) {
    uint32_t i = home(port, ip);
    Slot* empty = nullptr;
    for (unsigned probe = 0; probe < kProbe; ++probe, i = (i + 1) & mask_) {
        Slot& s = slots_[i];
        uint64_t exp = s.expires.load(std::memory_order_relaxed);
        if (exp == 0) {
            if (!empty) empty = &s;
            break;
        }
        if (exp == kTombstone && !empty) empty = &s;  // reusable, but the key may follow
        if (s.ip.load(std::memory_order_relaxed) == ip &&
            (s.port_mac.load(std::memory_order_relaxed) >> 48) == port) {
            write(s, port, ip, mac, expires);
            return true;
        }
    }
    if (!empty) return false;
    write(*empty, port, ip, mac, expires);
    return true;
}

unsigned NeighbourTable::expire(uint64_t now) {
    // Expired entries become tombstones (expires = 1, never 0) so that probe
    // chains through them stay intact; update() reuses them.
    unsigned n = 0;
    for (uint32_t i = 0; i <= mask_; ++i) {
        Slot& s = slots_[i];
        uint64_t exp = s.expires.load(std::memory_order_relaxed);
        if (exp > kTombstone && exp <= now) {
            write(s, static_cast<uint16_t>(s.port_mac.load(std::memory_order_relaxed) >> 48),
                  s.ip.load(std::memory_order_relaxed),
                  unpack_mac(s.port_mac.load(std::memory_order_relaxed)), kTombstone);
            ++n;
        }
    }
    return n;
}

std::vector<NeighbourTable::Entry> NeighbourTable::snapshot() const {
    std::vector<Entry> out;
    for (uint32_t i = 0; i <= mask_; ++i) {
        const Slot& s = slots_[i];
        uint64_t exp = s.expires.load(std::memory_order_relaxed);
        if (exp <= kTombstone) continue;
        uint64_t pm = s.port_mac.load(std::memory_order_relaxed);
        out.push_back({static_cast<uint16_t>(pm >> 48), s.ip.load(std::memory_order_relaxed),
                       unpack_mac(pm & 0xffffffffffffull), exp});
    }
    return out;
}

}  // namespace relay::dp
