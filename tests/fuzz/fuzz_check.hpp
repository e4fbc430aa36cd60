// What every fuzz target uses to report a broken invariant: a message, then abort(),
// which libFuzzer records as a crash and saves the input that caused it.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace relay::fuzz {

[[noreturn]] inline void violated(const char* what) {
    std::fprintf(stderr, "INVARIANT VIOLATED: %s\n", what);
    std::abort();
}

}  // namespace relay::fuzz

#define FUZZ_CHECK(cond, what)                      \
    do {                                            \
        if (!(cond)) ::relay::fuzz::violated(what); \
    } while (0)
