// nat_policy: BRIEF §6's decision table (can_punch), how a class follows from what control
// observed (classify), and the rendezvous timing arithmetic (fire_delays).
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <limits>
#include <random>

#include "core_harness.hpp"
#include "nat_policy.hpp"

using namespace relay;
using namespace relay::control;
using relay::control::testing::ip4;

namespace {

constexpr std::array<NatClass, 5> kClasses = {NatClass::unknown, NatClass::open, NatClass::cone,
                                              NatClass::port_restricted, NatClass::symmetric};

// BRIEF §6 literally: rows and columns full cone, restricted, port-restricted, symmetric.
enum Brief { full_cone = 0, restricted = 1, port_restricted = 2, symmetric = 3 };
constexpr bool kBriefTable[4][4] = {
    //            fc     r      pr     sym
    /* fc  */ {true, true, true, true},
    /* r   */ {true, true, true, true},
    /* pr  */ {true, true, true, false},
    /* sym */ {true, true, false, false},
};

// How the product's classes map onto the brief's rows: open behaves as full cone, cone is
// full cone or restricted (the same row), unknown is tried as port-restricted.
Brief brief_row(NatClass c, bool cone_as_restricted = false) {
    switch (c) {
        case NatClass::open:
            return full_cone;
        case NatClass::cone:
            return cone_as_restricted ? restricted : full_cone;
        case NatClass::port_restricted:
            return port_restricted;
        case NatClass::symmetric:
            return symmetric;
        case NatClass::unknown:
            return port_restricted;
    }
    return port_restricted;
}

}  // namespace

TEST(CanPunch, FollowsTheBriefTableForEveryPair) {
    int checked = 0;
    for (NatClass a : kClasses) {
        for (NatClass b : kClasses) {
            SCOPED_TRACE(std::string(to_string(a)) + " x " + to_string(b));
            EXPECT_EQ(can_punch(a, b), kBriefTable[brief_row(a)][brief_row(b)]);
            // "cone" stands for both full cone and restricted: the rows agree.
            EXPECT_EQ(can_punch(a, b), kBriefTable[brief_row(a, true)][brief_row(b, true)]);
            EXPECT_EQ(can_punch(a, b), can_punch(b, a)) << "the decision is symmetric";
            ++checked;
        }
    }
    EXPECT_EQ(checked, 25);
}

TEST(CanPunch, OnlyTheThreeHardPairsAreRelayed) {
    // Spelled out, so that a table typo above cannot hide a wrong decision.
    EXPECT_FALSE(can_punch(NatClass::symmetric, NatClass::symmetric));
    EXPECT_FALSE(can_punch(NatClass::symmetric, NatClass::port_restricted));
    EXPECT_FALSE(can_punch(NatClass::port_restricted, NatClass::symmetric));
    EXPECT_FALSE(can_punch(NatClass::symmetric, NatClass::unknown));
    EXPECT_FALSE(can_punch(NatClass::unknown, NatClass::symmetric));
    EXPECT_TRUE(can_punch(NatClass::symmetric, NatClass::cone));
    EXPECT_TRUE(can_punch(NatClass::symmetric, NatClass::open));
    EXPECT_TRUE(can_punch(NatClass::port_restricted, NatClass::port_restricted));
    EXPECT_TRUE(can_punch(NatClass::unknown, NatClass::unknown));
    EXPECT_TRUE(can_punch(NatClass::unknown, NatClass::port_restricted));
}

namespace {

struct ClassifyCase {
    const char* name;
    std::optional<SocketAddress> port0, port1;
    bool reflexive_is_local = false;
    bool filtering_probed = false;
    bool other_port_reply_seen = false;
    NatClass expected;
};

const SocketAddress kA{ip4(203, 0, 113, 5), 40000};
const SocketAddress kOtherPort{ip4(203, 0, 113, 5), 40001};
const SocketAddress kOtherIp{ip4(203, 0, 113, 6), 40000};

}  // namespace

TEST(Classify, FromObservations) {
    const ClassifyCase cases[] = {
        {"nothing seen", std::nullopt, std::nullopt, false, false, false, NatClass::unknown},
        {"only port 0", kA, std::nullopt, false, false, false, NatClass::unknown},
        {"only port 1", std::nullopt, kA, false, false, false, NatClass::unknown},
        {"only port 0, local", kA, std::nullopt, true, true, true, NatClass::unknown},
        {"same, not probed", kA, kA, false, false, false, NatClass::port_restricted},
        {"same, probe lost", kA, kA, false, true, false, NatClass::port_restricted},
        {"same, probe answered", kA, kA, false, true, true, NatClass::cone},
        {"same, reply without probe", kA, kA, false, false, true, NatClass::port_restricted},
        {"same, reflexive local", kA, kA, true, false, false, NatClass::open},
        {"other port", kA, kOtherPort, false, false, false, NatClass::symmetric},
        {"other ip", kA, kOtherIp, false, false, false, NatClass::symmetric},
        {"other port, probe answered", kA, kOtherPort, false, true, true, NatClass::symmetric},
    };
    for (const ClassifyCase& c : cases) {
        NatObservation o;
        o.seen_on_port[0] = c.port0;
        o.seen_on_port[1] = c.port1;
        o.reflexive_is_local = c.reflexive_is_local;
        o.filtering_probed = c.filtering_probed;
        o.other_port_reply_seen = c.other_port_reply_seen;
        EXPECT_EQ(classify(o), c.expected) << c.name << ": got " << to_string(classify(o));
    }
}

// ---------------------------------------------------------------- fire_delays

namespace {

struct DelayCase {
    const char* name;
    uint32_t rtt_a_us, rtt_b_us, lead_ms;
    uint32_t a_ms, b_ms;
};

}  // namespace

TEST(FireDelays, Table) {
    constexpr uint32_t kMax = std::numeric_limits<uint32_t>::max();
    const DelayCase cases[] = {
        {"equal round trips", 50'000, 50'000, 150, 150, 150},
        // A hears the punch 10 ms after control sends it, B 100 ms after: the common
        // instant is lead + 100 = 250 ms, so A waits 240 and B 150.
        {"asymmetric", 20'000, 200'000, 150, 240, 150},
        {"asymmetric, swapped", 200'000, 20'000, 150, 150, 240},
        {"asymmetric, no lead", 20'000, 200'000, 0, 90, 0},
        {"zero round trips (not measured yet)", 0, 0, 150, 150, 150},
        {"one measured", 0, 100'000, 150, 200, 150},
        // Above 10 s a round trip is not believable: it counts as 10 s.
        {"huge a", kMax, 0, 150, 150, 5150},
        {"huge b", 0, kMax, 150, 5150, 150},
        {"both huge", kMax, kMax, 150, 150, 150},
        {"just over the clamp", 20'000'000, 10'000'000, 150, 150, 150},
        {"at the clamp", 10'000'000, 0, 150, 150, 5150},
        // Rounded to the nearest millisecond: 151.5 ms -> 152, 151.499 ms -> 151.
        {"rounds half up", 0, 3'000, 150, 152, 150},
        {"rounds down", 0, 2'998, 150, 151, 150},
        {"sub-millisecond difference", 1, 0, 150, 150, 150},
        {"odd microseconds", 999, 0, 150, 150, 150},
    };
    for (const DelayCase& c : cases) {
        const FireDelays d = fire_delays(c.rtt_a_us, c.rtt_b_us, c.lead_ms);
        EXPECT_EQ(d.a_ms, c.a_ms) << c.name;
        EXPECT_EQ(d.b_ms, c.b_ms) << c.name;
    }
}

// Both first packets leave at the same instant (within rounding), lead + max/2 after control
// sends the punches; the farther peer waits exactly `lead`.
TEST(FireDelays, BothFireAtTheCommonInstant) {
    std::mt19937 rng(20231114);
    std::uniform_int_distribution<uint32_t> rtt(0, 12'000'000);
    std::uniform_int_distribution<uint32_t> lead(0, 2000);
    for (int i = 0; i < 10'000; ++i) {
        const uint32_t a = rtt(rng), b = rtt(rng), l = lead(rng);
        const FireDelays d = fire_delays(a, b, l);
        const uint64_t ca = std::min<uint32_t>(a, 10'000'000),
                       cb = std::min<uint32_t>(b, 10'000'000);
        const int64_t instant_us = int64_t{l} * 1000 + static_cast<int64_t>(std::max(ca, cb) / 2);
        const int64_t fire_a = int64_t{d.a_ms} * 1000 + static_cast<int64_t>(ca / 2);
        const int64_t fire_b = int64_t{d.b_ms} * 1000 + static_cast<int64_t>(cb / 2);
        ASSERT_LE(std::llabs(fire_a - instant_us), 500) << a << " " << b << " " << l;
        ASSERT_LE(std::llabs(fire_b - instant_us), 500) << a << " " << b << " " << l;
        ASSERT_EQ(std::min(d.a_ms, d.b_ms), l) << "the farther peer fires after the lead";
    }
}
