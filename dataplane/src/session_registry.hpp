// The IPC thread's book of sessions: id -> slot, which (relay address, port)
// each holds, and the commands in flight to the workers.  It never waits: it
// posts commands and, in settle(), folds in what the workers did, whenever
// they did it.  A worker that answers late therefore changes nothing about
// the outcome, only about when it is known.
//
// Slot rule: a slot goes back to the free list only when the worker no longer
// holds a session in it (uninstall done, expiry notice, or install failed)
// AND no command naming it is in flight (not even a snapshot): a late command
// can never touch a slot that was handed out again.  So whatever the timing,
// every slot is either free, held by exactly one entry, or retired and waiting
// for its last command; none is lost.
//
// Only the IPC thread uses it (and SessionTable's allocator through it).
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "session_command.hpp"
#include "session_table.hpp"

namespace relay::dp {

class SessionRegistry {
  public:
    enum class Phase : uint8_t {
        installing,  // install posted, not done yet
        live,        // installed (updates may be in flight)
        removing,    // uninstall posted; the entry goes when the worker did it
    };
    struct Entry {
        SessionSpec spec;  // as control last set it (add, then updates)
        uint32_t slot = kNoSlot;
        uint8_t worker = 0;
        Phase phase = Phase::installing;
        bool resident = false;  // the worker holds it in `slot`, as far as we know
        bool expired = false;   // the worker said it expired it: never resident again
        uint16_t pending = 0;   // install/update/uninstall commands in flight
    };
    enum class Posted { ok, table_full, queue_full };

    // `shard_map`: relay port -> owning worker (65536 entries).
    SessionRegistry(SessionTable& table, const uint8_t* shard_map, CommandRings& rings);

    // `spec` with the values of `u` (what an update leaves behind).
    static SessionSpec with_update(SessionSpec spec, const SessionUpdate& u);

    const Entry* find(uint64_t id) const;
    // The id whose session uses (relay_ip, relay_port), or 0.
    uint64_t holder_of(Ipv4 relay_ip, uint16_t relay_port) const;
    const std::map<uint64_t, Entry>& entries() const { return entries_; }

    // The caller checked that the id and the endpoint are free.  Reserves a
    // slot and posts the install; on failure nothing changed.
    Posted install(const SessionSpec& spec);
    // Posts an update of an entry that is not being removed, and records it
    // in the entry's spec.
    Posted update(const SessionUpdate& u);
    // Posts the uninstall of an entry that is not being removed yet.
    Posted uninstall(uint64_t id);
    // Posts a snapshot of `slots` (all owned by `worker`); null when the ring is full.
    SessionCommandRef snapshot(uint8_t worker, std::vector<uint32_t> slots);

    // Folds in the expiry notices and the commands the workers finished.
    void settle();

    size_t size() const { return entries_.size(); }
    size_t commands_in_flight() const { return in_flight_.size(); }
    // Slots of removed sessions still named by a command in flight.
    size_t retired_slots() const { return retired_.size(); }

  private:
    struct InFlight {
        SessionCommandRef command;
        uint64_t id;  // the entry it changes; 0 for a snapshot
    };

    uint8_t owner_of(uint16_t relay_port) const { return shard_map_[relay_port]; }
    bool post(uint8_t worker, SessionCommandRef command, uint64_t id);
    void pin(const SessionCommand& c, int delta);
    void on_expired(const ExpiredSession& e);
    void on_finished(const InFlight& f);
    // Removes the entry if the worker holds nothing for it and nothing is in flight.
    void maybe_finish(uint64_t id);
    void release_slot(uint32_t slot);

    SessionTable& table_;
    const uint8_t* shard_map_;
    CommandRings& rings_;
    std::map<uint64_t, Entry> entries_;                      // by id, ordered for listing
    std::map<std::pair<Ipv4, uint16_t>, uint64_t> holders_;  // (relay ip, port) -> id
    std::vector<InFlight> in_flight_;                        // in posting order
    std::vector<uint32_t> pins_;                             // per slot: commands naming it
    std::vector<uint32_t> retired_;                          // unheld slots still pinned
    std::vector<uint64_t> touched_;                          // settle()'s scratch
};

}  // namespace relay::dp
