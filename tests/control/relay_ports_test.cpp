// Relay ports are drawn at random from the configured range (issue 9, "Predictable
// ports"): nobody can tell the next session's port from the last one's.
#include <gtest/gtest.h>

#include <set>

#include "relay_ports.hpp"

using relay::control::RelayPorts;

TEST(RelayPorts, WholeRangeUsableNoDuplicatesAllInRange) {
    RelayPorts ports(40000, 40999);
    std::set<uint16_t> taken;
    for (size_t i = 0; i < 1000; ++i) {
        const auto p = ports.take();
        ASSERT_TRUE(p.has_value()) << "after " << i;
        EXPECT_GE(*p, 40000);
        EXPECT_LE(*p, 40999);
        EXPECT_TRUE(taken.insert(*p).second) << "port " << *p << " handed out twice";
    }
    EXPECT_FALSE(ports.take().has_value());
    EXPECT_EQ(ports.free_count(), 0u);
    ports.give_back(40500);
    EXPECT_EQ(ports.take(), std::optional<uint16_t>(40500)) << "the only free one";
}

TEST(RelayPorts, ConsecutiveTakesAreNotSequential) {
    // With 10 000 free ports, the chance that a random next port is the previous + 1 is
    // 1e-4 per draw: of 500 draws, expect none (a counter would give 499).
    RelayPorts ports(40000, 49999);
    int sequential = 0;
    auto last = ports.take();
    for (int i = 0; i < 500; ++i) {
        const auto p = ports.take();
        ASSERT_TRUE(p && last);
        sequential += *p == static_cast<uint16_t>(*last + 1);
        last = p;
    }
    EXPECT_LE(sequential, 3);
}

TEST(RelayPorts, DrawsCoverTheRange) {
    // Uniform over 10 buckets of a 1000-port range: 2000 draws (taken and given back) give
    // each bucket ~200; a bucket under 100 or over 300 would be a >7 sigma event.
    RelayPorts ports(20000, 20999);
    std::array<int, 10> buckets{};
    for (int i = 0; i < 2000; ++i) {
        const auto p = ports.take();
        ASSERT_TRUE(p);
        ++buckets[(*p - 20000) / 100];
        ports.give_back(*p);
    }
    for (int b : buckets) {
        EXPECT_GT(b, 100);
        EXPECT_LT(b, 300);
    }
}

TEST(RelayPorts, TakeSpecificAndGiveBackKeepTheBooks) {
    RelayPorts ports(100, 104);
    EXPECT_TRUE(ports.take_specific(102));
    EXPECT_FALSE(ports.take_specific(102)) << "already used";
    EXPECT_FALSE(ports.take_specific(99)) << "outside the range";
    EXPECT_FALSE(ports.take_specific(105));
    EXPECT_EQ(ports.free_count(), 4u);
    std::set<uint16_t> rest;
    while (auto p = ports.take()) rest.insert(*p);
    EXPECT_EQ(rest, (std::set<uint16_t>{100, 101, 103, 104}));
    ports.give_back(102);
    ports.give_back(102);  // twice: still one free port
    ports.give_back(7);    // not ours: ignored
    EXPECT_EQ(ports.free_count(), 1u);
    EXPECT_EQ(ports.take(), std::optional<uint16_t>(102));
    EXPECT_FALSE(ports.take());
}

TEST(RelayPorts, SinglePortRange) {
    RelayPorts ports(65535, 65535);
    EXPECT_EQ(ports.take(), std::optional<uint16_t>(65535));
    EXPECT_FALSE(ports.take());
}
