// Session ids name their network (tenant isolation after a control restart).
#include <gtest/gtest.h>

#include <set>

#include "session_ids.hpp"

using namespace relay::control;

namespace {
bool none_in_use(uint64_t) {
    return false;
}
}  // namespace

TEST(SessionIds, AnIdNamesTheNetworkThatMadeIt) {
    const KeyPair server = generate_key_pair();
    SessionIds ids(server.secret_key, {"alpha", "beta", "gamma"});
    for (size_t n = 0; n < 3; ++n) {
        for (int i = 0; i < 100; ++i) {
            const uint64_t id = ids.next(n, none_in_use);
            EXPECT_NE(id, 0u);
            EXPECT_EQ(ids.network_of(id), std::optional<size_t>(n));
        }
    }
    EXPECT_NE(ids.tag(0), ids.tag(1));
    EXPECT_FALSE(ids.network_of(1234).has_value()) << "a tag no network has";
}

TEST(SessionIds, SameKeySameTagsAcrossRestarts) {
    const KeyPair server = generate_key_pair();
    SessionIds before(server.secret_key, {"alpha", "beta"});
    const uint64_t id = before.next(1, none_in_use);
    SessionIds after(server.secret_key, {"beta", "alpha"});  // order does not matter
    EXPECT_EQ(after.network_of(id), std::optional<size_t>(0));
}

TEST(SessionIds, TagsAreKeyedByTheServersSecret) {
    SessionIds one(generate_key_pair().secret_key, {"alpha"});
    SessionIds other(generate_key_pair().secret_key, {"alpha"});
    EXPECT_NE(one.tag(0), other.tag(0));
    EXPECT_FALSE(other.network_of(one.next(0, none_in_use)).has_value());
}

TEST(SessionIds, NeverAnIdInUse) {
    SessionIds ids(generate_key_pair().secret_key, {"alpha"});
    std::set<uint64_t> used;
    const uint64_t first = ids.next(0, none_in_use);
    // Mark the next 50 ids as used: the next one skips them all.
    for (uint64_t i = 1; i <= 50; ++i) used.insert(first + i);
    const uint64_t id = ids.next(0, [&](uint64_t x) { return used.count(x) > 0; });
    EXPECT_EQ(id, first + 51);
}

TEST(SessionIds, SameNameTwiceIsAmbiguousAndClaimedByNobody) {
    SessionIds ids(generate_key_pair().secret_key, {"alpha", "alpha"});
    EXPECT_EQ(ids.ambiguous().size(), 1u);
    EXPECT_FALSE(ids.network_of(ids.next(0, none_in_use)).has_value());
}
