// A fixed set of IPv4 addresses for the hot path: filled once at start,
// then read by any number of workers without locks.  Open addressing with
// linear probing over a power-of-two table kept at most a quarter full, so a
// lookup of an address that is not there (the common case: a peer's source)
// is one multiply, one load and one compare.  0.0.0.0 marks an empty slot and
// cannot be a member (it is a bad source anyway).
#pragma once

#include <cstdint>
#include <vector>

#include "relay/net.hpp"

namespace relay::dp {

class AddressSet {
  public:
    AddressSet() { rebuild({}); }
    explicit AddressSet(const std::vector<Ipv4>& members) { rebuild(members); }

    bool contains(Ipv4 ip) const {
        for (uint32_t i = slot_of(ip);; i = (i + 1) & mask_) {
            const Ipv4 v = slots_[i];
            if (v == ip) return ip != 0;
            if (v == 0) return false;
        }
    }
    size_t size() const { return size_; }

  private:
    void rebuild(const std::vector<Ipv4>& members) {
        uint32_t capacity = 8;
        while (capacity < 4 * members.size()) capacity <<= 1;
        slots_.assign(capacity, 0);
        mask_ = capacity - 1;
        shift_ = 32;
        for (uint32_t c = capacity; c > 1; c >>= 1) --shift_;
        size_ = 0;
        for (Ipv4 ip : members) {
            if (ip == 0 || contains(ip)) continue;
            uint32_t i = slot_of(ip);
            while (slots_[i] != 0) i = (i + 1) & mask_;
            slots_[i] = ip;
            ++size_;
        }
    }
    // Fibonacci hashing: the top bits of ip * 2^32/phi.
    uint32_t slot_of(Ipv4 ip) const { return (ip * 0x9e3779b1u) >> shift_; }

    std::vector<Ipv4> slots_;
    uint32_t mask_ = 0;
    uint32_t shift_ = 32;
    size_t size_ = 0;
};

}  // namespace relay::dp
