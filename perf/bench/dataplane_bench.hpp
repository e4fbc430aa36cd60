// `relay-bench dataplane`: the forwarding path in-process over net_ring, with
// a bare MAC-swap forwarding loop measured on the same harness in the same run
// (see perf/README.md for the fields it prints).
#pragma once

#include <cstdio>

namespace relay::bench {

// argv[0] is the sub-benchmark name.  Returns the process exit status:
// 0 done, 1 runtime failure or (with --check) a missed target, 2 usage error.
int run_dataplane_bench(int argc, char** argv);
void print_dataplane_usage(std::FILE* out);

}  // namespace relay::bench
