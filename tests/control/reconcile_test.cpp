// Reconcile by id (ControlCore::reconcile): a timed-out or `busy` add or remove tells
// control nothing for sure, so its periodic comparison with the data plane's sessions
// goes both ways: what the data plane lost is forgotten, and what the data plane holds
// but control does not know (nobody would ever release it) is removed.
#include <gtest/gtest.h>

#include "core_harness.hpp"

using namespace relay;
using namespace relay::control;
using namespace relay::control::testing;

namespace {

void reconcile(Harness& h) {
    h.core->reconcile(*h.dataplane.list_sessions(), h.now);
}

double orphans_removed(const Harness& h) {
    return h.metric("relay_control_relay_releases_total", {{"reason", "orphan"}});
}

}  // namespace

// Failed before reconcile compared both ways: the unknown session stayed for ever.
TEST(Reconcile, RemovesASessionControlDoesNotKnow) {
    Harness h;
    TestPeer a = h.symmetric_peer(), b = h.symmetric_peer();
    const uint64_t ab = h.relayed_pair(a, b);
    SessionSpec stray = h.dataplane.sessions.at(ab);
    stray.id = ab + 100;
    stray.relay_port = kRelayPortMax;
    h.dataplane.sessions.emplace(stray.id, stray);

    reconcile(h);
    EXPECT_FALSE(h.dataplane.has(stray.id));
    EXPECT_TRUE(h.dataplane.has(ab)) << "control's own session stays";
    EXPECT_EQ(h.core->allocations().size(), 1u);
    EXPECT_EQ(orphans_removed(h), 1);
    reconcile(h);
    EXPECT_EQ(orphans_removed(h), 1) << "nothing more to remove";
}

// Failed before: an add answered `busy` (the worker installed it after the answer) left
// a session in the data plane that control had given up on.
TEST(Reconcile, ALateInstallControlGaveUpOnIsRemoved) {
    Harness h;
    TestPeer a = h.symmetric_peer(), b = h.symmetric_peer();
    h.dataplane.late_adds = true;
    Outbox out;
    h.request(a, 0, Connect{b.wg.public_key, false}, &out);
    EXPECT_TRUE(b.notifications<RelayOffer>(out).empty()) << "no offer without a confirmed add";
    EXPECT_TRUE(h.core->allocations().empty());
    ASSERT_EQ(h.dataplane.sessions.size(), 1u) << "the worker did it late";

    h.dataplane.late_adds = false;
    reconcile(h);
    EXPECT_TRUE(h.dataplane.sessions.empty());
    EXPECT_EQ(orphans_removed(h), 1);
    const uint64_t ab = h.relayed_pair(a, b);
    EXPECT_TRUE(h.dataplane.has(ab));
    EXPECT_EQ(h.dataplane.sessions.size(), 1u);
}

// Failed before: a release whose remove did not reach the data plane left the session
// there, with control no longer knowing it.
TEST(Reconcile, ARemoveThatDidNotGetThroughIsDoneLater) {
    Harness h;
    TestPeer a = h.symmetric_peer(), b = h.symmetric_peer();
    const uint64_t ab = h.relayed_pair(a, b);
    h.dataplane.unavailable = true;
    const Message m = h.request(a, 0, Release{ab});
    EXPECT_TRUE(std::holds_alternative<Ok>(m.body));
    EXPECT_TRUE(h.core->allocations().empty());
    EXPECT_TRUE(h.dataplane.has(ab));

    h.dataplane.unavailable = false;
    const auto listing = *h.dataplane.list_sessions();
    h.dataplane.unavailable = true;  // it answered the listing, then not the remove
    h.core->reconcile(listing, h.now);
    EXPECT_TRUE(h.dataplane.has(ab)) << "unreachable: tried again next time";
    EXPECT_EQ(orphans_removed(h), 0);
    h.dataplane.unavailable = false;
    reconcile(h);
    EXPECT_FALSE(h.dataplane.has(ab));
    EXPECT_EQ(orphans_removed(h), 1);
}
