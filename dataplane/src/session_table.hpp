// Relay sessions, indexed by (relay address, relay port) in O(1) with no
// allocation after construction.
//
// Ownership: a session's mutable state (latch, buckets, counters) is written
// only by the worker that owns its relay port (see Sharding).  Slot numbers
// are handed out by one thread (the IPC thread in relay-dataplane, the test or
// benchmark otherwise) through allocate_slot/free_slot, which touch nothing a
// worker reads.  The index arrays are written by the owning worker only.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "rate_limiter.hpp"
#include "relay/crypto/mac1.hpp"
#include "relay/net.hpp"
#include "relay/session.hpp"

namespace relay::dp {

constexpr uint32_t kNoSlot = 0xffffffffu;

// WireGuard candidates per side, and how long one whose initiation was
// forwarded holds its slot against other sources (WireGuard's REKEY_TIMEOUT:
// the initiator tries again with a new initiation after that).
constexpr uint32_t kCandidatesPerSide = 3;
constexpr uint64_t kCandidateHoldMs = 5000;

// A side's confirmed (latched) endpoint: the only address data is accepted
// from and sent to.
struct Endpoint {
    Ipv4 ip = 0;
    uint16_t port = 0;
    bool latched = false;
    bool on_link = false;  // reached directly, not through the gateway
};

// A WireGuard candidate: the source of a verified initiation, pending
// confirmation by the other side's response to it.
struct Candidate {
    uint64_t seen = 0;  // TSC of its (latest) initiation, forwarded or not
    Ipv4 ip = 0;        // 0 = free slot
    uint16_t port = 0;
    // Where its initiation was forwarded: only an answer from there can
    // confirm it (a replayed response from elsewhere cannot).
    uint16_t forwarded_port = 0;
    Ipv4 forwarded_ip = 0;
    uint32_t sender_index = 0;
    bool forwarded = false;

    bool used() const { return ip != 0; }
    bool at(SocketAddress a) const { return ip == a.ip && port == a.port; }
};

// Latch bookkeeping of one side: read and written on handshakes and binds only.
struct SideLatch {
    std::array<Candidate, kCandidatesPerSide> cand{};
    // Where control expects this side to send from (its registration): the
    // prefix (len 0 = any) and the port (0 = any).  Handshakes and binds for
    // this side from elsewhere are dropped before any MAC is computed.
    Ipv4Prefix allowed{};
    uint16_t allowed_port = 0;
    // The initiation that established the current latch (wireguard): a
    // replay of it is refused as a candidate.
    bool has_confirmed_index = false;
    uint32_t confirmed_index = 0;
    uint64_t bind_counter = 0;  // last accepted bind counter (bind policy)
    uint64_t latches = 0;
    uint64_t latch_refused = 0;

    bool expects(SocketAddress a) const {
        return allowed.contains(a.ip) && (allowed_port == 0 || allowed_port == a.port);
    }
};

// Laid out by cache line, in the order a data packet needs them: line 0 is
// all that forwarding reads, line 1 the counters it writes, line 2 the rate
// limits (touched only when the session has any); latching state comes last.
struct alignas(64) Session {
    // --- line 0 ---
    uint64_t id = 0;             // 0 = free slot
    uint64_t last_activity = 0;  // TSC
    uint64_t idle_timeout = 0;   // TSC cycles
    Ipv4 relay_ip = 0;
    uint16_t relay_port = 0;
    uint8_t addr_index = 0;
    LatchPolicy policy = LatchPolicy::wireguard;
    std::array<Endpoint, 2> ep{};
    bool limited = false;  // any packet or byte limit configured
    // --- line 1: per direction "from side i"; side i's tx is the other side's rx ---
    alignas(64) std::array<uint64_t, 2> rx_packets{};
    std::array<uint64_t, 2> rx_bytes{};
    std::array<uint64_t, 2> dropped{};
    std::array<uint64_t, 2> rate_limited{};
    // --- line 2: rate limits (one limit, a bucket per direction) ---
    alignas(64) GcraLimit packet_limit;
    GcraLimit byte_limit;
    std::array<uint64_t, 2> packet_tat{};
    std::array<uint64_t, 2> byte_tat{};
    // --- handshakes and binds (never read by data forwarding) ---
    alignas(64) Gcra handshakes;  // budget for messages whose MAC verified
    uint64_t created = 0;         // TSC
    std::array<SideLatch, 2> side{};
};

// Read rarely: kept apart so the hot array stays small.
struct SessionCold {
    SessionSpec spec;
    std::array<crypto::Mac1Key, 2> mac1_key;  // mac1 key of messages *to* side i
};

class SessionTable {
  public:
    // `relay_addresses`: the data plane's addresses; addr_index is a position in it.
    SessionTable(uint32_t capacity, std::vector<Ipv4> relay_addresses);

    uint32_t capacity() const { return capacity_; }
    const std::vector<Ipv4>& relay_addresses() const { return addresses_; }
    // Position of `ip` in relay_addresses, or -1.
    int address_index(Ipv4 ip) const;

    // --- slot allocation (one thread) ---
    uint32_t allocate_slot();  // kNoSlot when full
    void free_slot(uint32_t slot);
    uint32_t slots_in_use() const { return in_use_; }

    // --- owner worker ---
    // The caller has validated the spec (addresses, ports, ids) and reserved
    // `slot`; installs it and its index entry.  Returns false when the
    // (address, port) is already taken.
    bool install(uint32_t slot, const SessionSpec& spec, uint64_t now, uint64_t tsc_hz);
    // Applies `u`.  A side whose expected source moved away from its latched
    // endpoint is unlatched (data stops until it latches again from inside),
    // and candidates outside the new expectation are forgotten.
    void update(uint32_t slot, const SessionUpdate& u, uint64_t tsc_hz);
    void uninstall(uint32_t slot);

    uint32_t find_slot(uint8_t addr_index, uint16_t port) const {
        return index_[(static_cast<size_t>(addr_index) << 16) | port];
    }
    const uint32_t* index_entry(uint8_t addr_index, uint16_t port) const {
        return &index_[(static_cast<size_t>(addr_index) << 16) | port];
    }
    Session& at(uint32_t slot) { return hot_[slot]; }
    const Session& at(uint32_t slot) const { return hot_[slot]; }
    SessionCold& cold(uint32_t slot) { return cold_[slot]; }
    const SessionCold& cold(uint32_t slot) const { return cold_[slot]; }

    // Snapshot for reporting (owner worker, or any thread when workers are stopped).
    SessionStats stats(uint32_t slot, uint64_t now, uint64_t tsc_hz) const;

    // Convenience for single-threaded users (tests, benchmark): allocate + install.
    // Returns the slot or kNoSlot.
    uint32_t add(const SessionSpec& spec, uint64_t now, uint64_t tsc_hz);

  private:
    uint32_t capacity_;
    std::vector<Ipv4> addresses_;
    std::unique_ptr<uint32_t[]> index_;  // addresses × 65536 → slot
    std::unique_ptr<Session[]> hot_;
    std::unique_ptr<SessionCold[]> cold_;
    std::vector<uint32_t> free_;  // stack of free slots
    uint32_t in_use_ = 0;
};

}  // namespace relay::dp
