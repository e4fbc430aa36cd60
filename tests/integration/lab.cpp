#include "lab.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace relay::lab {

namespace {

using Clock = std::chrono::steady_clock;

std::string errno_text(const std::string& what) {
    return what + ": " + std::strerror(errno);
}

std::string join(const std::vector<std::string>& argv) {
    std::string out;
    for (const auto& a : argv) out += (out.empty() ? "" : " ") + a;
    return out;
}

std::vector<char*> c_argv(std::vector<std::string>& argv) {
    std::vector<char*> out;
    for (auto& a : argv) out.push_back(a.data());
    out.push_back(nullptr);
    return out;
}

sockaddr_in to_sockaddr(SocketAddress a) {
    sockaddr_in s{};
    s.sin_family = AF_INET;
    s.sin_addr.s_addr = htonl(a.ip);
    s.sin_port = htons(a.port);
    return s;
}

}  // namespace

CommandResult run_command(const std::vector<std::string>& argv_in) {
    std::vector<std::string> argv = argv_in;
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error(errno_text("pipe"));
    FileDescriptor read_end(pipe_fds[0]), write_end(pipe_fds[1]);
    std::vector<char*> args = c_argv(argv);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error(errno_text("fork"));
    if (pid == 0) {
        ::dup2(write_end.get(), STDOUT_FILENO);
        ::dup2(write_end.get(), STDERR_FILENO);
        ::execvp(args[0], args.data());
        ::_exit(127);
    }
    write_end.reset();
    CommandResult result;
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::read(read_end.get(), buffer, sizeof buffer);
        if (n > 0) {
            result.output.append(buffer, static_cast<size_t>(n));
        } else if (n == 0 || errno != EINTR) {
            break;
        }
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

std::string run_checked(const std::vector<std::string>& argv) {
    CommandResult r = run_command(argv);
    if (r.exit_code != 0)
        throw std::runtime_error("`" + join(argv) + "` failed (exit " +
                                 std::to_string(r.exit_code) + "): " + r.output);
    return r.output;
}

bool program_available(const std::string& name) {
    return run_command({"sh", "-c", "command -v " + name}).exit_code == 0;
}

void enter_netns(const std::string& ns) {
    FileDescriptor fd(::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throw std::runtime_error(errno_text("open /run/netns/" + ns));
    if (::setns(fd.get(), CLONE_NEWNET) != 0) throw std::runtime_error(errno_text("setns " + ns));
}

// ---------------------------------------------------------------- namespaces, interfaces

NetworkNamespace::NetworkNamespace(std::string name) : name_(std::move(name)) {
    run_checked({"ip", "netns", "add", name_});
}

NetworkNamespace::~NetworkNamespace() {
    run_command({"ip", "netns", "del", name_});
}

std::string NetworkNamespace::ip(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {"ip", "-n", name_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_checked(argv);
}

std::string NetworkNamespace::exec(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {"ip", "netns", "exec", name_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_checked(argv);
}

VethPair::VethPair(const NetworkNamespace& ns_a, std::string name_a, const NetworkNamespace& ns_b,
                   std::string name_b)
    : ns_a_(ns_a.name()), name_a_(std::move(name_a)) {
    run_checked({"ip", "link", "add", name_a_, "netns", ns_a_, "type", "veth", "peer", "name",
                 name_b, "netns", ns_b.name()});
}

VethPair::~VethPair() {
    run_command({"ip", "-n", ns_a_, "link", "del", name_a_});
}

TempDir::TempDir(const std::string& prefix) {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error(errno_text("mkdtemp " + pattern));
    path_ = pattern;
}

TempDir::~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

// ---------------------------------------------------------------- processes

ChildProcess::ChildProcess(const std::vector<std::string>& argv_in,
                           const std::filesystem::path& log_file)
    : log_file_(log_file) {
    std::vector<std::string> argv = argv_in;
    std::vector<char*> args = c_argv(argv);
    FileDescriptor log(::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!log) throw std::runtime_error(errno_text("open " + log_file.string()));
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error(errno_text("fork"));
    if (pid_ == 0) {
        // If the test process dies without running destructors, take the child with it.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(126);
        ::dup2(log.get(), STDOUT_FILENO);
        ::dup2(log.get(), STDERR_FILENO);
        ::execvp(args[0], args.data());
        ::_exit(127);
    }
}

ChildProcess::~ChildProcess() {
    if (pid_ > 0) stop(std::chrono::seconds(5));
}

std::optional<int> ChildProcess::wait_for_exit(std::chrono::milliseconds timeout) {
    if (status_) return status_;
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        int status = 0;
        const pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
            status_ = status;
            return status_;
        }
        if (r < 0 && errno != EINTR) throw std::runtime_error(errno_text("waitpid"));
        if (Clock::now() >= deadline) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

bool ChildProcess::running() {
    return !wait_for_exit(std::chrono::milliseconds(0));
}

int ChildProcess::stop(std::chrono::milliseconds grace) {
    if (!status_) {
        ::kill(pid_, SIGTERM);
        if (!wait_for_exit(grace)) {
            ::kill(pid_, SIGKILL);
            wait_for_exit(std::chrono::hours(1));
        }
    }
    return *status_;
}

std::string ChildProcess::log() const {
    std::ifstream in(log_file_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// ---------------------------------------------------------------- sockets

UdpSocket UdpSocket::open_in(const std::string& ns, SocketAddress local) {
    return run_in_netns(ns, [local] {
        FileDescriptor fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        if (!fd) throw std::runtime_error(errno_text("socket"));
        // Room for a whole test burst: the default buffer (~208 KiB of skb truesize) overflows
        // after some 180 forwarded frames, which shows up as UDP RcvbufErrors.
        const int buffer_bytes = 8 << 20;
        if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &buffer_bytes,
                         sizeof buffer_bytes) != 0)
            throw std::runtime_error(errno_text("SO_RCVBUFFORCE"));
        sockaddr_in a = to_sockaddr(local);
        if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
            throw std::runtime_error(errno_text("bind " + format_socket_address(local)));
        socklen_t len = sizeof a;
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
        return UdpSocket(std::move(fd), {ntohl(a.sin_addr.s_addr), ntohs(a.sin_port)});
    });
}

void UdpSocket::send_to(SocketAddress destination, const uint8_t* data, size_t size) const {
    sockaddr_in a = to_sockaddr(destination);
    const ssize_t n = ::sendto(fd_.get(), data, size, 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
    if (n != static_cast<ssize_t>(size))
        throw std::runtime_error(errno_text("sendto " + format_socket_address(destination)));
}

std::optional<Datagram> UdpSocket::receive(std::chrono::milliseconds timeout) const {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    Datagram d;
    d.payload.resize(65536);
    sockaddr_in from{};
    socklen_t len = sizeof from;
    const ssize_t n = ::recvfrom(fd_.get(), d.payload.data(), d.payload.size(), MSG_DONTWAIT,
                                 reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) return std::nullopt;
    d.payload.resize(static_cast<size_t>(n));
    d.source = {ntohl(from.sin_addr.s_addr), ntohs(from.sin_port)};
    return d;
}

std::string http_get(const std::string& ns, SocketAddress server, const std::string& path,
                     std::chrono::milliseconds timeout) {
    return run_in_netns(ns, [&] {
        FileDescriptor fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!fd) throw std::runtime_error(errno_text("socket"));
        timeval tv{static_cast<time_t>(timeout.count() / 1000),
                   static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
        ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        sockaddr_in a = to_sockaddr(server);
        if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
            throw std::runtime_error(errno_text("connect " + format_socket_address(server)));
        const std::string request = "GET " + path +
                                    " HTTP/1.0\r\nHost: " + format_socket_address(server) +
                                    "\r\nConnection: close\r\n\r\n";
        if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(request.size()))
            throw std::runtime_error(errno_text("send HTTP request"));
        std::string response;
        char buffer[16384];
        for (;;) {
            const ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, 0);
            if (n == 0) break;
            if (n < 0) {
                if (errno == EINTR) continue;
                throw std::runtime_error(errno_text("receive HTTP response"));
            }
            response.append(buffer, static_cast<size_t>(n));
        }
        const size_t header_end = response.find("\r\n\r\n");
        if (header_end == std::string::npos || response.rfind("HTTP/1.", 0) != 0)
            throw std::runtime_error("not an HTTP response: " + response.substr(0, 200));
        const std::string status_line = response.substr(0, response.find("\r\n"));
        if (status_line.find(" 200 ") == std::string::npos)
            throw std::runtime_error("HTTP error: " + status_line);
        return response.substr(header_end + 4);
    });
}

uint16_t free_tcp_port(const std::string& ns, Ipv4 address) {
    return run_in_netns(ns, [address] {
        FileDescriptor fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in a = to_sockaddr({address, 0});
        if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
            throw std::runtime_error(errno_text("bind"));
        socklen_t len = sizeof a;
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
        return ntohs(a.sin_port);
    });
}

namespace {

// The PID in NAME when NAME is PREFIX-...-PID (namespaces) or PREFIX-PID-... (files).
std::optional<pid_t> pid_in(const std::string& text) {
    if (text.empty() || text.size() > 9 ||
        text.find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
    return static_cast<pid_t>(std::stol(text));
}

bool is_dead(pid_t pid) {
    return pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH;
}

}  // namespace

void remove_stale_leftovers(const std::string& prefix) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/run/netns", ec)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind(prefix + "-", 0) != 0) continue;
        const auto pid = pid_in(name.substr(name.rfind('-') + 1));
        if (pid && is_dead(*pid)) run_command({"ip", "netns", "del", name});
    }
    for (const std::filesystem::path& dir :
         {std::filesystem::temp_directory_path(), std::filesystem::path("/var/run/dpdk")}) {
        for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
            const std::string name = entry.path().filename().string();
            if (name.rfind(prefix + "-", 0) != 0) continue;
            const std::string rest = name.substr(prefix.size() + 1);
            const auto pid = pid_in(rest.substr(0, rest.find('-')));
            std::error_code ignored;
            if (pid && is_dead(*pid)) std::filesystem::remove_all(entry.path(), ignored);
        }
    }
}

}  // namespace relay::lab
