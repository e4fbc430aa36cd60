// IPv4 → MAC cache per port, filled from ARP by the data plane's service
// thread (the only writer) and read by the workers without locks: every entry
// is a small seqlock, so a reader sees either a whole entry or a miss.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "relay/net.hpp"

namespace relay::dp {

class NeighbourTable {
  public:
    // capacity is rounded up to a power of two.
    explicit NeighbourTable(uint32_t capacity = 4096);

    // Worker side: true and `mac` filled when a live entry exists.
    // `expires` (optional) receives the entry's expiry.
    bool lookup(uint16_t port, Ipv4 ip, uint64_t now, MacAddr& mac,
                uint64_t* expires = nullptr) const;

    // Writer side (one thread).  Returns false when the table is full.
    bool update(uint16_t port, Ipv4 ip, const MacAddr& mac, uint64_t expires);
    // Removes entries that expired before `now`; returns how many.
    unsigned expire(uint64_t now);

    struct Entry {
        uint16_t port;
        Ipv4 ip;
        MacAddr mac;
        uint64_t expires;
    };
    std::vector<Entry> snapshot() const;  // writer side or tests

  private:
    struct Slot {
        std::atomic<uint32_t> seq{0};  // odd while being written
        std::atomic<uint32_t> ip{0};
        std::atomic<uint64_t> port_mac{0};  // port << 48 | mac
        std::atomic<uint64_t> expires{0};   // 0 = empty
    };
    static constexpr unsigned kProbe = 8;

    uint32_t home(uint16_t port, Ipv4 ip) const {
        uint32_t h = (ip ^ (uint32_t{port} << 24)) * 2654435761u;
        return h & mask_;
    }
    void write(Slot& s, uint16_t port, Ipv4 ip, const MacAddr& mac, uint64_t expires);

    uint32_t mask_;
    std::unique_ptr<Slot[]> slots_;
};

uint64_t pack_mac(const MacAddr& mac);
MacAddr unpack_mac(uint64_t bits);

}  // namespace relay::dp
