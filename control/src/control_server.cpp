#include "control_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/exposer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "admin_api.hpp"
#include "key_agreement_worker.hpp"
#include "relay/ipc/unix_socket.hpp"

namespace relay::control {

namespace {

constexpr int kPollMs = 10;
constexpr uint64_t kTickMs = 100;
constexpr uint64_t kHealthMs = 1000;
constexpr uint64_t kReconcileMs = 10'000;
constexpr int kDatagramsPerWake = 64;
// Unknown senders' key agreements out on the crypto thread at once (admitted by the
// budget, not yet back): more are refused (key_agreement_queue_full).  The budget's
// burst is a tenth of a second's worth, so this is reached only if that thread stalls;
// it bounds the memory they hold (each at most one envelope, 1400 bytes).
constexpr size_t kKeyAgreementsInFlight = 256;

uint64_t wall_ms() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
}

uint64_t monotonic_ms() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
}

// Both clocks (control_core.hpp): timers on the monotonic one, so that a step of the wall
// clock (NTP) expires nothing; the wall clock for what the protocol carries.
Clock clock_now() {
    return Clock{monotonic_ms(), wall_ms()};
}

ipc::FileDescriptor bind_udp(Ipv4 ip, uint16_t port) {
    ipc::FileDescriptor fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) throw std::runtime_error(std::string("UDP socket: ") + std::strerror(errno));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(ip);
    sa.sin_port = htons(port);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
        throw std::runtime_error("cannot bind UDP " + format_socket_address({ip, port}) + ": " +
                                 std::strerror(errno));
    return fd;
}

}  // namespace

struct ControlServer::Impl {
    Config config;
    DataplaneLink dataplane;
    std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
    ControlMetrics metrics{registry};
    ControlCore core;
    KeyAgreementWorker crypto;  // the crypto thread: unknown senders' key agreements
    std::vector<KeyAgreementRequest> agreements;
    std::vector<KeyAgreementResult> agreed;
    std::unique_ptr<prometheus::Exposer> exposer;
    ipc::FileDescriptor udp[2];
    ipc::SeqpacketServer admin;
    uint64_t started_ms = monotonic_ms();
    uint64_t dataplane_instance = 0;  // 0: never reached
    bool adopted = false;
    std::vector<uint8_t> buffer = std::vector<uint8_t>(65536);

    Impl(const Config& c, KeyPair keys)
        : config(c),
          dataplane(c.dataplane.ipc_socket),
          core(config, keys, dataplane, metrics),
          crypto(keys.secret_key),
          admin(c.control.admin_socket, 0660) {
        core.defer_key_agreements(kKeyAgreementsInFlight);
        for (int i = 0; i < 2; ++i) udp[i] = bind_udp(c.control.listen_address, c.control.ports[i]);
        const std::string listen = format_socket_address(c.control.metrics_listen);
        try {
            exposer = std::make_unique<prometheus::Exposer>(listen, 1);
        } catch (const std::exception& e) {
            throw std::runtime_error("cannot serve metrics on " + listen + ": " + e.what());
        }
        exposer->RegisterCollectable(registry);
    }

    void send(const Outbox& out) {
        for (const OutDatagram& d : out) {
            sockaddr_in to{};
            to.sin_family = AF_INET;
            to.sin_addr.s_addr = htonl(d.to.ip);
            to.sin_port = htons(d.to.port);
            // A full socket buffer drops the datagram: UDP, and peers retry.
            ::sendto(udp[d.port_index].get(), d.bytes.data(), d.bytes.size(), MSG_DONTWAIT,
                     reinterpret_cast<sockaddr*>(&to), sizeof to);
        }
    }

    void receive(int index, Outbox& out) {
        for (int n = 0; n < kDatagramsPerWake; ++n) {
            sockaddr_in from{};
            socklen_t len = sizeof from;
            const ssize_t got = ::recvfrom(udp[index].get(), buffer.data(), buffer.size(), 0,
                                           reinterpret_cast<sockaddr*>(&from), &len);
            if (got < 0) return;
            core.handle(static_cast<uint8_t>(index),
                        {ntohl(from.sin_addr.s_addr), ntohs(from.sin_port)},
                        std::span<const uint8_t>(buffer.data(), static_cast<size_t>(got)),
                        clock_now(), out);
        }
    }

    // Key agreements the crypto thread finished: their messages go on (the core opens,
    // checks replays, authorises and answers them here, on the loop thread).
    void complete_agreements(Outbox& out) {
        agreed.clear();
        crypto.take_results(agreed);
        for (KeyAgreementResult& r : agreed)
            core.complete_key_agreement(std::move(r), clock_now(), out);
    }

    // Health check: notices the data plane coming up (adopt its sessions the first time,
    // learn the relay address) and restarting (program every session again).
    void check_dataplane(uint64_t now_ms) {
        const auto health = dataplane.health();
        metrics.dataplane_up.Set(health ? 1 : 0);
        if (!health) return;
        if (core.relay_address() == 0 && !health->relay_addresses.empty())
            core.set_relay_address(health->relay_addresses.front());
        if (!adopted) {
            if (auto live = dataplane.list_sessions()) {
                core.adopt(*live, now_ms);
                adopted = true;
                size_t orphans = 0;
                for (const auto& [id, a] : core.allocations())
                    orphans += a.adopted && a.network == kNoNetwork;
                std::printf(
                    "relay-control: data plane up, %zu relay sessions read back, %zu of them "
                    "naming no configured network (released after peer_timeout_s: "
                    "reason=unknown_network)\n",
                    live->size(), orphans);
                std::fflush(stdout);
            }
        } else if (health->instance_id != dataplane_instance) {
            const size_t failed = core.reprogram();
            std::printf(
                "relay-control: data plane restarted; %zu sessions programmed again, %zu "
                "failed\n",
                core.allocations().size() - failed, failed);
            std::fflush(stdout);
        }
        dataplane_instance = health->instance_id;
    }

    void reconcile(uint64_t now_ms) {
        const auto before = dataplane.health();
        if (!before || before->instance_id != dataplane_instance) return;
        auto live = dataplane.list_sessions();
        const auto after = dataplane.health();
        // Only a listing of the same data-plane instance may release what it lacks.
        if (live && after && after->instance_id == dataplane_instance)
            core.reconcile(*live, now_ms);
    }

    void run(const std::atomic<bool>& stop) {
        uint64_t last_tick = 0, last_health = 0, last_reconcile = monotonic_ms();
        Outbox out;
        while (!stop.load()) {
            pollfd fds[3] = {{udp[0].get(), POLLIN, 0},
                             {udp[1].get(), POLLIN, 0},
                             {crypto.ready_fd(), POLLIN, 0}};
            ::poll(fds, 3, kPollMs);
            out.clear();
            if (fds[2].revents & POLLIN) complete_agreements(out);
            for (int i = 0; i < 2; ++i)
                if (fds[i].revents & POLLIN) receive(i, out);
            core.take_key_agreements(agreements);
            crypto.submit(agreements);
            const Clock clock = clock_now();
            const uint64_t now = clock.monotonic_ms;
            if (now - last_health >= kHealthMs) {
                last_health = now;
                check_dataplane(now);
            }
            if (adopted && now - last_reconcile >= kReconcileMs) {
                last_reconcile = now;
                reconcile(now);
            }
            if (now - last_tick >= kTickMs) {
                last_tick = now;
                core.tick(clock, out);
            }
            send(out);
            admin.poll_once(0, [&](std::span<const uint8_t> in) {
                return handle_admin_datagram(in, core, dataplane, monotonic_ms(), started_ms);
            });
        }
    }
};

ControlServer::ControlServer(const Config& config, KeyPair server_keys)
    : impl_(std::make_unique<Impl>(config, server_keys)) {}

ControlServer::~ControlServer() = default;

void ControlServer::run(const std::atomic<bool>& stop) {
    impl_->run(stop);
}

}  // namespace relay::control
