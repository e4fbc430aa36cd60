#include "wg_interface.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace relay::peer {
namespace {

// Keys as `wg genkey | wg pubkey` prints them.
const std::string kOwnPriv = "aGVsbG8taGVsbG8taGVsbG8taGVsbG8taGVsbG8tMTI=";
const std::string kOwnPub = "dW5pdC10ZXN0LXB1YmxpYy1rZXktbnVtYmVyLW9uZTE=";
const std::string kPeerA = "cGVlci1hLXB1YmxpYy1rZXktZm9yLXJlbGF5LXRlc3Q=";
const std::string kPeerB = "cGVlci1iLXB1YmxpYy1rZXktZm9yLXJlbGF5LXRlc3Q=";

std::string line(std::initializer_list<std::string> fields) {
    std::string out;
    for (const auto& f : fields) out += (out.empty() ? "" : "\t") + f;
    return out + "\n";
}

// `wg show wg0 dump` of an interface with two peers: one connected, one never seen.
std::string dump() {
    return line({kOwnPriv, kOwnPub, "51820", "off"}) +
           line({kPeerA, "(none)", "203.0.113.9:40000", "100.64.0.2/32,10.9.0.0/16", "1764700000",
                 "1480", "2960", "25"}) +
           line({kPeerB, "(none)", "(none)", "(none)", "0", "0", "0", "off"});
}

TEST(WgDump, ParsesInterfaceAndPeers) {
    auto state = parse_wg_dump(dump());
    ASSERT_TRUE(state) << state.error();
    EXPECT_EQ(state->listen_port, 51820);
    ASSERT_EQ(state->peers.size(), 2u);
    const WgPeer& a = state->peers[0];
    EXPECT_EQ(a.key_text, kPeerA);
    ASSERT_TRUE(a.endpoint);
    EXPECT_EQ(format_socket_address(*a.endpoint), "203.0.113.9:40000");
    EXPECT_EQ(a.allowed_ips, "100.64.0.2/32,10.9.0.0/16");
    EXPECT_EQ(a.latest_handshake_s, 1764700000u);
    EXPECT_EQ(a.rx_bytes, 1480u);
    EXPECT_EQ(a.persistent_keepalive_s, 25u);
    const WgPeer& b = state->peers[1];
    EXPECT_FALSE(b.endpoint);
    EXPECT_EQ(b.allowed_ips, "");
    EXPECT_EQ(b.latest_handshake_s, 0u);
    EXPECT_EQ(b.persistent_keepalive_s, 0u);
}

TEST(WgDump, AnInterfaceWithoutPeers) {
    auto state = parse_wg_dump(line({kOwnPriv, kOwnPub, "40001", "off"}));
    ASSERT_TRUE(state) << state.error();
    EXPECT_EQ(state->listen_port, 40001);
    EXPECT_TRUE(state->peers.empty());
}

struct BadDump {
    const char* name;
    std::string text;
    std::string error;
};

std::vector<BadDump> bad_dumps() {
    const std::string own = line({kOwnPriv, kOwnPub, "51820", "off"});
    return {
        {"empty", "", "wg dump: empty output"},
        {"blank_lines", "\n\n", "wg dump: empty output"},
        {"short_interface_line", line({kOwnPriv, kOwnPub}), "interface line has 2 fields"},
        {"bad_own_key", line({kOwnPriv, "not-a-key", "51820", "off"}),
         "interface has no public key"},
        {"short_peer_line", own + line({kPeerA, "(none)", "(none)"}), "peer line has 3 fields"},
        {"bad_peer_key", own + line({"AAAA", "(none)", "(none)", "(none)", "0", "0", "0", "off"}),
         "bad peer key AAAA"},
        // What `wg` prints for a missing interface is not a dump.
        {"wg_error_text", "Unable to access interface: No such device\n",
         "interface line has 1 fields"},
    };
}

class WgDumpRejects : public testing::TestWithParam<BadDump> {};

TEST_P(WgDumpRejects, WithTheReason) {
    auto state = parse_wg_dump(GetParam().text);
    ASSERT_FALSE(state);
    EXPECT_NE(state.error().find(GetParam().error), std::string::npos) << state.error();
}

INSTANTIATE_TEST_SUITE_P(Table, WgDumpRejects, testing::ValuesIn(bad_dumps()),
                         [](const auto& info) { return std::string(info.param.name); });

// A stand-in for wg(8): records each call's arguments (one line, space-separated) and
// prints the canned dump for `show`; fails like wg does when told to.
class FakeWg : public testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/relay-fake-wg-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        std::ofstream(dir_ / "dump") << dump();
        const auto script = dir_ / "wg";
        std::ofstream(script)
            << "#!/bin/sh\n"
            << "echo \"$*\" >> '" << (dir_ / "calls").string() << "'\n"
            << "if [ -e '" << (dir_ / "fail").string() << "' ]; then\n"
            << "  echo 'Unable to modify interface: Operation not permitted' >&2\n"
            << "  exit 1\n"
            << "fi\n"
            << "[ \"$1\" = show ] && cat '" << (dir_ / "dump").string() << "'\n"
            << "exit 0\n";
        ::chmod(script.c_str(), 0755);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    WgInterface wg() const { return WgInterface("wg0", (dir_ / "wg").string()); }
    void make_it_fail() const { std::ofstream(dir_ / "fail") << ""; }
    std::vector<std::string> calls() const {
        std::ifstream in(dir_ / "calls");
        std::vector<std::string> out;
        for (std::string l; std::getline(in, l);) out.push_back(l);
        return out;
    }

    std::filesystem::path dir_;
};

TEST_F(FakeWg, ReadRunsShowDump) {
    auto state = wg().read();
    ASSERT_TRUE(state) << state.error();
    EXPECT_EQ(state->peers.size(), 2u);
    EXPECT_EQ(calls(), std::vector<std::string>{"show wg0 dump"});
}

TEST_F(FakeWg, SetEndpointWithKeepalive) {
    const SocketAddress to{*parse_ipv4("198.51.100.20"), 51000};
    ASSERT_TRUE(wg().set_endpoint(kPeerA, to, 5));
    ASSERT_TRUE(wg().set_endpoint(kPeerA, to, 0, "100.64.0.2/32"));
    EXPECT_EQ(calls(),
              (std::vector<std::string>{
                  "set wg0 peer " + kPeerA + " endpoint 198.51.100.20:51000 persistent-keepalive 5",
                  "set wg0 peer " + kPeerA +
                      " endpoint 198.51.100.20:51000 persistent-keepalive off "
                      "allowed-ips 100.64.0.2/32"}));
}

TEST_F(FakeWg, ResetPeerIsOneCallThatKeepsAllowedIps) {
    auto state = wg().read();
    ASSERT_TRUE(state);
    const WgPeer& a = state->peers[0];
    const SocketAddress relay{*parse_ipv4("203.0.113.10"), 40002};
    ASSERT_TRUE(wg().reset_peer(a, relay, 5));
    ASSERT_TRUE(wg().reset_peer(a));
    const auto c = calls();
    ASSERT_EQ(c.size(), 3u);
    EXPECT_EQ(c[1], "set wg0 peer " + kPeerA + " remove peer " + kPeerA +
                        " endpoint 203.0.113.10:40002 persistent-keepalive 5 allowed-ips "
                        "100.64.0.2/32,10.9.0.0/16");
    EXPECT_EQ(c[2], "set wg0 peer " + kPeerA + " remove peer " + kPeerA +
                        " allowed-ips 100.64.0.2/32,10.9.0.0/16");
}

TEST_F(FakeWg, FailuresCarryTheCommandAndWgsMessage) {
    make_it_fail();
    auto r = wg().remove_peer(kPeerB);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("set wg0 peer " + kPeerB + " remove"), std::string::npos) << r.error();
    EXPECT_NE(r.error().find("Unable to modify interface: Operation not permitted"),
              std::string::npos)
        << r.error();
    EXPECT_FALSE(wg().read());
}

TEST(WgInterface, AMissingProgramIsAnError) {
    WgInterface wg("wg0", "/nonexistent/wg");
    auto r = wg.read();
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("cannot run /nonexistent/wg"), std::string::npos) << r.error();
}

}  // namespace
}  // namespace relay::peer
