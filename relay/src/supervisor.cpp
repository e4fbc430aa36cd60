#include "supervisor.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

namespace relay {

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<int> g_stop_signal{0};

void on_stop_signal(int sig) {
    g_stop_signal.store(sig);
}

struct Child {
    const ChildSpec* spec;
    pid_t pid = -1;
    Clock::time_point started{};
    Clock::time_point restart_at{};
    int quick_failures = 0;
    double delay_s = 1.0;
};

pid_t spawn(const ChildSpec& spec) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        // The child gets default signal handling back, and its own process
        // group is not wanted: Ctrl-C in a terminal reaches it and us alike.
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        std::vector<char*> argv;
        for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        execv(argv[0], argv.data());
        std::fprintf(stderr, "relay run: cannot execute %s: %s\n", argv[0], std::strerror(errno));
        _exit(127);
    }
    return pid;
}

std::string describe_status(int status) {
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
    return "stopped";
}

void stop_all(std::vector<Child>& children, double timeout_s) {
    for (auto& c : children)
        if (c.pid > 0) kill(c.pid, SIGTERM);
    const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
    for (;;) {
        bool running = false;
        for (auto& c : children) {
            if (c.pid <= 0) continue;
            int status = 0;
            if (waitpid(c.pid, &status, WNOHANG) == c.pid) {
                std::printf("relay run: %s %s\n", c.spec->name.c_str(),
                            describe_status(status).c_str());
                c.pid = -1;
            } else {
                running = true;
            }
        }
        if (!running) return;
        if (Clock::now() > deadline) {
            for (auto& c : children)
                if (c.pid > 0) {
                    std::fprintf(stderr, "relay run: %s did not stop in time, killing it\n",
                                 c.spec->name.c_str());
                    kill(c.pid, SIGKILL);
                    waitpid(c.pid, nullptr, 0);
                    c.pid = -1;
                }
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

}  // namespace

std::string find_program(const std::string& name, const std::string& build_subdir) {
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) return {};
    const auto dir = self.parent_path();
    for (const auto& candidate : {dir / name, dir.parent_path() / build_subdir / name}) {
        if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
    }
    return {};
}

int supervise(const std::vector<ChildSpec>& specs, const SupervisorOptions& options) {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    std::vector<Child> children;
    for (const auto& s : specs) children.push_back(Child{&s});
    for (auto& c : children) c.restart_at = Clock::now();

    int exit_code = 0;
    while (g_stop_signal.load() == 0) {
        const auto now = Clock::now();
        for (auto& c : children) {
            if (c.pid > 0 || now < c.restart_at) continue;
            c.pid = spawn(*c.spec);
            c.started = now;
            if (c.pid < 0) {
                std::fprintf(stderr, "relay run: cannot start %s: %s\n", c.spec->name.c_str(),
                             std::strerror(errno));
                exit_code = 1;
                break;
            }
        }
        if (exit_code) break;

        int status = 0;
        const pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid > 0) {
            for (auto& c : children) {
                if (c.pid != pid) continue;
                c.pid = -1;
                const double ran_s =
                    std::chrono::duration<double>(Clock::now() - c.started).count();
                std::fprintf(stderr, "relay run: %s %s after %.1f s\n", c.spec->name.c_str(),
                             describe_status(status).c_str(), ran_s);
                if (ran_s < options.quick_failure_s) {
                    if (++c.quick_failures >= options.max_quick_failures) {
                        std::fprintf(stderr, "relay run: %s failed %d times at start; giving up\n",
                                     c.spec->name.c_str(), c.quick_failures);
                        exit_code = 1;
                    }
                } else {
                    c.quick_failures = 0;
                    c.delay_s = 1.0;
                }
                if (!exit_code) {
                    std::fprintf(stderr, "relay run: restarting %s in %.0f s\n",
                                 c.spec->name.c_str(), c.delay_s);
                    c.restart_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                      std::chrono::duration<double>(c.delay_s));
                    c.delay_s = std::min(c.delay_s * 2, options.max_restart_delay_s);
                }
            }
            if (exit_code) break;
            continue;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (g_stop_signal.load())
        std::printf("relay run: %s received, stopping\n", strsignal(g_stop_signal.load()));
    std::fflush(stdout);
    stop_all(children, options.stop_timeout_s);
    return exit_code;
}

}  // namespace relay
