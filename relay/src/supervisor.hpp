// `relay run`: keeps the node's processes running from one config file.
// Each child is restarted with a growing delay when it dies; one that keeps
// failing right at start (a config or EAL problem it will not get over) stops
// the node.  SIGINT/SIGTERM are passed on to the children, which are waited
// for before `relay run` exits.
#pragma once

#include <string>
#include <vector>

namespace relay {

struct ChildSpec {
    std::string name;               // for messages: "relay-dataplane"
    std::vector<std::string> argv;  // argv[0] is the executable's path
};

struct SupervisorOptions {
    int max_quick_failures = 3;  // consecutive exits within quick_failure_s of start
    double quick_failure_s = 3.0;
    double max_restart_delay_s = 30.0;
    double stop_timeout_s = 10.0;  // SIGTERM, then SIGKILL
};

// Runs until a signal asks to stop (returns 0) or a child cannot be kept
// running (returns 1).
int supervise(const std::vector<ChildSpec>& children, const SupervisorOptions& options = {});

// Where a sibling program is: next to this executable (installed), or in the
// build tree (<build>/relay/relay -> <build>/<subdir>/<name>).  Empty if not found.
std::string find_program(const std::string& name, const std::string& build_subdir);

}  // namespace relay
