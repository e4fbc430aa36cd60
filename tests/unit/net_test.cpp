// Address text forms: what parses, what is rejected, and that formatting
// round-trips.  These functions see operator input (config, CLI), so the
// rejections matter as much as the successes.
#include <gtest/gtest.h>

#include <string>

#include "relay/net.hpp"

namespace relay {
namespace {

constexpr Ipv4 kDocAddress = 0xc633640a;  // 198.51.100.10

TEST(NetIpv4, ParsesDottedQuads) {
    EXPECT_EQ(parse_ipv4("198.51.100.10"), kDocAddress);
    EXPECT_EQ(parse_ipv4("0.0.0.0"), Ipv4{0});
    EXPECT_EQ(parse_ipv4("255.255.255.255"), Ipv4{0xffffffff});
    EXPECT_EQ(parse_ipv4("127.0.0.1"), Ipv4{0x7f000001});
}

class NetIpv4Rejects : public testing::TestWithParam<const char*> {};

TEST_P(NetIpv4Rejects, Text) {
    EXPECT_EQ(parse_ipv4(GetParam()), std::nullopt) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Net, NetIpv4Rejects,
                         testing::Values("256.1.1.1", "1.2.3", "", "1.2.3.4.5", "1.2.3.4 ",
                                         " 1.2.3.4", "a.b.c.d", "1..3.4", "1.2.3.-4", "1.2.3.4/24",
                                         "1.2.3.4:80", "::1", "1.2.3.4\n", "1234567890123456"));

TEST(NetPrefix, ParsesAddressAndLength) {
    EXPECT_EQ(parse_ipv4_prefix("198.51.100.10/24"), (Ipv4Prefix{kDocAddress, 24}));
    EXPECT_EQ(parse_ipv4_prefix("10.0.0.0/8"), (Ipv4Prefix{0x0a000000, 8}));
    EXPECT_EQ(parse_ipv4_prefix("1.2.3.4/32"), (Ipv4Prefix{0x01020304, 32}));
    EXPECT_EQ(parse_ipv4_prefix("0.0.0.0/0"), (Ipv4Prefix{0, 0}));
}

TEST(NetPrefix, BareAddressIsSlash32) {
    EXPECT_EQ(parse_ipv4_prefix("198.51.100.10"), (Ipv4Prefix{kDocAddress, 32}));
}

class NetPrefixRejects : public testing::TestWithParam<const char*> {};

TEST_P(NetPrefixRejects, Text) {
    EXPECT_EQ(parse_ipv4_prefix(GetParam()), std::nullopt) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Net, NetPrefixRejects,
                         testing::Values("1.2.3.4/33", "1.2.3.4/", "1.2.3.4/-1", "1.2.3.4/+8",
                                         "1.2.3.4/2a", "1.2.3.4/ 8", "1.2.3.4/24/1", "/24",
                                         "256.1.1.1/24", "1.2.3/24", "", "1.2.3.4/4294967320"));

TEST(NetPrefix, MaskAndContains) {
    Ipv4Prefix p24{kDocAddress, 24};
    EXPECT_EQ(p24.mask(), 0xffffff00u);
    EXPECT_TRUE(p24.contains(0xc6336401));   // 198.51.100.1
    EXPECT_TRUE(p24.contains(0xc63364ff));   // 198.51.100.255
    EXPECT_FALSE(p24.contains(0xc6336501));  // 198.51.101.1

    Ipv4Prefix all{0, 0};
    EXPECT_EQ(all.mask(), 0u);  // no shift by 32 (undefined behaviour)
    EXPECT_TRUE(all.contains(0xffffffff));

    Ipv4Prefix host{kDocAddress, 32};
    EXPECT_EQ(host.mask(), 0xffffffffu);
    EXPECT_TRUE(host.contains(kDocAddress));
    EXPECT_FALSE(host.contains(kDocAddress + 1));

    Ipv4Prefix p1{0x80000000, 1};
    EXPECT_EQ(p1.mask(), 0x80000000u);
    EXPECT_FALSE(p1.contains(0x7fffffff));
}

TEST(NetMac, ParsesColonSeparatedHex) {
    EXPECT_EQ(parse_mac("02:00:00:00:00:01"), (MacAddr{{0x02, 0, 0, 0, 0, 0x01}}));
    EXPECT_EQ(parse_mac("AA:bb:Cc:dD:ee:FF"), (MacAddr{{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}}));
    EXPECT_TRUE(parse_mac("00:00:00:00:00:00")->is_zero());
    EXPECT_FALSE(parse_mac("00:00:00:00:00:01")->is_zero());
}

class NetMacRejects : public testing::TestWithParam<const char*> {};

TEST_P(NetMacRejects, Text) {
    EXPECT_EQ(parse_mac(GetParam()), std::nullopt) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(
    Net, NetMacRejects,
    testing::Values("02-00-00-00-00-01", "02.00.00.00.00.01", "02:00:00-00:00:01",
                    "02:00:00:00:00:01:", "0200.0000.0001", "020000000001", "02:00:00:00:00",
                    "02:00:00:00:00:01:02", "02:00:00:00:00:0g", "2:00:00:00:00:001",
                    "02:00:00:00:00:-1", "02:00:00:00:00:+1", " 2:00:00:00:00:01", ""));

TEST(NetSocketAddress, ParsesHostAndPort) {
    EXPECT_EQ(parse_socket_address("127.0.0.1:9477"), (SocketAddress{0x7f000001, 9477}));
    EXPECT_EQ(parse_socket_address("198.51.100.10:65535"), (SocketAddress{kDocAddress, 65535}));
    // Port 0 is a valid text form; whether it is allowed is the caller's decision.
    EXPECT_EQ(parse_socket_address("0.0.0.0:0"), (SocketAddress{0, 0}));
}

class NetSocketAddressRejects : public testing::TestWithParam<const char*> {};

TEST_P(NetSocketAddressRejects, Text) {
    EXPECT_EQ(parse_socket_address(GetParam()), std::nullopt) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Net, NetSocketAddressRejects,
                         testing::Values("1.2.3.4:70000", "1.2.3.4:65536", "1.2.3.4:", "1.2.3.4",
                                         ":80", "1.2.3.4:-1", "1.2.3.4:+80", "1.2.3.4:80x",
                                         "1.2.3.4: 80", "localhost:80", "[::1]:80", "1.2.3.4:80:90",
                                         "256.1.1.1:80", "1.2.3:80", "",
                                         "1.2.3.4:99999999999999999999"));

TEST(NetFormat, WritesCanonicalText) {
    EXPECT_EQ(format_ipv4(kDocAddress), "198.51.100.10");
    EXPECT_EQ(format_ipv4(0), "0.0.0.0");
    EXPECT_EQ(format_ipv4(0xffffffff), "255.255.255.255");
    EXPECT_EQ(format_prefix(Ipv4Prefix{kDocAddress, 24}), "198.51.100.10/24");
    EXPECT_EQ(format_prefix(Ipv4Prefix{0, 0}), "0.0.0.0/0");
    EXPECT_EQ(format_mac(MacAddr{{0xaa, 0xbb, 0x0c, 0, 0x01, 0xff}}), "aa:bb:0c:00:01:ff");
    EXPECT_EQ(format_socket_address(SocketAddress{0x7f000001, 9477}), "127.0.0.1:9477");
}

TEST(NetFormat, RoundTrips) {
    for (const char* text : {"10.1.2.3", "192.0.2.255", "203.0.113.0"})
        EXPECT_EQ(format_ipv4(*parse_ipv4(text)), text);
    for (const char* text : {"10.0.0.0/8", "198.51.100.10/24", "1.2.3.4/32"})
        EXPECT_EQ(format_prefix(*parse_ipv4_prefix(text)), text);
    for (const char* text : {"02:00:00:00:00:01", "fe:dc:ba:98:76:54"})
        EXPECT_EQ(format_mac(*parse_mac(text)), text);
    for (const char* text : {"127.0.0.1:9477", "0.0.0.0:1", "255.255.255.255:65535"})
        EXPECT_EQ(format_socket_address(*parse_socket_address(text)), text);
}

}  // namespace
}  // namespace relay
