// The input format of the packet processor's fuzz target (packet_processor_fuzz.cpp),
// shared with the seed generator (make_seeds.cpp): a sequence of records
//   ctl:u8  [delta_ms:u32le if ctl & kAdvance]  len:u16le  frame[len]
// A record cut short by the end of the input keeps what is there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "relay/crypto/mac1.hpp"

namespace relay::fuzz {

using Bytes = std::vector<uint8_t>;

// ctl bits.
constexpr uint8_t kVlanPortBit = 0x01;  // port 1 (VLAN 42) instead of port 0
constexpr uint8_t kAdvance = 0x02;      // a u32 follows: advance the clock by that many ms first
constexpr uint8_t kFixUp = 0x04;        // set IPv4/UDP lengths and checksums to match the frame
// Recompute a WireGuard handshake's mac1 (initiation or response payload), as anyone who
// knows the receiver's public key can, keyed for side A, or B with kMac1ToB.
constexpr uint8_t kFixMac1 = 0x08;
constexpr uint8_t kMac1ToB = 0x10;
constexpr uint8_t kExpire = 0x20;  // run the idle expiry scan after the frame
constexpr uint8_t kBurst = 0x40;   // process with the neighbouring kBurst records as one burst

constexpr size_t kMaxRecords = 64;

struct Record {
    uint8_t ctl = 0;
    uint32_t delta_ms = 0;
    Bytes frame;
};

std::vector<Record> split_records(const uint8_t* data, size_t size);
void append_record(Bytes& out, const Record& r);

// Where the UDP payload of an untagged or tagged IPv4 frame starts (0: not such a frame).
size_t udp_payload_offset(const Bytes& frame);
// Sets the total length, UDP length and both checksums of an IPv4 frame (no options)
// from its actual size.  Anything else is left as it is.
void fix_lengths_and_checksums(Bytes& frame);
// Writes mac1 into a WireGuard initiation or response carried as UDP payload.
void set_wireguard_mac1(Bytes& frame, crypto::Mac1& mac1, const crypto::Mac1Key& key);

}  // namespace relay::fuzz
