#include "packet_format.hpp"

#include <algorithm>
#include <cstring>

#include "relay/wire/headers.hpp"
#include "relay/wire/wireguard.hpp"

namespace relay::fuzz {

using namespace relay::wire;

std::vector<Record> split_records(const uint8_t* data, size_t size) {
    std::vector<Record> out;
    size_t at = 0;
    while (at < size && out.size() < kMaxRecords) {
        Record r;
        r.ctl = data[at++];
        if (r.ctl & kAdvance) {
            uint8_t d[4] = {};
            std::memcpy(d, data + at, std::min<size_t>(4, size - at));
            r.delta_ms = load_le32(d);
            at += std::min<size_t>(4, size - at);
        }
        size_t len = 0;
        if (at + 2 <= size)
            len = static_cast<size_t>(data[at]) | static_cast<size_t>(data[at + 1]) << 8;
        at += std::min<size_t>(2, size - at);
        len = std::min(len, size - at);
        r.frame.assign(data + at, data + at + len);
        at += len;
        out.push_back(std::move(r));
    }
    return out;
}

void append_record(Bytes& out, const Record& r) {
    out.push_back(r.ctl);
    if (r.ctl & kAdvance)
        for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(r.delta_ms >> (8 * i)));
    out.push_back(static_cast<uint8_t>(r.frame.size()));
    out.push_back(static_cast<uint8_t>(r.frame.size() >> 8));
    out.insert(out.end(), r.frame.begin(), r.frame.end());
}

namespace {

// Offset of the IPv4 header, or 0.
size_t ipv4_offset(const Bytes& f) {
    if (f.size() < kEthHeaderLen) return 0;
    size_t l2 = kEthHeaderLen;
    uint16_t type = load_be16(f.data() + kEthType);
    if (type == kEtherTypeVlan) {
        if (f.size() < kEthHeaderLen + kVlanTagLen) return 0;
        type = load_be16(f.data() + kEthHeaderLen + 2);
        l2 += kVlanTagLen;
    }
    if (type != kEtherTypeIpv4 || f.size() < l2 + kIpv4HeaderLen || f[l2] != 0x45) return 0;
    return l2;
}

uint16_t fold(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}

uint32_t sum16(const uint8_t* p, size_t n, uint32_t sum = 0) {
    for (size_t i = 0; i < n; i += 2)
        sum += static_cast<uint32_t>(p[i] << 8 | (i + 1 < n ? p[i + 1] : 0));
    return sum;
}

}  // namespace

size_t udp_payload_offset(const Bytes& f) {
    const size_t ip = ipv4_offset(f);
    if (ip == 0 || f[ip + kIpProto] != kIpProtoUdp ||
        f.size() < ip + kIpv4HeaderLen + kUdpHeaderLen)
        return 0;
    return ip + kIpv4HeaderLen + kUdpHeaderLen;
}

void fix_lengths_and_checksums(Bytes& f) {
    const size_t ip = ipv4_offset(f);
    if (ip == 0) return;
    const size_t total = std::min<size_t>(f.size() - ip, 65535);
    uint8_t* h = f.data() + ip;
    store_be16(h + kIpTotalLen, static_cast<uint16_t>(total));
    store_be16(h + kIpChecksum, 0);
    store_be16(h + kIpChecksum, static_cast<uint16_t>(~fold(sum16(h, kIpv4HeaderLen))));
    if (h[kIpProto] == kIpProtoUdp && total >= kIpv4HeaderLen + kUdpHeaderLen) {
        uint8_t* udp = h + kIpv4HeaderLen;
        const uint16_t udp_len = static_cast<uint16_t>(total - kIpv4HeaderLen);
        store_be16(udp + kUdpLen, udp_len);
        store_be16(udp + kUdpChecksum, 0);
        uint32_t sum = sum16(h + kIpSrc, 8) + kIpProtoUdp + udp_len;
        const uint16_t c = static_cast<uint16_t>(~fold(sum16(udp, udp_len, sum)));
        store_be16(udp + kUdpChecksum, c == 0 ? 0xffff : c);
    }
}

void set_wireguard_mac1(Bytes& f, crypto::Mac1& mac1, const crypto::Mac1Key& key) {
    const size_t at = udp_payload_offset(f);
    if (at == 0 || f.size() < at + 4) return;
    const size_t len = f.size() - at;
    size_t mac1_at = 0;
    if (f[at] == wg::kTypeInitiation && len >= wg::kInitiationLen)
        mac1_at = wg::kInitiationMac1;
    else if (f[at] == wg::kTypeResponse && len >= wg::kResponseLen)
        mac1_at = wg::kResponseMac1;
    else
        return;
    const crypto::Mac m = mac1.compute(key, std::span<const uint8_t>(f.data() + at, mac1_at));
    std::memcpy(f.data() + at + mac1_at, m.data(), m.size());
}

}  // namespace relay::fuzz
