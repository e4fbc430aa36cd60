// Transport of the data-plane IPC protocol: AF_UNIX SOCK_SEQPACKET, one request datagram
// answered by one response datagram (docs/PROTOCOL.md).  The data plane runs a
// SeqpacketServer; control uses a DataplaneClient.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "relay/ipc/dataplane_protocol.hpp"
#include "relay/result.hpp"

namespace relay::ipc {

// Owns one file descriptor and closes it on destruction.  -1 means "none".
class FileDescriptor {
  public:
    FileDescriptor() = default;
    explicit FileDescriptor(int fd) : fd_(fd) {}
    ~FileDescriptor() { reset(); }
    FileDescriptor(FileDescriptor&& other) noexcept : fd_(other.release()) {}
    FileDescriptor& operator=(FileDescriptor&& other) noexcept;
    FileDescriptor(const FileDescriptor&) = delete;
    FileDescriptor& operator=(const FileDescriptor&) = delete;

    int get() const { return fd_; }
    bool valid() const { return fd_ >= 0; }
    explicit operator bool() const { return valid(); }
    int release() {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }
    void reset(int fd = -1);

  private:
    int fd_ = -1;
};

// A listening SOCK_SEQPACKET socket at a filesystem path, served by calling poll_once() from
// one thread (the data plane's control thread).  Not thread-safe.
class SeqpacketServer {
  public:
    // Gets one request datagram, returns the reply datagram (empty = send nothing).  Exceptions
    // propagate out of poll_once(); the client stays connected.
    using Handler = std::function<std::vector<uint8_t>(std::span<const uint8_t>)>;

    static constexpr size_t kMaxClients = 64;
    static constexpr int kSendTimeoutMs = 1000;

    // Creates the parent directory if missing (mode 0755), replaces a stale socket file (one
    // nobody listens on), binds, listens and sets `mode` on the socket file.  Throws
    // std::runtime_error if another process is serving `path`, if `path` exists and is not a
    // socket, or on any system-call failure.
    explicit SeqpacketServer(std::string path, mode_t mode = 0660);
    // Closes every socket and removes the socket file (if it is still the one we bound).
    ~SeqpacketServer();
    SeqpacketServer(SeqpacketServer&& other) noexcept;
    SeqpacketServer& operator=(SeqpacketServer&& other) noexcept;
    SeqpacketServer(const SeqpacketServer&) = delete;
    SeqpacketServer& operator=(const SeqpacketServer&) = delete;

    // Waits up to timeout_ms (-1 = forever, 0 = do not wait) for activity, then accepts new
    // clients (at most kMaxClients; beyond that the newest is closed at once), reads one datagram
    // from each readable client, hands it to `handler` and sends the reply.  A datagram larger
    // than kMaxMessageBytes gets a malformed Response without reaching the handler.  A client
    // that hangs up, or whose reply cannot be sent within kSendTimeoutMs, is dropped.
    void poll_once(int timeout_ms, const Handler& handler);

    const std::string& path() const { return path_; }
    size_t client_count() const { return clients_.size(); }

  private:
    void accept_clients();
    // Returns false when the client is gone (hung up, error, or reply not sendable).
    bool serve_client(int fd, const Handler& handler);
    void close_and_unlink();

    std::string path_;
    FileDescriptor listener_;
    std::vector<FileDescriptor> clients_;
    std::vector<uint8_t> receive_buffer_;
    dev_t bound_device_ = 0;  // identity of the socket file we created, so that the destructor
    ino_t bound_inode_ = 0;   // does not remove a successor's socket
};

// Control's end: a connected SOCK_SEQPACKET socket to the data plane.  Not thread-safe.
class DataplaneClient {
  public:
    // Errors name the path and the reason ("connection refused", "no such file or directory").
    static Result<DataplaneClient, std::string> connect(const std::string& path);

    // Sends one request with the next request id and waits up to timeout_ms for the response
    // that echoes it (late replies to earlier, timed-out calls are skipped).  A response with
    // status != ok is a successful call: its status and error say what the data plane refused.
    // The error string says what went wrong in transport: send failure, timeout, connection
    // closed, or a malformed reply (with the decoder's message).
    Result<Response, std::string> call(const RequestBody& body, int timeout_ms = 2000);

    const std::string& path() const { return path_; }

  private:
    DataplaneClient(FileDescriptor fd, std::string path)
        : fd_(std::move(fd)), path_(std::move(path)) {}

    FileDescriptor fd_;
    std::string path_;
    uint32_t next_request_id_ = 1;
    std::vector<uint8_t> receive_buffer_;
};

// The data plane's request handling around `dispatch`: decodes the request, calls dispatch and
// encodes its response, forcing the request's id and type into it.  An undecodable request
// gets an error_response() of the DecodeError; an exception from dispatch (or a response that
// cannot be encoded) gets Status::internal.  Always returns a reply.
std::vector<uint8_t> handle_datagram(std::span<const uint8_t> in,
                                     const std::function<Response(const Request&)>& dispatch);

}  // namespace relay::ipc
