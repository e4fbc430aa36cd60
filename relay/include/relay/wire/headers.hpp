// Byte layouts of Ethernet, 802.1Q, ARP, IPv4, ICMP and UDP as the data plane
// and the tests' packet builder read and write them.  Offsets, not packed
// structs: readers use load/store helpers so that unaligned frames are fine.
#pragma once

#include <cstdint>
#include <cstring>

namespace relay::wire {

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeArp = 0x0806;
constexpr uint16_t kEtherTypeVlan = 0x8100;

constexpr size_t kEthHeaderLen = 14;
constexpr size_t kVlanTagLen = 4;
constexpr size_t kArpLen = 28;
constexpr size_t kIpv4HeaderLen = 20;  // without options
constexpr size_t kUdpHeaderLen = 8;
constexpr size_t kIcmpHeaderLen = 8;

constexpr uint16_t kArpHtypeEthernet = 1;
constexpr uint16_t kArpOpRequest = 1;
constexpr uint16_t kArpOpReply = 2;

constexpr uint8_t kIpProtoIcmp = 1;
constexpr uint8_t kIpProtoUdp = 17;
constexpr uint8_t kIcmpEchoReply = 0;
constexpr uint8_t kIcmpEchoRequest = 8;
constexpr uint16_t kIpFlagMoreFragments = 0x2000;
constexpr uint16_t kIpFlagDontFragment = 0x4000;
constexpr uint16_t kIpFragOffsetMask = 0x1fff;

// Ethernet
constexpr size_t kEthDst = 0, kEthSrc = 6, kEthType = 12;
// ARP, relative to its start
constexpr size_t kArpHtype = 0, kArpPtype = 2, kArpHlen = 4, kArpPlen = 5, kArpOp = 6, kArpSha = 8,
                 kArpSpa = 14, kArpTha = 18, kArpTpa = 24;
// IPv4, relative to its start
constexpr size_t kIpVerIhl = 0, kIpTos = 1, kIpTotalLen = 2, kIpId = 4, kIpFragOff = 6, kIpTtl = 8,
                 kIpProto = 9, kIpChecksum = 10, kIpSrc = 12, kIpDst = 16;
// UDP, relative to its start
constexpr size_t kUdpSrcPort = 0, kUdpDstPort = 2, kUdpLen = 4, kUdpChecksum = 6;
// ICMP, relative to its start
constexpr size_t kIcmpType = 0, kIcmpCode = 1, kIcmpChecksum = 2;

inline uint16_t load_be16(const uint8_t* p) {
    return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
inline uint32_t load_be32(const uint8_t* p) {
    return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
inline uint32_t load_le32(const uint8_t* p) {
    return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
inline uint64_t load_le64(const uint8_t* p) {
    return uint64_t{load_le32(p)} | uint64_t{load_le32(p + 4)} << 32;
}
inline void store_be16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
inline void store_be32(uint8_t* p, uint32_t v) {
    p[0] = static_cast<uint8_t>(v >> 24);
    p[1] = static_cast<uint8_t>(v >> 16);
    p[2] = static_cast<uint8_t>(v >> 8);
    p[3] = static_cast<uint8_t>(v);
}
inline void store_le32(uint8_t* p, uint32_t v) {
    p[0] = static_cast<uint8_t>(v);
    p[1] = static_cast<uint8_t>(v >> 8);
    p[2] = static_cast<uint8_t>(v >> 16);
    p[3] = static_cast<uint8_t>(v >> 24);
}
inline void store_le64(uint8_t* p, uint64_t v) {
    store_le32(p, static_cast<uint32_t>(v));
    store_le32(p + 4, static_cast<uint32_t>(v >> 32));
}

}  // namespace relay::wire
