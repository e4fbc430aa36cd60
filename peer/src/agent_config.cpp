#include "agent_config.hpp"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>

#include "relay/control/credentials.hpp"

namespace relay::peer {

namespace {

[[noreturn]] void fail(const std::string& source, const YAML::Node& node, const std::string& key,
                       const std::string& message) {
    const int line = node.Mark().is_null() ? 0 : node.Mark().line + 1;
    throw AgentConfigError(source + (line ? ":" + std::to_string(line) : "") + ": " + key + ": " +
                           message);
}

void only_keys(const std::string& source, const YAML::Node& map, const std::string& path,
               const std::set<std::string>& allowed) {
    if (!map.IsMap()) fail(source, map, path.empty() ? "(top)" : path, "expected a mapping");
    for (const auto& kv : map) {
        if (!kv.first.IsScalar())
            fail(source, kv.first, path.empty() ? "(top)" : path, "keys must be plain names");
        const std::string key = kv.first.Scalar();
        if (!allowed.count(key))
            fail(source, kv.first, path.empty() ? key : path + "." + key, "unknown key");
    }
}

std::string text(const std::string& source, const YAML::Node& map, const std::string& key,
                 const std::string& path, bool required, const std::string& fallback = "") {
    const YAML::Node n = map[key];
    if (!n) {
        if (required) fail(source, map, path, "missing");
        return fallback;
    }
    if (!n.IsScalar() || n.Scalar().empty()) fail(source, n, path, "expected a non-empty string");
    return n.Scalar();
}

uint32_t number(const std::string& source, const YAML::Node& n, const std::string& path,
                uint32_t min, uint32_t max) {
    if (!n.IsScalar()) fail(source, n, path, "expected a number");
    const std::string& s = n.Scalar();
    char* end = nullptr;
    const unsigned long v = std::strtoul(s.c_str(), &end, 10);
    if (s.empty() || *end || s[0] == '-' || v < min || v > max)
        fail(source, n, path,
             "expected a number in " + std::to_string(min) + ".." + std::to_string(max) +
                 ", got \"" + s + "\"");
    return static_cast<uint32_t>(v);
}

}  // namespace

AgentConfig parse_agent_config(const std::string& yaml_text, const std::string& source) {
    YAML::Node root;
    try {
        root = YAML::Load(yaml_text);
    } catch (const YAML::Exception& e) {
        throw AgentConfigError(source + ": " + e.what());
    }
    only_keys(source, root, "",
              {"interface", "key_file", "control", "token", "token_file", "status_socket",
               "persistent_keepalive_s", "wg_program"});
    AgentConfig c;
    c.interface = text(source, root, "interface", "interface", true);
    if (c.interface.size() > 15)
        fail(source, root["interface"], "interface", "longer than 15 characters");
    c.key_file = text(source, root, "key_file", "key_file", true);
    c.status_socket = text(source, root, "status_socket", "status_socket", false,
                           "/run/relay-peer/" + c.interface + ".sock");
    c.wg_program = text(source, root, "wg_program", "wg_program", false, "wg");
    if (root["persistent_keepalive_s"])
        c.persistent_keepalive_s =
            number(source, root["persistent_keepalive_s"], "persistent_keepalive_s", 1, 600);

    const YAML::Node control = root["control"];
    if (!control) fail(source, root, "control", "missing");
    only_keys(source, control, "control", {"address", "ports", "server_public_key"});
    const std::string address = text(source, control, "address", "control.address", true);
    auto ip = parse_ipv4(address);
    if (!ip) fail(source, control["address"], "control.address", "not an IPv4 address: " + address);
    c.control.address = *ip;
    if (const YAML::Node ports = control["ports"]) {
        if (!ports.IsSequence() || ports.size() != 2)
            fail(source, ports, "control.ports", "expected two ports");
        for (size_t i = 0; i < 2; ++i)
            c.control.ports[i] =
                static_cast<uint16_t>(number(source, ports[i], "control.ports", 1, 65535));
    }
    const std::string key =
        text(source, control, "server_public_key", "control.server_public_key", true);
    auto server_key = control::key_from_base64(key);
    if (!server_key)
        fail(source, control["server_public_key"], "control.server_public_key",
             "not a base64 32-byte key");
    c.control.server_key = *server_key;

    const bool has_token = root["token"].IsDefined(), has_file = root["token_file"].IsDefined();
    if (has_token == has_file)
        fail(source, root, "token", "set exactly one of token and token_file");
    if (has_token) {
        c.token = text(source, root, "token", "token", true);
    } else {
        const std::string path = text(source, root, "token_file", "token_file", true);
        std::ifstream in(path);
        if (!in) fail(source, root["token_file"], "token_file", "cannot read " + path);
        std::getline(in, c.token);
        if (c.token.empty()) fail(source, root["token_file"], "token_file", path + " is empty");
    }
    if (!control::parse_token(c.token)) fail(source, root, "token", "not a relay network token");
    return c;
}

AgentConfig load_agent_config(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw AgentConfigError(path + ": cannot read");
    std::stringstream text;
    text << in.rdbuf();
    return parse_agent_config(text.str(), path);
}

}  // namespace relay::peer
