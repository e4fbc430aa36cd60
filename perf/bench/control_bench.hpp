// `relay-bench control`: relay-control's protocol logic (ControlCore::handle, the
// code the server runs for every datagram) on one thread, with raw libsodium
// measured in the same run as the crypto bound (see perf/README.md for the fields
// it prints).
#pragma once

#include <cstdio>

namespace relay::bench {

// argv[0] is the sub-benchmark name.  Returns the process exit status:
// 0 done, 1 runtime failure (a reply was missing or wrong) or (with --check) a missed
// target, 2 usage error.
int run_control_bench(int argc, char** argv);
void print_control_usage(std::FILE* out);

}  // namespace relay::bench
