// Address value types shared by config, IPC and the data plane, with the
// text forms operators type ("198.51.100.10/24", "02:00:00:00:00:01").
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace relay {

// IPv4 address in host byte order (so that prefix arithmetic is plain math).
using Ipv4 = uint32_t;

struct Ipv4Prefix {
    Ipv4 addr = 0;
    uint8_t len = 0;  // 0..32; len 0 matches everything

    uint32_t mask() const { return len == 0 ? 0u : ~uint32_t{0} << (32 - len); }
    bool contains(Ipv4 ip) const { return ((ip ^ addr) & mask()) == 0; }
    bool operator==(const Ipv4Prefix&) const = default;
};

struct MacAddr {
    std::array<uint8_t, 6> bytes{};
    bool operator==(const MacAddr&) const = default;
    bool is_zero() const { return bytes == std::array<uint8_t, 6>{}; }
};

std::optional<Ipv4> parse_ipv4(std::string_view text);
// "a.b.c.d/len"; a bare address is a /32.
std::optional<Ipv4Prefix> parse_ipv4_prefix(std::string_view text);
std::optional<MacAddr> parse_mac(std::string_view text);
// "host:port" with an IPv4 host.
struct SocketAddress {
    Ipv4 ip = 0;
    uint16_t port = 0;
    bool operator==(const SocketAddress&) const = default;
};
std::optional<SocketAddress> parse_socket_address(std::string_view text);

std::string format_ipv4(Ipv4 ip);
std::string format_prefix(const Ipv4Prefix& p);
std::string format_mac(const MacAddr& mac);
std::string format_socket_address(const SocketAddress& a);

}  // namespace relay
