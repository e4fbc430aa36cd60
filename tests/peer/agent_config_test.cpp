#include "agent_config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "relay/control/credentials.hpp"

namespace relay::peer {
namespace {

struct Fixture {
    std::string server_key;
    std::string token;
};

const Fixture& fixture() {
    static const Fixture f = [] {
        Fixture x;
        const auto keys = control::generate_key_pair();
        x.server_key = control::key_to_base64(keys.public_key);
        control::NetworkSecret secret{};
        secret[0] = 7;
        x.token = control::issue_token({"lab", 1, 4102444800}, secret);
        return x;
    }();
    return f;
}

// A valid config with `extra` appended (later keys of the same name are YAML errors,
// so a test that changes a key replaces the whole text instead).
std::string valid_config(const std::string& extra = "") {
    return "interface: wg0\n"
           "key_file: /var/lib/relay-peer/wg0.key\n"
           "control:\n"
           "  address: 198.51.100.7\n"
           "  ports: [4478, 4479]\n"
           "  server_public_key: " +
           fixture().server_key +
           "\n"
           "token: " +
           fixture().token + "\n" + extra;
}

TEST(AgentConfig, ParsesAValidConfig) {
    const AgentConfig c = parse_agent_config(valid_config("persistent_keepalive_s: 15\n"), "t");
    EXPECT_EQ(c.interface, "wg0");
    EXPECT_EQ(c.key_file, "/var/lib/relay-peer/wg0.key");
    EXPECT_EQ(format_ipv4(c.control.address), "198.51.100.7");
    EXPECT_EQ(c.control.ports[0], 4478);
    EXPECT_EQ(c.control.ports[1], 4479);
    EXPECT_EQ(control::key_to_base64(c.control.server_key), fixture().server_key);
    EXPECT_EQ(c.token, fixture().token);
    EXPECT_EQ(c.persistent_keepalive_s, 15u);
    EXPECT_EQ(c.status_socket, "/run/relay-peer/wg0.sock");  // default from the interface
    EXPECT_EQ(c.wg_program, "wg");
}

TEST(AgentConfig, ReadsTheTokenFromAFile) {
    char path[] = "/tmp/relay-peer-token-XXXXXX";
    const int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    ::close(fd);
    std::ofstream(path) << fixture().token << "\n";
    std::string text = valid_config();
    text.replace(text.find("token: "), std::string::npos,
                 "token_file: " + std::string(path) + "\n");
    const AgentConfig c = parse_agent_config(text, "t");
    EXPECT_EQ(c.token, fixture().token);
    std::remove(path);
}

struct BadConfig {
    const char* name;
    std::string text;
    std::string error;  // the message must contain this
};

std::string replace(std::string text, const std::string& from, const std::string& to) {
    const size_t at = text.find(from);
    if (at == std::string::npos) throw std::logic_error("no " + from + " in the config");
    return text.replace(at, from.size(), to);
}

std::vector<BadConfig> bad_configs() {
    const std::string ok = valid_config();
    return {
        {"not_yaml", "interface: [wg0\n", "t:"},
        {"not_a_mapping", "- wg0\n", "(top): expected a mapping"},
        {"unknown_key", valid_config("colour: blue\n"), "colour: unknown key"},
        {"unknown_control_key", replace(ok, "  ports:", "  port: 1\n  ports:"),
         "control.port: unknown key"},
        {"no_interface", replace(ok, "interface: wg0\n", ""), "interface: missing"},
        {"long_interface", replace(ok, "interface: wg0", "interface: wg0123456789abcdef"),
         "interface: longer than 15 characters"},
        {"empty_key_file", replace(ok, "key_file: /var/lib/relay-peer/wg0.key", "key_file: \"\""),
         "key_file: expected a non-empty string"},
        {"no_control", "interface: wg0\nkey_file: k\ntoken: " + fixture().token + "\n",
         "control: missing"},
        {"bad_address", replace(ok, "198.51.100.7", "198.51.100.300"),
         "control.address: not an IPv4 address"},
        {"one_port", replace(ok, "[4478, 4479]", "[4478]"), "control.ports: expected two ports"},
        {"port_zero", replace(ok, "[4478, 4479]", "[0, 4479]"),
         "control.ports: expected a number in 1..65535"},
        {"port_too_big", replace(ok, "[4478, 4479]", "[4478, 70000]"),
         "control.ports: expected a number in 1..65535"},
        {"negative_port", replace(ok, "[4478, 4479]", "[-1, 4479]"),
         "control.ports: expected a number in 1..65535"},
        {"short_server_key", replace(ok, fixture().server_key, "c2hvcnQ="),
         "control.server_public_key: not a base64 32-byte key"},
        {"no_server_key", replace(ok, "  server_public_key: " + fixture().server_key + "\n", ""),
         "control.server_public_key: missing"},
        {"no_token", replace(ok, "token: " + fixture().token + "\n", ""),
         "token: set exactly one of token and token_file"},
        {"token_and_file", valid_config("token_file: /etc/relay/token\n"),
         "token: set exactly one of token and token_file"},
        {"not_a_token", replace(ok, fixture().token, "hunter2"),
         "token: not a relay network token"},
        {"missing_token_file",
         replace(ok, "token: " + fixture().token, "token_file: /nonexistent/relay-token"),
         "token_file: cannot read /nonexistent/relay-token"},
        {"keepalive_zero", valid_config("persistent_keepalive_s: 0\n"),
         "persistent_keepalive_s: expected a number in 1..600"},
        {"keepalive_text", valid_config("persistent_keepalive_s: often\n"),
         "persistent_keepalive_s: expected a number in 1..600"},
        {"keepalive_list", valid_config("persistent_keepalive_s: [1]\n"),
         "persistent_keepalive_s: expected a number"},
        // Found by fuzzing (tests/fuzz, agent_config): a key that is not a scalar
        // escaped as yaml-cpp's bad-conversion exception instead of a config error.
        {"key_not_a_name", "{[a, b]: 1}\n", "(top): keys must be plain names"},
        {"control_key_not_a_name", replace(ok, "  ports:", "  ? {a: 1}\n  : 2\n  ports:"),
         "control: keys must be plain names"},
    };
}

class AgentConfigRejects : public testing::TestWithParam<BadConfig> {};

TEST_P(AgentConfigRejects, WithAnErrorNamingTheKey) {
    try {
        parse_agent_config(GetParam().text, "t");
        FAIL() << "accepted:\n" << GetParam().text;
    } catch (const AgentConfigError& e) {
        EXPECT_NE(std::string(e.what()).find(GetParam().error), std::string::npos)
            << "error: " << e.what() << "\nexpected to contain: " << GetParam().error;
        EXPECT_EQ(std::string(e.what()).rfind("t", 0), 0u) << "names the source: " << e.what();
    }
}

INSTANTIATE_TEST_SUITE_P(Table, AgentConfigRejects, testing::ValuesIn(bad_configs()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(AgentConfig, ErrorsCarryTheLine) {
    try {
        parse_agent_config(valid_config("colour: blue\n"), "agent.yaml");
        FAIL();
    } catch (const AgentConfigError& e) {
        EXPECT_EQ(std::string(e.what()), "agent.yaml:8: colour: unknown key");
    }
}

TEST(AgentConfig, MissingFileIsAClearError) {
    EXPECT_THROW(
        {
            try {
                load_agent_config("/nonexistent/relay-peer.yaml");
            } catch (const AgentConfigError& e) {
                EXPECT_STREQ(e.what(), "/nonexistent/relay-peer.yaml: cannot read");
                throw;
            }
        },
        AgentConfigError);
}

}  // namespace
}  // namespace relay::peer
