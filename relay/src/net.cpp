#include "relay/net.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstdio>

namespace relay {

std::optional<Ipv4> parse_ipv4(std::string_view text) {
    if (text.empty() || text.size() > 15) return std::nullopt;
    std::string s(text);
    in_addr a{};
    if (inet_pton(AF_INET, s.c_str(), &a) != 1) return std::nullopt;
    return ntohl(a.s_addr);
}

std::optional<Ipv4Prefix> parse_ipv4_prefix(std::string_view text) {
    auto slash = text.find('/');
    auto ip = parse_ipv4(text.substr(0, slash));
    if (!ip) return std::nullopt;
    if (slash == std::string_view::npos) return Ipv4Prefix{*ip, 32};
    auto len_text = text.substr(slash + 1);
    unsigned len = 0;
    auto [end, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
    if (ec != std::errc{} || end != len_text.data() + len_text.size() || len_text.empty() ||
        len > 32)
        return std::nullopt;
    return Ipv4Prefix{*ip, static_cast<uint8_t>(len)};
}

std::optional<MacAddr> parse_mac(std::string_view text) {
    if (text.size() != 17) return std::nullopt;
    MacAddr mac;
    for (size_t i = 0; i < 6; ++i) {
        if (i > 0 && text[i * 3 - 1] != ':') return std::nullopt;
        unsigned v = 0;
        auto [end, ec] = std::from_chars(text.data() + i * 3, text.data() + i * 3 + 2, v, 16);
        if (ec != std::errc{} || end != text.data() + i * 3 + 2) return std::nullopt;
        mac.bytes[i] = static_cast<uint8_t>(v);
    }
    return mac;
}

std::optional<SocketAddress> parse_socket_address(std::string_view text) {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    auto ip = parse_ipv4(text.substr(0, colon));
    if (!ip) return std::nullopt;
    auto port_text = text.substr(colon + 1);
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || port_text.empty() ||
        port > 65535)
        return std::nullopt;
    return SocketAddress{*ip, static_cast<uint16_t>(port)};
}

std::string format_ipv4(Ipv4 ip) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff,
                  ip & 0xff);
    return buf;
}

std::string format_prefix(const Ipv4Prefix& p) {
    return format_ipv4(p.addr) + "/" + std::to_string(p.len);
}

std::string format_mac(const MacAddr& mac) {
    char buf[18];
    std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", mac.bytes[0], mac.bytes[1],
                  mac.bytes[2], mac.bytes[3], mac.bytes[4], mac.bytes[5]);
    return buf;
}

std::string format_socket_address(const SocketAddress& a) {
    return format_ipv4(a.ip) + ":" + std::to_string(a.port);
}

}  // namespace relay
