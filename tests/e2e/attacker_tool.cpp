// relay-attack: the NAT lab's attacker (tests/e2e/test_attacker.py) at the rates Python
// cannot reach.  It knows the server's public key and the peers' WireGuard public keys,
// never a secret, and sees no traffic but what is sent to its own addresses.  The
// messages are built with the product's own codecs (relay/), so they are exactly what a
// real agent or WireGuard would send, except for what the attacker cannot know.
//
//   relay-attack control-flood --server IP --ports P[,P] --server-key B64 --network NAME
//                --sources PREFIX --seconds S [--rate PPS] [--messages-per-key N]
//       register messages, each sealed correctly to the server's key under a fresh X25519
//       key (a new one every N messages, default 1), carrying a well-formed token of
//       NETWORK with a made-up MAC, round robin from every host address of PREFIX
//       (which must be this host's), to every port in turn.
//   relay-attack session-flood --target IP --ports LO-HI --sources PREFIX --seconds S
//                [--rate PPS] [--mac1-key B64]...
//       WireGuard-shaped datagrams to every port of LO-HI in turn, round robin from every
//       host address of PREFIX: an initiation with a wrong mac1, a response and a data
//       packet of random bytes, a datagram of random length, and for each --mac1-key an
//       initiation whose mac1 verifies under that receiver's key (valid-looking).
//   relay-attack open --agent-key FILE --server-key B64
//       not an attack: the test's checker.  Reads one hex datagram a line (control
//       traffic of the agent whose secret key is FILE) and prints per line
//       "request TYPE ID", "reply TYPE ID" or "unreadable WHY".
//
// The floods print one JSON line when done (after --seconds, or at once on SIGTERM or
// SIGINT): what was sent, at what rate, and what came back (count and largest size).
// Rates are capped by --rate (0 = as fast as it goes).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "relay/control/credentials.hpp"
#include "relay/control/envelope.hpp"
#include "relay/control/messages.hpp"
#include "relay/crypto/mac1.hpp"
#include "relay/net.hpp"
#include "relay/wire/wireguard.hpp"

namespace {

using namespace relay;
using namespace relay::control;
using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_stop_signal(int) {
    g_stop = 1;
}

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "relay-attack: %s\n", what.c_str());
    std::exit(2);
}

struct Args {
    std::map<std::string, std::vector<std::string>> values;

    const std::string& one(const std::string& name) const {
        auto it = values.find(name);
        if (it == values.end() || it->second.empty()) die("missing --" + name);
        return it->second.back();
    }
    std::string get(const std::string& name, const std::string& fallback) const {
        auto it = values.find(name);
        return it == values.end() || it->second.empty() ? fallback : it->second.back();
    }
    std::vector<std::string> all(const std::string& name) const {
        auto it = values.find(name);
        return it == values.end() ? std::vector<std::string>{} : it->second;
    }
};

Args parse_args(int argc, char** argv, int first) {
    Args a;
    for (int i = first; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (!arg.starts_with("--") || i + 1 >= argc) die("bad argument " + std::string(arg));
        a.values[std::string(arg.substr(2))].push_back(argv[++i]);
    }
    return a;
}

double number(const std::string& text, const std::string& name) {
    try {
        size_t used = 0;
        const double v = std::stod(text, &used);
        if (used != text.size() || v < 0) throw std::invalid_argument(text);
        return v;
    } catch (const std::exception&) {
        die("--" + name + ": not a non-negative number: " + text);
    }
}

PublicKey key_arg(const std::string& text, const std::string& name) {
    auto k = key_from_base64(text);
    if (!k) die("--" + name + ": not a base64 32-byte key");
    return *k;
}

Ipv4 ip_arg(const std::string& text, const std::string& name) {
    auto ip = parse_ipv4(text);
    if (!ip) die("--" + name + ": not an IPv4 address: " + text);
    return *ip;
}

std::vector<uint16_t> ports_arg(const std::string& text) {
    std::vector<uint16_t> out;
    size_t start = 0;
    while (start <= text.size()) {
        const size_t comma = std::min(text.find(',', start), text.size());
        const std::string item = text.substr(start, comma - start);
        const size_t dash = item.find('-');
        const auto lo = static_cast<unsigned>(number(item.substr(0, dash), "ports"));
        const auto hi = dash == std::string::npos
                            ? lo
                            : static_cast<unsigned>(number(item.substr(dash + 1), "ports"));
        if (lo == 0 || hi > 65535 || lo > hi) die("--ports: bad range " + item);
        for (unsigned p = lo; p <= hi; ++p) out.push_back(static_cast<uint16_t>(p));
        start = comma + 1;
    }
    return out;
}

sockaddr_in sockaddr_of(Ipv4 ip, uint16_t port) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(ip);
    sa.sin_port = htons(port);
    return sa;
}

// One UDP socket bound to each host address of PREFIX (a /32 gives that address).
struct Sources {
    std::vector<int> fds;
    std::vector<uint16_t> local_ports;

    explicit Sources(const std::string& prefix_text) {
        auto prefix = parse_ipv4_prefix(prefix_text);
        if (!prefix) die("--sources: not a prefix: " + prefix_text);
        const uint64_t size = uint64_t{1} << (32 - prefix->len);
        const Ipv4 base = prefix->len == 0 ? 0 : prefix->addr & ~static_cast<Ipv4>(size - 1);
        const uint64_t first = size > 2 ? 1 : 0, last = size > 2 ? size - 2 : size - 1;
        for (uint64_t i = first; i <= last; ++i) {
            const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            if (fd < 0) die(std::string("socket: ") + std::strerror(errno));
            const int buf = 1 << 20;
            ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
            sockaddr_in sa = sockaddr_of(static_cast<Ipv4>(base + i), 0);
            if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
                die("bind " + format_ipv4(static_cast<Ipv4>(base + i)) + ": " +
                    std::strerror(errno) + " (is the address on this host?)");
            socklen_t len = sizeof sa;
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
            fds.push_back(fd);
            local_ports.push_back(ntohs(sa.sin_port));
        }
    }
    ~Sources() {
        for (int fd : fds) ::close(fd);
    }
};

// What came back to the attacker's sockets: counted, the largest remembered.
struct Received {
    uint64_t count = 0;
    size_t max_bytes = 0;

    void drain(const std::vector<int>& fds) {
        std::vector<pollfd> p(fds.size());
        for (size_t i = 0; i < fds.size(); ++i) p[i] = {fds[i], POLLIN, 0};
        if (::poll(p.data(), p.size(), 0) <= 0) return;
        uint8_t buf[2048];
        for (const pollfd& q : p) {
            if (!(q.revents & POLLIN)) continue;
            for (;;) {
                const ssize_t n = ::recv(q.fd, buf, sizeof buf, MSG_DONTWAIT);
                if (n < 0) break;
                ++count;
                max_bytes = std::max(max_bytes, static_cast<size_t>(n));
            }
        }
    }
};

// Paces a loop at `rate` per second (0 = unpaced) until `seconds` have passed.
class Pacer {
  public:
    Pacer(double rate, double seconds)
        : rate_(rate),
          start_(Clock::now()),
          end_(start_ + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(seconds))) {}
    // False once the time is up (or SIGTERM came).  Sleeps while ahead of the rate.
    bool next(uint64_t done) {
        const auto now = Clock::now();
        if (now >= end_ || g_stop) return false;
        if (rate_ > 0) {
            const auto due = start_ + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(done / rate_));
            if (due > now) std::this_thread::sleep_until(std::min(due, end_));
        }
        return Clock::now() < end_ && !g_stop;
    }
    double elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

  private:
    double rate_;
    Clock::time_point start_, end_;
};

uint64_t unix_ms() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
}

int control_flood(const Args& a) {
    const Ipv4 server = ip_arg(a.one("server"), "server");
    const std::vector<uint16_t> ports = ports_arg(a.one("ports"));
    const PublicKey server_key = key_arg(a.one("server-key"), "server-key");
    const std::string network = a.one("network");
    if (!valid_network_name(network)) die("--network: not a network name");
    const double seconds = number(a.one("seconds"), "seconds");
    const double rate = number(a.get("rate", "0"), "rate");
    const auto per_key =
        static_cast<uint64_t>(number(a.get("messages-per-key", "1"), "messages-per-key"));
    if (per_key == 0) die("--messages-per-key: at least 1");
    Sources src(a.one("sources"));

    // A token of the real network, well formed, whose MAC is made with a secret the
    // server does not have: it gets as far as the MAC check.
    NetworkSecret bogus{};
    randombytes_buf(bogus.data(), bogus.size());
    const std::string token = issue_token({network, 1, unix_ms() / 1000 + 3600}, bogus);

    std::vector<sockaddr_in> to;
    for (uint16_t p : ports) to.push_back(sockaddr_of(server, p));
    KeyPair me{};
    SharedKey shared{};
    Received rx;
    uint64_t sent = 0, keys = 0, send_errors = 0;
    size_t request_bytes = 0;
    Pacer pace(rate, seconds);
    while (pace.next(sent)) {
        if (sent % per_key == 0) {
            me = generate_key_pair();
            auto k = shared_key(server_key, me.secret_key);
            if (!k) die("the server key is not a valid public key");
            shared = *k;
            ++keys;
        }
        const size_t s = sent % src.fds.size();
        RegisterPeer reg;
        reg.token = token;
        randombytes_buf(reg.wg_public_key.data(), reg.wg_public_key.size());
        reg.wg_public_key[0] |= 1;  // never all zero
        reg.wg_listen_port = 51820;
        reg.agent_port = src.local_ports[s];
        const Message m{unix_ms(), static_cast<uint32_t>(sent + 1), reg};
        const std::vector<uint8_t> sealed = seal_request(me.public_key, shared, encode(m));
        request_bytes = sealed.size();
        const sockaddr_in& dst = to[sent % to.size()];
        if (::sendto(src.fds[s], sealed.data(), sealed.size(), 0,
                     reinterpret_cast<const sockaddr*>(&dst), sizeof dst) < 0)
            ++send_errors;
        ++sent;
        if (sent % 512 == 0) rx.drain(src.fds);
    }
    const double took = pace.elapsed();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the last replies
    rx.drain(src.fds);
    std::printf(
        "{\"attack\": \"control-flood\", \"sent\": %lu, \"send_errors\": %lu, \"keys\": %lu, "
        "\"sources\": %zu, \"seconds\": %.3f, \"per_s\": %.0f, \"request_bytes\": %zu, "
        "\"replies\": %lu, \"max_reply_bytes\": %zu}\n",
        static_cast<unsigned long>(sent), static_cast<unsigned long>(send_errors),
        static_cast<unsigned long>(keys), src.fds.size(), took, sent / std::max(took, 1e-9),
        request_bytes, static_cast<unsigned long>(rx.count), rx.max_bytes);
    return 0;
}

int session_flood(const Args& a) {
    const Ipv4 target = ip_arg(a.one("target"), "target");
    const std::vector<uint16_t> ports = ports_arg(a.one("ports"));
    const double seconds = number(a.one("seconds"), "seconds");
    const double rate = number(a.get("rate", "0"), "rate");
    std::vector<crypto::Mac1Key> keys;
    for (const std::string& k : a.all("mac1-key"))
        keys.push_back(crypto::mac1_key_for(key_arg(k, "mac1-key")));
    Sources src(a.one("sources"));

    // The kinds, in turn: 0 bad-mac1 initiation, 1 junk response, 2 junk data, 3 random
    // length, then one valid-mac1 initiation per key.
    const char* kind_names[] = {"bad_mac1_initiation", "junk_response", "junk_data",
                                "random_length", "valid_mac1_initiation"};
    const size_t kinds = 4 + keys.size();
    std::vector<uint64_t> by_kind(5, 0);
    crypto::Mac1 mac1;
    std::vector<sockaddr_in> to;
    for (uint16_t p : ports) to.push_back(sockaddr_of(target, p));
    uint8_t msg[256];
    Received rx;
    uint64_t sent = 0, send_errors = 0;
    Pacer pace(rate, seconds);
    while (pace.next(sent)) {
        const size_t kind = (sent / to.size()) % kinds;  // every port sees every kind
        size_t len = 0;
        randombytes_buf(msg, sizeof msg);
        switch (kind) {
            case 0:
                len = wire::wg::kInitiationLen;
                break;
            case 1:
                len = wire::wg::kResponseLen;
                break;
            case 2:
                len = 64;
                break;
            case 3:
                len = 1 + randombytes_uniform(sizeof msg);
                break;
            default:
                len = wire::wg::kInitiationLen;
                break;
        }
        const uint32_t type = kind == 1   ? wire::wg::kTypeResponse
                              : kind == 2 ? wire::wg::kTypeData
                                          : wire::wg::kTypeInitiation;
        if (kind != 3) {
            msg[0] = static_cast<uint8_t>(type);
            msg[1] = msg[2] = msg[3] = 0;
        }
        if (kind >= 4) {
            const crypto::Mac m = mac1.compute(
                keys[kind - 4], std::span<const uint8_t>(msg, wire::wg::kInitiationMac1));
            std::memcpy(msg + wire::wg::kInitiationMac1, m.data(), m.size());
            std::memset(msg + wire::wg::kInitiationMac1 + wire::wg::kMacLen, 0,
                        len - wire::wg::kInitiationMac1 - wire::wg::kMacLen);  // no cookie: mac2 0
        }
        ++by_kind[std::min<size_t>(kind, 4)];
        const sockaddr_in& dst = to[sent % to.size()];
        if (::sendto(src.fds[sent % src.fds.size()], msg, len, 0,
                     reinterpret_cast<const sockaddr*>(&dst), sizeof dst) < 0)
            ++send_errors;
        ++sent;
        if (sent % 1024 == 0) rx.drain(src.fds);
    }
    const double took = pace.elapsed();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    rx.drain(src.fds);
    std::string kinds_json;
    for (size_t k = 0; k < 5; ++k)
        kinds_json +=
            std::string(k ? ", " : "") + "\"" + kind_names[k] + "\": " + std::to_string(by_kind[k]);
    std::printf(
        "{\"attack\": \"session-flood\", \"sent\": %lu, \"send_errors\": %lu, \"ports\": %zu, "
        "\"sources\": %zu, \"seconds\": %.3f, \"per_s\": %.0f, \"by_kind\": {%s}, "
        "\"received\": %lu, \"max_received_bytes\": %zu}\n",
        static_cast<unsigned long>(sent), static_cast<unsigned long>(send_errors), to.size(),
        src.fds.size(), took, sent / std::max(took, 1e-9), kinds_json.c_str(),
        static_cast<unsigned long>(rx.count), rx.max_bytes);
    return 0;
}

std::optional<std::vector<uint8_t>> from_hex(std::string_view text) {
    if (text.size() % 2) return std::nullopt;
    std::vector<uint8_t> out(text.size() / 2);
    size_t used = 0;
    if (sodium_hex2bin(out.data(), out.size(), text.data(), text.size(), nullptr, &used, nullptr) !=
            0 ||
        used != out.size())
        return std::nullopt;
    return out;
}

int open_datagrams(const Args& a) {
    auto agent = read_key_file(a.one("agent-key"));
    if (!agent) die(agent.error());
    auto shared = shared_key(key_arg(a.one("server-key"), "server-key"), agent->secret_key);
    if (!shared) die("the server key is not a valid public key");
    std::string line;
    while (std::getline(std::cin, line)) {
        auto bytes = from_hex(line);
        if (!bytes || bytes->size() < 6 || !looks_like_envelope(*bytes)) {
            std::printf("unreadable not_an_envelope\n");
            continue;
        }
        const bool request = (*bytes)[5] == kToServer;
        auto plain = request ? open_request(*bytes, *shared) : open_reply(*bytes, *shared);
        if (!plain) {
            std::printf("unreadable %s\n", to_string(plain.error()));
            continue;
        }
        auto m = decode(*plain);
        if (!m) {
            std::printf("unreadable %s\n", to_string(m.error()));
            continue;
        }
        std::printf("%s %s %u\n", request ? "request" : "reply", to_string(type_of(m->body)),
                    m->request_id);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (sodium_init() < 0) die("libsodium failed to initialise");
    std::signal(SIGTERM, on_stop_signal);
    std::signal(SIGINT, on_stop_signal);
    if (argc < 2) die("usage: relay-attack control-flood|session-flood|open --OPTION VALUE ...");
    const std::string cmd = argv[1];
    const Args a = parse_args(argc, argv, 2);
    if (cmd == "control-flood") return control_flood(a);
    if (cmd == "session-flood") return session_flood(a);
    if (cmd == "open") return open_datagrams(a);
    die("unknown command " + cmd);
}
