#include "wg_interface.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <sstream>

#include "relay/control/credentials.hpp"

namespace relay::peer {

namespace {

std::vector<std::string> split(const std::string& line, char sep) {
    std::vector<std::string> out;
    std::string field;
    std::istringstream in(line);
    while (std::getline(in, field, sep)) out.push_back(field);
    return out;
}

}  // namespace

Result<WgState, std::string> parse_wg_dump(const std::string& text) {
    WgState state;
    std::istringstream in(text);
    std::string line;
    bool first = true;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        const auto f = split(line, '\t');
        if (first) {
            // private-key public-key listen-port fwmark
            if (f.size() < 3)
                return Unexpected{"wg dump: interface line has " + std::to_string(f.size()) +
                                  " fields"};
            auto key = control::key_from_base64(f[1]);
            if (!key) return Unexpected{std::string("wg dump: interface has no public key")};
            state.public_key = *key;
            state.listen_port = static_cast<uint16_t>(std::strtoul(f[2].c_str(), nullptr, 10));
            first = false;
            continue;
        }
        // public-key preshared-key endpoint allowed-ips latest-handshake rx tx keepalive
        if (f.size() < 8)
            return Unexpected{"wg dump: peer line has " + std::to_string(f.size()) + " fields"};
        WgPeer p;
        auto key = control::key_from_base64(f[0]);
        if (!key) return Unexpected{"wg dump: bad peer key " + f[0]};
        p.key = *key;
        p.key_text = f[0];
        if (f[2] != "(none)") p.endpoint = parse_socket_address(f[2]);
        p.allowed_ips = f[3] == "(none)" ? "" : f[3];
        p.latest_handshake_s = std::strtoull(f[4].c_str(), nullptr, 10);
        p.rx_bytes = std::strtoull(f[5].c_str(), nullptr, 10);
        p.persistent_keepalive_s =
            f[7] == "off" ? 0 : static_cast<uint32_t>(std::strtoul(f[7].c_str(), nullptr, 10));
        state.peers.push_back(std::move(p));
    }
    if (first) return Unexpected{std::string("wg dump: empty output")};
    return state;
}

Result<std::string, std::string> WgInterface::wg(const std::vector<std::string>& args) const {
    int out[2];
    if (::pipe(out) != 0) return Unexpected{std::string("pipe: ") + std::strerror(errno)};
    const pid_t pid = ::fork();
    if (pid < 0) return Unexpected{std::string("fork: ") + std::strerror(errno)};
    if (pid == 0) {
        ::dup2(out[1], 1);
        ::dup2(out[1], 2);
        ::close(out[0]);
        ::close(out[1]);
        std::vector<char*> argv{const_cast<char*>(wg_.c_str())};
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execvp(argv[0], argv.data());
        std::fprintf(stderr, "cannot run %s: %s\n", wg_.c_str(), std::strerror(errno));
        ::_exit(127);
    }
    ::close(out[1]);
    std::string text;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(out[0], buf, sizeof buf);
        if (n <= 0) break;
        text.append(buf, static_cast<size_t>(n));
    }
    ::close(out[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::string command = wg_;
        for (const auto& a : args) command += " " + a;
        while (!text.empty() && text.back() == '\n') text.pop_back();
        return Unexpected{command + ": " + text};
    }
    return text;
}

Result<WgState, std::string> WgInterface::read() const {
    auto text = wg({"show", name_, "dump"});
    if (!text) return Unexpected{text.error()};
    return parse_wg_dump(*text);
}

Result<bool, std::string> WgInterface::set(std::vector<std::string> args) const {
    args.insert(args.begin(), {"set", name_});
    auto r = wg(args);
    if (!r) return Unexpected{r.error()};
    return true;
}

std::vector<std::string> WgInterface::peer_args(const std::string& key_text,
                                                std::optional<SocketAddress> endpoint,
                                                uint32_t keepalive_s,
                                                const std::string& allowed_ips) {
    std::vector<std::string> args{"peer", key_text};
    if (endpoint)
        args.insert(args.end(),
                    {"endpoint", format_socket_address(*endpoint), "persistent-keepalive",
                     keepalive_s ? std::to_string(keepalive_s) : "off"});
    if (!allowed_ips.empty()) args.insert(args.end(), {"allowed-ips", allowed_ips});
    return args;
}

Result<bool, std::string> WgInterface::set_endpoint(const std::string& key_text,
                                                    SocketAddress endpoint, uint32_t keepalive_s,
                                                    const std::string& allowed_ips) const {
    return set(peer_args(key_text, endpoint, keepalive_s, allowed_ips));
}

Result<bool, std::string> WgInterface::remove_peer(const std::string& key_text) const {
    return set({"peer", key_text, "remove"});
}

Result<bool, std::string> WgInterface::reset_peer(const WgPeer& peer,
                                                  std::optional<SocketAddress> endpoint,
                                                  uint32_t keepalive_s) const {
    // One `wg set` (remove, then the peer anew): a packet from the peer that arrives
    // between two separate calls would find it missing and be lost.
    std::vector<std::string> args{"peer", peer.key_text, "remove"};
    const auto anew = peer_args(peer.key_text, endpoint, keepalive_s, peer.allowed_ips);
    args.insert(args.end(), anew.begin(), anew.end());
    return set(std::move(args));
}

}  // namespace relay::peer
