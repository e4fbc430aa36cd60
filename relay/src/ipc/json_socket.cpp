#include "relay/ipc/json_socket.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "relay/ipc/unix_socket.hpp"

namespace relay::ipc {

Result<std::string, std::string> json_socket_call(const std::string& path,
                                                  const std::string& request, int timeout_ms) {
    sockaddr_un sa{};
    if (path.size() >= sizeof sa.sun_path) return Unexpected{path + ": path too long"};
    FileDescriptor fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!fd) return Unexpected{std::string("socket: ") + std::strerror(errno)};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.c_str(), path.size());
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
        return Unexpected{path + ": " + std::strerror(errno)};
    if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size()))
        return Unexpected{path + ": send: " + std::strerror(errno)};
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0)
        return Unexpected{path + ": no reply within " + std::to_string(timeout_ms) + " ms"};
    std::vector<char> buffer(1 << 20);
    const ssize_t got = ::recv(fd.get(), buffer.data(), buffer.size(), 0);
    if (got <= 0) return Unexpected{path + ": connection closed without a reply"};
    return std::string(buffer.data(), static_cast<size_t>(got));
}

}  // namespace relay::ipc
