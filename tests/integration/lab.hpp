// Building blocks of the data-plane integration lab: network namespaces, veth pairs,
// child processes, temporary directories and UDP sockets living in a namespace.
// Every resource is owned by an RAII object whose destructor releases it, so a failing
// assertion (which returns from the test body) still leaves nothing behind.
#pragma once

#include <netinet/in.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "relay/ipc/unix_socket.hpp"
#include "relay/net.hpp"

namespace relay::lab {

using ipc::FileDescriptor;
using Bytes = std::vector<uint8_t>;

struct CommandResult {
    int exit_code = -1;  // -1 when the command did not exit normally
    std::string output;  // stdout and stderr, interleaved
};

// Runs argv[0] (looked up in PATH) without a shell and waits for it.
CommandResult run_command(const std::vector<std::string>& argv);
// Same, but throws std::runtime_error with the command line and its output unless it exits 0.
std::string run_checked(const std::vector<std::string>& argv);
bool program_available(const std::string& name);

// Moves the calling thread into network namespace `ns` (for run_in_netns).
void enter_netns(const std::string& ns);

// Runs `fn` on a thread that has joined the network namespace `ns` (sockets it creates stay
// in that namespace), and returns its result; an exception thrown by `fn` is rethrown here.
template <typename Fn>
auto run_in_netns(const std::string& ns, Fn fn) -> decltype(fn()) {
    using R = decltype(fn());
    std::optional<std::conditional_t<std::is_void_v<R>, int, R>> result;
    std::exception_ptr error;
    std::thread worker([&] {
        try {
            enter_netns(ns);
            if constexpr (std::is_void_v<R>) {
                fn();
                result.emplace(0);
            } else {
                result.emplace(fn());
            }
        } catch (...) {
            error = std::current_exception();
        }
    });
    worker.join();
    if (error) std::rethrow_exception(error);
    if constexpr (!std::is_void_v<R>) return std::move(*result);
}

// `ip netns add NAME` now, `ip netns del NAME` (and with it every interface in it) on
// destruction.
class NetworkNamespace {
  public:
    explicit NetworkNamespace(std::string name);
    ~NetworkNamespace();
    NetworkNamespace(const NetworkNamespace&) = delete;
    NetworkNamespace& operator=(const NetworkNamespace&) = delete;

    const std::string& name() const { return name_; }
    // `ip -n NAME args...`
    std::string ip(const std::vector<std::string>& args) const;
    // `ip netns exec NAME args...`
    std::string exec(const std::vector<std::string>& args) const;

  private:
    std::string name_;
};

// A veth pair whose ends live in two namespaces; deleted (both ends) on destruction.
class VethPair {
  public:
    VethPair(const NetworkNamespace& ns_a, std::string name_a, const NetworkNamespace& ns_b,
             std::string name_b);
    ~VethPair();
    VethPair(const VethPair&) = delete;
    VethPair& operator=(const VethPair&) = delete;

  private:
    std::string ns_a_;
    std::string name_a_;
};

// A fresh directory under the system temp dir, removed with its contents on destruction.
class TempDir {
  public:
    explicit TempDir(const std::string& prefix);
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }

  private:
    std::filesystem::path path_;
};

// A path (file or directory) someone else creates, removed with its contents on destruction.
class OwnedPath {
  public:
    explicit OwnedPath(std::filesystem::path path) : path_(std::move(path)) {}
    ~OwnedPath() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    OwnedPath(const OwnedPath&) = delete;
    OwnedPath& operator=(const OwnedPath&) = delete;
    const std::filesystem::path& path() const { return path_; }

  private:
    std::filesystem::path path_;
};

// A child process started with fork/exec whose stdout and stderr go to a log file. Killed
// with the test process (PR_SET_PDEATHSIG) and, at the latest, by its destructor.
class ChildProcess {
  public:
    ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& log_file);
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    pid_t pid() const { return pid_; }
    bool running();
    // The wait status once it has exited within `timeout`, std::nullopt if it is still running.
    std::optional<int> wait_for_exit(std::chrono::milliseconds timeout);
    // SIGTERM, then SIGKILL if it has not exited after `grace`. Returns the wait status.
    int stop(std::chrono::milliseconds grace);
    std::string log() const;

  private:
    pid_t pid_ = -1;
    std::optional<int> status_;
    std::filesystem::path log_file_;
};

struct Datagram {
    Bytes payload;
    SocketAddress source;
};

// A UDP socket bound to a fixed address inside a network namespace.
class UdpSocket {
  public:
    // Creates and binds the socket from a thread inside `ns`. Port 0 picks a free port.
    static UdpSocket open_in(const std::string& ns, SocketAddress local);

    SocketAddress local() const { return local_; }
    void send_to(SocketAddress destination, const uint8_t* data, size_t size) const;
    void send_to(SocketAddress destination, const Bytes& data) const {
        send_to(destination, data.data(), data.size());
    }
    // The next datagram, or std::nullopt when none arrives within `timeout`.
    std::optional<Datagram> receive(std::chrono::milliseconds timeout) const;

  private:
    UdpSocket(FileDescriptor fd, SocketAddress local) : fd_(std::move(fd)), local_(local) {}
    FileDescriptor fd_;
    SocketAddress local_;
};

// HTTP GET of http://HOST:PORT/PATH from inside `ns`; returns the body, throws on errors.
std::string http_get(const std::string& ns, SocketAddress server, const std::string& path,
                     std::chrono::milliseconds timeout);

// A TCP port nobody listens on inside `ns` (asked from the kernel there).
uint16_t free_tcp_port(const std::string& ns, Ipv4 address);

// Removes leftovers of earlier runs that were killed before their destructors ran, by
// processes that no longer exist: namespaces PREFIX-*-PID, and PREFIX-PID-* in the temp
// directory and in DPDK's runtime directory /var/run/dpdk.
void remove_stale_leftovers(const std::string& prefix);

}  // namespace relay::lab
