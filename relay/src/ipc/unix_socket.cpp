// AF_UNIX SOCK_SEQPACKET transport of the data-plane IPC protocol.  SEQPACKET keeps message
// boundaries (one request = one datagram) on a connection, so a hang-up is visible and replies
// go back to the client that asked.
#include "relay/ipc/unix_socket.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <exception>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace relay::ipc {
namespace {

using Clock = std::chrono::steady_clock;

std::string errno_text(int error) {
    return std::generic_category().message(error);
}

[[noreturn]] void throw_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

// A filled-in sockaddr_un, or nullopt when the path does not fit sun_path.
struct UnixAddress {
    sockaddr_un address{};
    socklen_t length = 0;

    const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&address); }
};

std::optional<UnixAddress> unix_address(const std::string& path) {
    UnixAddress a;
    if (path.empty() || path.size() >= sizeof(a.address.sun_path)) return std::nullopt;
    a.address.sun_family = AF_UNIX;
    std::memcpy(a.address.sun_path, path.data(), path.size());
    a.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
    return a;
}

// mkdir -p of the socket's directory; existing components are left as they are.
void make_parent_directories(const std::string& path) {
    std::filesystem::path parent = std::filesystem::path(path).parent_path();
    std::filesystem::path partial;
    for (const auto& component : parent) {
        partial /= component;
        if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
            throw_errno("create directory " + partial.string());
        }
    }
}

// A socket file survives a crashed server.  Remove it only when nothing answers on it, so that
// a second data plane cannot steal a live one's socket.
void remove_stale_socket(const std::string& path, const UnixAddress& address) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return;
        throw_errno("stat " + path);
    }
    if (!S_ISSOCK(st.st_mode)) throw std::runtime_error(path + " exists and is not a socket");

    FileDescriptor probe(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!probe) throw_errno("socket");
    if (::connect(probe.get(), address.get(), address.length) == 0 || errno == EAGAIN ||
        errno == EINPROGRESS || errno == EPROTOTYPE) {
        // EAGAIN: a full backlog; EPROTOTYPE: a live socket of another type.  Both are alive.
        throw std::runtime_error("another process is serving " + path);
    }
    if (errno == ENOENT) return;  // removed meanwhile
    if (errno != ECONNREFUSED) throw_errno("probe " + path);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno("remove stale socket " + path);
}

void set_send_timeout(int fd, int timeout_ms) {
    timeval tv{};
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    if (::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
        throw_errno("setsockopt SO_SNDTIMEO");
    }
}

struct Datagram {
    ssize_t length = 0;      // < 0: error (errno set); 0: peer hung up
    bool truncated = false;  // longer than the buffer; `length` is then its real length
};

// Reads one datagram without blocking.  MSG_TRUNC makes the kernel report the real length of a
// datagram that did not fit, and the rest of it is discarded.
Datagram receive_datagram(int fd, std::vector<uint8_t>& buffer) {
    iovec iov{buffer.data(), buffer.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    Datagram d;
    d.length = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_TRUNC);
    d.truncated = d.length > 0 && ((msg.msg_flags & MSG_TRUNC) != 0 ||
                                   static_cast<size_t>(d.length) > buffer.size());
    return d;
}

// Milliseconds left until `deadline` for poll(2), rounded up; -1 for "no deadline".
int poll_timeout(std::optional<Clock::time_point> deadline) {
    if (!deadline) return -1;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now()).count();
    return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

// Waits for `events` on fd until the deadline.  Returns the revents, 0 on timeout.
short wait_for(int fd, short events, std::optional<Clock::time_point> deadline) {
    for (;;) {
        pollfd p{fd, events, 0};
        int n = ::poll(&p, 1, poll_timeout(deadline));
        if (n > 0) return p.revents;
        if (n == 0) return 0;
        if (errno != EINTR) return POLLERR;
    }
}

Response oversized_request_reply(std::span<const uint8_t> first_bytes) {
    Response r;
    r.status = Status::malformed;
    r.type = MsgType{0};
    r.error = "request larger than " + std::to_string(kMaxMessageBytes) + " bytes";
    if (auto echo = peek_header(first_bytes)) {
        r.request_id = echo->request_id;
        r.type = echo->type;
    }
    return r;
}

}  // namespace

// ---------------------------------------------------------------- FileDescriptor

FileDescriptor& FileDescriptor::operator=(FileDescriptor&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
}

void FileDescriptor::reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

// ---------------------------------------------------------------- SeqpacketServer

SeqpacketServer::SeqpacketServer(std::string path, mode_t mode)
    : path_(std::move(path)), receive_buffer_(kMaxMessageBytes) {
    std::optional<UnixAddress> address = unix_address(path_);
    if (!address) throw std::runtime_error("socket path is empty or too long: " + path_);
    make_parent_directories(path_);
    remove_stale_socket(path_, *address);

    listener_.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!listener_) throw_errno("socket");
    if (::bind(listener_.get(), address->get(), address->length) != 0) {
        if (errno == EADDRINUSE) throw std::runtime_error("another process is serving " + path_);
        throw_errno("bind " + path_);
    }
    try {
        struct stat st {};
        if (::stat(path_.c_str(), &st) != 0) throw_errno("stat " + path_);
        bound_device_ = st.st_dev;
        bound_inode_ = st.st_ino;
        if (::listen(listener_.get(), static_cast<int>(kMaxClients)) != 0) {
            throw_errno("listen " + path_);
        }
        if (::chmod(path_.c_str(), mode) != 0) throw_errno("chmod " + path_);
    } catch (...) {
        close_and_unlink();
        throw;
    }
}

SeqpacketServer::~SeqpacketServer() {
    close_and_unlink();
}

SeqpacketServer::SeqpacketServer(SeqpacketServer&& other) noexcept
    : path_(std::exchange(other.path_, {})),
      listener_(std::move(other.listener_)),
      clients_(std::exchange(other.clients_, {})),
      receive_buffer_(std::exchange(other.receive_buffer_, {})),
      bound_device_(other.bound_device_),
      bound_inode_(other.bound_inode_) {}

SeqpacketServer& SeqpacketServer::operator=(SeqpacketServer&& other) noexcept {
    if (this != &other) {
        close_and_unlink();
        path_ = std::exchange(other.path_, {});
        listener_ = std::move(other.listener_);
        clients_ = std::exchange(other.clients_, {});
        receive_buffer_ = std::exchange(other.receive_buffer_, {});
        bound_device_ = other.bound_device_;
        bound_inode_ = other.bound_inode_;
    }
    return *this;
}

void SeqpacketServer::close_and_unlink() {
    clients_.clear();
    if (!listener_) return;
    listener_.reset();
    // Only our own socket file: a successor may already have replaced it.
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == bound_device_ &&
        st.st_ino == bound_inode_) {
        ::unlink(path_.c_str());
    }
}

void SeqpacketServer::poll_once(int timeout_ms, const Handler& handler) {
    if (receive_buffer_.size() != kMaxMessageBytes) receive_buffer_.resize(kMaxMessageBytes);
    std::vector<pollfd> fds;
    fds.reserve(1 + clients_.size());
    fds.push_back({listener_.get(), POLLIN, 0});
    for (const FileDescriptor& client : clients_) fds.push_back({client.get(), POLLIN, 0});

    int ready = ::poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0) {
        if (errno == EINTR) return;
        throw_errno("poll " + path_);
    }
    if (ready == 0) return;

    // fds[i + 1] is clients_[i] as it was before poll; drop the gone ones afterwards.
    std::vector<bool> gone(clients_.size(), false);
    for (size_t i = 0; i < gone.size(); ++i) {
        short revents = fds[i + 1].revents;
        if (revents & POLLIN) {
            gone[i] = !serve_client(clients_[i].get(), handler);
        } else if (revents & (POLLHUP | POLLERR | POLLNVAL)) {
            gone[i] = true;
        }
    }
    for (size_t i = gone.size(); i-- > 0;) {
        if (gone[i]) clients_.erase(clients_.begin() + static_cast<ptrdiff_t>(i));
    }
    if (fds[0].revents & POLLIN) accept_clients();
}

void SeqpacketServer::accept_clients() {
    for (;;) {
        // Blocking socket (no SOCK_NONBLOCK), so that SO_SNDTIMEO bounds a send to a slow client;
        // reads use MSG_DONTWAIT and happen only when poll says there is a datagram.
        FileDescriptor client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!client) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return;  // EAGAIN: none left; EMFILE and the like: try again on the next poll
        }
        if (clients_.size() >= kMaxClients) continue;  // closes the newest one
        try {
            set_send_timeout(client.get(), kSendTimeoutMs);
        } catch (const std::system_error&) {
            continue;  // drop a client we could not configure rather than risk blocking on it
        }
        clients_.push_back(std::move(client));
    }
}

bool SeqpacketServer::serve_client(int fd, const Handler& handler) {
    Datagram d = receive_datagram(fd, receive_buffer_);
    if (d.length < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    if (d.length == 0) return false;  // SEQPACKET: zero bytes means the peer hung up

    std::vector<uint8_t> reply;
    if (d.truncated) {
        reply = encode(oversized_request_reply(receive_buffer_));
    } else {
        reply = handler(
            std::span<const uint8_t>(receive_buffer_.data(), static_cast<size_t>(d.length)));
    }
    if (reply.empty()) return true;
    ssize_t sent = ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    return sent == static_cast<ssize_t>(reply.size());
}

// ---------------------------------------------------------------- DataplaneClient

Result<DataplaneClient, std::string> DataplaneClient::connect(const std::string& path) {
    std::optional<UnixAddress> address = unix_address(path);
    if (!address) return Unexpected{"socket path is empty or too long: " + path};
    FileDescriptor fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!fd) return Unexpected{"socket: " + errno_text(errno)};
    // Bounds connect() on a full backlog, and send() on a full queue.
    timeval tv{2, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd.get(), address->get(), address->length) != 0) {
        int error = errno;
        if (error == EAGAIN) return Unexpected{"connect to " + path + ": timed out"};
        return Unexpected{"connect to " + path + ": " + errno_text(error)};
    }
    return DataplaneClient(std::move(fd), path);
}

Result<Response, std::string> DataplaneClient::call(const RequestBody& body, int timeout_ms) {
    if (!fd_) return Unexpected{std::string("not connected to the data plane")};
    const uint32_t request_id = next_request_id_++;
    if (next_request_id_ == 0) next_request_id_ = 1;  // 0 marks replies to unreadable requests
    const MsgType type = type_of(body);
    const std::string what =
        std::string(to_string(type)) + " request " + std::to_string(request_id) + " to " + path_;

    std::optional<Clock::time_point> deadline;
    if (timeout_ms >= 0) deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);

    std::vector<uint8_t> datagram = encode(Request{request_id, body});
    if (wait_for(fd_.get(), POLLOUT, deadline) == 0) {
        return Unexpected{"timeout: could not send " + what};
    }
    ssize_t sent = ::send(fd_.get(), datagram.data(), datagram.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent != static_cast<ssize_t>(datagram.size())) {
        int error = errno;
        if (error == EPIPE || error == ECONNRESET) {
            return Unexpected{"connection closed by the data plane: " + what};
        }
        return Unexpected{"send " + what + ": " + errno_text(error)};
    }

    receive_buffer_.resize(kMaxMessageBytes);
    for (;;) {
        if (wait_for(fd_.get(), POLLIN, deadline) == 0) {
            return Unexpected{"timeout: no reply to " + what + " within " +
                              std::to_string(timeout_ms) + " ms"};
        }
        Datagram d = receive_datagram(fd_.get(), receive_buffer_);
        if (d.length < 0) {
            int error = errno;
            if (error == EAGAIN || error == EWOULDBLOCK || error == EINTR) continue;
            return Unexpected{"receive reply to " + what + ": " + errno_text(error)};
        }
        if (d.length == 0) return Unexpected{"connection closed by the data plane: " + what};
        if (d.truncated) {
            return Unexpected{"reply to " + what + " larger than " +
                              std::to_string(kMaxMessageBytes) + " bytes"};
        }
        std::span<const uint8_t> bytes(receive_buffer_.data(), static_cast<size_t>(d.length));
        auto response = decode_response(bytes);
        if (!response) {
            // Skip a late (and broken) reply to an earlier call; report one that is ours.
            auto echo = peek_header(bytes);
            if (echo && echo->request_id != request_id && echo->request_id != 0) continue;
            return Unexpected{"malformed reply to " + what + ": " + response.error().message};
        }
        if (response->request_id != request_id) continue;  // late reply to a timed-out call
        if (response->type != type) {
            return Unexpected{"reply to " + what + " has type " +
                              std::to_string(static_cast<uint16_t>(response->type))};
        }
        return std::move(*response);
    }
}

// ---------------------------------------------------------------- handle_datagram

std::vector<uint8_t> handle_datagram(std::span<const uint8_t> in,
                                     const std::function<Response(const Request&)>& dispatch) {
    auto request = decode_request(in);
    if (!request) return encode(error_response(request.error()));

    const MsgType type = type_of(request->body);
    try {
        Response response = dispatch(*request);
        response.request_id = request->request_id;
        response.type = type;
        return encode(response);
    } catch (const std::exception& e) {
        Response failure;
        failure.request_id = request->request_id;
        failure.type = type;
        failure.status = Status::internal;
        failure.error = std::string("request failed in the data plane: ") + e.what();
        return encode(failure);
    }
}

}  // namespace relay::ipc
