// Packets waiting for their next hop's MAC, kept by the service thread (what
// Linux calls a neighbour's "unresolved queue"): per (port, next-hop IPv4) a
// FIFO of at most `per_neighbour` packets, of which the oldest gives way to a
// newer one, and at most `total` packets across all neighbours, beyond which
// new ones are refused, so that a flood towards addresses nobody answers for
// cannot hold the packet pool.  Released in order when the neighbour is
// learnt, dropped once they have waited too long.
//
// No DPDK here: `Packet` is opaque (rte_mbuf* in relay-dataplane, anything in
// the tests) and what becomes of a packet that leaves is the caller's callback.
// Not for the hot path: it allocates (bounded by the two limits).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>

#include "relay/net.hpp"

namespace relay::dp {

template <typename Packet>
class HeldPackets {
  public:
    static constexpr size_t kDefaultPerNeighbour = 4;
    static constexpr size_t kDefaultTotal = 256;

    explicit HeldPackets(size_t per_neighbour = kDefaultPerNeighbour, size_t total = kDefaultTotal)
        : per_neighbour_(per_neighbour ? per_neighbour : 1), total_(total) {}

    // Holds `p` for (port, next_hop), received at `now`.  drop(packet) is
    // called for a packet that does not stay: the neighbour's oldest when its
    // queue is full, or `p` itself when every neighbour together holds `total`.
    // Returns whether `p` is held.
    template <typename Drop>
    bool hold(uint16_t port, Ipv4 next_hop, Packet p, uint64_t now, Drop&& drop) {
        const auto it = queues_.find(key(port, next_hop));
        if (it != queues_.end() && it->second.size() >= per_neighbour_) {
            drop(it->second.front().packet);  // the oldest gives way: the total stays
            it->second.pop_front();
            it->second.push_back({p, now});
            return true;
        }
        if (size_ >= total_) {
            drop(p);
            return false;
        }
        queues_[key(port, next_hop)].push_back({p, now});
        ++size_;
        return true;
    }

    // The neighbour is resolved: send(packet) for each packet held for it,
    // oldest first, and forgets them.  Returns how many.
    template <typename Send>
    size_t release(uint16_t port, Ipv4 next_hop, Send&& send) {
        const auto it = queues_.find(key(port, next_hop));
        if (it == queues_.end()) return 0;
        const size_t n = it->second.size();
        for (const Entry& e : it->second) send(e.packet);
        size_ -= n;
        queues_.erase(it);
        return n;
    }

    // drop(packet) for every packet held since `max_age` or longer at `now`.
    // Returns how many.
    template <typename Drop>
    size_t expire(uint64_t now, uint64_t max_age, Drop&& drop) {
        size_t n = 0;
        for (auto it = queues_.begin(); it != queues_.end();) {
            auto& q = it->second;
            while (!q.empty() && now >= q.front().since && now - q.front().since >= max_age) {
                drop(q.front().packet);
                q.pop_front();
                ++n;
            }
            it = q.empty() ? queues_.erase(it) : std::next(it);
        }
        size_ -= n;
        return n;
    }

    // drop(packet) for everything held (shutdown).  Returns how many.
    template <typename Drop>
    size_t clear(Drop&& drop) {
        size_t n = 0;
        for (auto& [k, q] : queues_)
            for (const Entry& e : q) {
                drop(e.packet);
                ++n;
            }
        queues_.clear();
        size_ = 0;
        return n;
    }

    // f(port, next_hop) for each neighbour something is held for.
    template <typename F>
    void for_each_neighbour(F&& f) const {
        for (const auto& [k, q] : queues_)
            f(static_cast<uint16_t>(k >> 32), static_cast<Ipv4>(k & 0xffffffffu));
    }

    size_t size() const { return size_; }
    size_t size(uint16_t port, Ipv4 next_hop) const {
        const auto it = queues_.find(key(port, next_hop));
        return it == queues_.end() ? 0 : it->second.size();
    }
    size_t neighbours() const { return queues_.size(); }
    bool empty() const { return size_ == 0; }

  private:
    struct Entry {
        Packet packet;
        uint64_t since;  // when it was held
    };
    static uint64_t key(uint16_t port, Ipv4 ip) { return uint64_t{port} << 32 | ip; }

    size_t per_neighbour_;
    size_t total_;
    size_t size_ = 0;
    std::map<uint64_t, std::deque<Entry>> queues_;  // only neighbours that hold something
};

}  // namespace relay::dp
