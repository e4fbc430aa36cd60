#include "relay/peer/control_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace relay::peer {

using namespace relay::control;

namespace {
constexpr uint64_t kWindowMs = 30'000;  // the server's default timestamp window
constexpr size_t kMaxSeen = 4096;
}  // namespace

uint64_t unix_ms_now() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
}

Result<ControlClient, std::string> ControlClient::open(const KeyPair& agent,
                                                       const ControlEndpoint& server,
                                                       SocketAddress local) {
    auto shared = control::shared_key(server.server_key, agent.secret_key);
    if (!shared) return Unexpected{std::string("server public key is not a valid X25519 key")};
    ipc::FileDescriptor fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd) return Unexpected{std::string("UDP socket: ") + std::strerror(errno)};
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(local.ip);
    sa.sin_port = htons(local.port);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
        return Unexpected{"cannot bind " + format_socket_address(local) + ": " +
                          std::strerror(errno)};
    return ControlClient(std::move(fd), agent, server, *shared);
}

SocketAddress ControlClient::local_address() const {
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&sa), &len);
    return {ntohl(sa.sin_addr.s_addr), ntohs(sa.sin_port)};
}

std::vector<uint8_t> ControlClient::seal(const Body& body) {
    const Message m{unix_ms_now(), next_request_id_++, body};
    return seal_request(keys_.public_key, shared_, encode(m));
}

void ControlClient::send_raw(uint8_t port_index, std::span<const uint8_t> datagram) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(server_.address);
    to.sin_port = htons(server_.ports[port_index & 1]);
    ::sendto(fd_.get(), datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&to),
             sizeof to);
}

std::vector<uint8_t> ControlClient::send(uint8_t port_index, const Body& body) {
    auto sealed = seal(body);
    send_raw(port_index, sealed);
    return sealed;
}

Result<Message, std::string> ControlClient::open(std::span<const uint8_t> datagram) {
    auto plaintext = open_reply(datagram, shared_);
    if (!plaintext) return Unexpected{std::string("reply: ") + to_string(plaintext.error())};
    auto m = decode(*plaintext);
    if (!m) return Unexpected{std::string("reply: ") + to_string(m.error())};
    if (m->request_id == 0) {
        // A notification has no request to match: its nonce and timestamp stop replays.
        const uint64_t now = unix_ms_now();
        const uint64_t skew = m->timestamp_ms > now ? m->timestamp_ms - now : now - m->timestamp_ms;
        if (skew > kWindowMs) return Unexpected{std::string("notification: stale timestamp")};
        const Nonce nonce = *reply_nonce(datagram);
        while (!seen_.empty() &&
               (seen_.size() >= kMaxSeen || now - seen_.front().first > 2 * kWindowMs))
            seen_.pop_front();
        for (const auto& s : seen_)
            if (s.second == nonce) return Unexpected{std::string("notification: replayed")};
        seen_.emplace_back(now, nonce);
    }
    return std::move(*m);
}

std::optional<Message> ControlClient::receive(int timeout_ms, std::string& error) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return std::nullopt;
    std::vector<uint8_t> buffer(2048);
    sockaddr_in from{};
    socklen_t len = sizeof from;
    const ssize_t got = ::recvfrom(fd_.get(), buffer.data(), buffer.size(), 0,
                                   reinterpret_cast<sockaddr*>(&from), &len);
    if (got < 0) {
        error = std::string("recv: ") + std::strerror(errno);
        return std::nullopt;
    }
    buffer.resize(static_cast<size_t>(got));
    auto m = open(buffer);
    if (!m) {
        error = m.error();
        return std::nullopt;
    }
    return std::move(*m);
}

Result<Message, std::string> ControlClient::request(uint8_t port_index, const Body& body,
                                                    int timeout_ms) {
    const uint32_t id = next_request_id_;
    const auto start = std::chrono::steady_clock::now();
    send(port_index, body);
    const auto deadline = start + std::chrono::milliseconds(timeout_ms);
    std::string last_error = "timeout after " + std::to_string(timeout_ms) + " ms";
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                              deadline - std::chrono::steady_clock::now())
                              .count();
        if (left <= 0) return Unexpected{last_error};
        std::string error;
        auto m = receive(static_cast<int>(left), error);
        if (!m) {
            if (!error.empty()) last_error = error;
            continue;
        }
        if (m->request_id == 0) {
            notifications_.push_back(std::move(*m));
            continue;
        }
        if (m->request_id != id) continue;  // a late reply to an earlier request
        rtt_us_ = static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                            std::chrono::steady_clock::now() - start)
                                            .count());
        return std::move(*m);
    }
}

std::optional<Message> ControlClient::poll(int timeout_ms) {
    if (!notifications_.empty()) {
        Message m = std::move(notifications_.front());
        notifications_.pop_front();
        return m;
    }
    std::string error;
    return receive(timeout_ms, error);
}

std::optional<Message> ControlClient::next_notification(int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        if (!notifications_.empty()) {
            Message m = std::move(notifications_.front());
            notifications_.pop_front();
            return m;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                              deadline - std::chrono::steady_clock::now())
                              .count();
        if (left <= 0) return std::nullopt;
        std::string error;
        auto m = receive(static_cast<int>(left), error);
        if (m && m->request_id == 0) return m;
    }
}

}  // namespace relay::peer
