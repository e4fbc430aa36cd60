// The client side of the control protocol (docs/PROTOCOL.md): one UDP socket, sealed
// requests to relay-control's two ports, replies matched by request id, and
// notifications (punch, relay offer) queued for the caller.  relay-peer is built on
// it; the integration tests and relay-bench use it as their test client.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "relay/control/envelope.hpp"
#include "relay/control/messages.hpp"
#include "relay/ipc/unix_socket.hpp"
#include "relay/net.hpp"
#include "relay/result.hpp"

namespace relay::peer {

struct ControlEndpoint {
    Ipv4 address = 0;  // control's management address
    std::array<uint16_t, 2> ports = {3478, 3479};
    PublicKey server_key{};  // the node's public key (relay pubkey KEYFILE)
};

class ControlClient {
  public:
    // Binds a UDP socket on `local` (port 0: any).  Errors name what failed.
    static Result<ControlClient, std::string> open(const control::KeyPair& agent,
                                                   const ControlEndpoint& server,
                                                   SocketAddress local = {});

    // Sends `body` to control port `port_index` and waits up to timeout_ms for the reply
    // with the same request id (notifications that arrive meanwhile are queued).  The
    // error says what happened: timeout, a reply that failed to open, or transport.
    Result<control::Message, std::string> request(uint8_t port_index, const control::Body& body,
                                                  int timeout_ms = 1000);
    // Sends without waiting (for tests of replay and loss).  Returns the sealed datagram.
    std::vector<uint8_t> send(uint8_t port_index, const control::Body& body);
    void send_raw(uint8_t port_index, std::span<const uint8_t> datagram);
    // The next message of any kind (reply or notification), waiting up to timeout_ms;
    // queued notifications first.  For event loops that send() and match replies themselves.
    std::optional<control::Message> poll(int timeout_ms);
    // The next notification (punch, relay offer), waiting up to timeout_ms.
    std::optional<control::Message> next_notification(int timeout_ms);

    // The sealed request bytes for `body` (timestamp now, next request id).
    std::vector<uint8_t> seal(const control::Body& body);
    // Opens and decodes a datagram from control; rejects replays of notifications.
    Result<control::Message, std::string> open(std::span<const uint8_t> datagram);

    SocketAddress local_address() const;
    int fd() const { return fd_.get(); }
    const control::KeyPair& keys() const { return keys_; }
    const control::SharedKey& shared_key() const { return shared_; }
    uint32_t last_rtt_us() const { return rtt_us_; }
    uint32_t next_request_id() const { return next_request_id_; }

  private:
    ControlClient(ipc::FileDescriptor fd, control::KeyPair keys, ControlEndpoint server,
                  control::SharedKey shared)
        : fd_(std::move(fd)), keys_(keys), server_(server), shared_(shared) {}
    // One datagram from control within timeout_ms, opened; nullopt on timeout.
    std::optional<control::Message> receive(int timeout_ms, std::string& error);

    ipc::FileDescriptor fd_;
    control::KeyPair keys_;
    ControlEndpoint server_;
    control::SharedKey shared_{};
    uint32_t next_request_id_ = 1;
    uint32_t rtt_us_ = 0;
    std::deque<control::Message> notifications_;
    std::deque<std::pair<uint64_t, control::Nonce>> seen_;  // notification nonces (replays)
};

uint64_t unix_ms_now();

}  // namespace relay::peer
