// relay-bench: the product's benchmarks, one sub-benchmark per part of the
// system.  Each prints one JSON object per line (BRIEF §8) and is run by a
// documented command (perf/README.md).
#include <array>
#include <cstdio>
#include <string_view>

#include "control_bench.hpp"
#include "dataplane_bench.hpp"

namespace {

struct SubBenchmark {
    std::string_view name;
    std::string_view summary;
    int (*run)(int argc, char** argv);  // argv[0] = the sub-benchmark's name
    void (*print_usage)(std::FILE* out);
};

// Add new sub-benchmarks here.
constexpr std::array kSubBenchmarks = {
    SubBenchmark{"dataplane",
                 "forwarding path over net_ring vs a bare MAC-swap loop, 1..100000 sessions",
                 relay::bench::run_dataplane_bench, relay::bench::print_dataplane_usage},
    SubBenchmark{"control",
                 "relay-control's protocol logic: registrations, keepalives, connects vs libsodium",
                 relay::bench::run_control_bench, relay::bench::print_control_usage},
};

void print_usage(std::FILE* out) {
    std::fprintf(out,
                 "usage: relay-bench <benchmark> [options]\n"
                 "       relay-bench <benchmark> --help\n"
                 "       relay-bench --help\n\n"
                 "Prints one JSON object per line on stdout; diagnostics go to stderr.\n\n"
                 "benchmarks:\n");
    for (const SubBenchmark& bench : kSubBenchmarks)
        std::fprintf(out, "  %-12.*s %.*s\n", static_cast<int>(bench.name.size()),
                     bench.name.data(), static_cast<int>(bench.summary.size()),
                     bench.summary.data());
    for (const SubBenchmark& bench : kSubBenchmarks) {
        std::fputc('\n', out);
        bench.print_usage(out);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    const std::string_view command = argv[1];
    if (command == "--help" || command == "-h" || command == "help") {
        print_usage(stdout);
        return 0;
    }
    for (const SubBenchmark& bench : kSubBenchmarks)
        if (bench.name == command) return bench.run(argc - 1, argv + 1);
    std::fprintf(stderr, "relay-bench: unknown benchmark '%s' (try relay-bench --help)\n", argv[1]);
    return 2;
}
