// Unknown senders' key agreements off the event loop (issue 9, "Registered peers must
// keep working"): with defer_key_agreements on, handle() queues the X25519 of a sender
// control does not know instead of computing it, and the message goes on when the result
// comes back (complete_key_agreement).  Replay checks happen at the continuation, on the
// loop thread, so a copy that waited alongside the first is still refused; the queue is
// bounded and each refusal counted; registered peers never wait for the crypto thread.
#include <gtest/gtest.h>
#include <poll.h>

#include "core_harness.hpp"
#include "key_agreement_worker.hpp"

using namespace relay;
using namespace relay::control;
using namespace relay::control::testing;

namespace {

// What the server's crypto thread does, run here synchronously: every queued request's
// key agreement, fed back in order.
Outbox complete_all(Harness& h) {
    std::vector<KeyAgreementRequest> requests;
    h.core->take_key_agreements(requests);
    Outbox out;
    for (KeyAgreementRequest& r : requests)
        h.core->complete_key_agreement(agree(std::move(r), h.server.secret_key), h.clock(), out);
    return out;
}

template <typename T>
size_t replies_of(const TestPeer& p, const Outbox& out) {
    size_t n = 0;
    for (const Received& r : p.received(out)) n += std::holds_alternative<T>(r.message.body);
    return n;
}

}  // namespace

TEST(KeyAgreement, ARegisterFromAnUnknownKeyCompletesWhenItsKeyAgreementIsBack) {
    Harness h;
    h.core->defer_key_agreements(8);
    TestPeer a = h.make_peer("alpha");
    // handle() answers nothing yet: the key agreement is queued, not done.
    EXPECT_TRUE(h.send(a, 0, a.register_body()).empty());
    EXPECT_EQ(h.core->key_agreements_in_flight(), 1u);
    EXPECT_EQ(h.core->peers().size(), 0u);
    EXPECT_EQ(h.metric("relay_control_key_agreements_total"), 1);

    h.now += 3;  // the crypto thread took a moment
    std::vector<KeyAgreementRequest> requests;
    h.core->take_key_agreements(requests);
    ASSERT_EQ(requests.size(), 1u);
    EXPECT_EQ(requests[0].sender, a.agent.public_key);
    EXPECT_EQ(requests[0].from, a.source[0]);
    Outbox out;
    h.core->complete_key_agreement(agree(std::move(requests[0]), h.server.secret_key), h.clock(),
                                   out);
    ASSERT_EQ(replies_of<Registered>(a, out), 1u);
    EXPECT_EQ(out[0].to, a.source[0]);
    EXPECT_EQ(h.core->key_agreements_in_flight(), 0u);
    ASSERT_NE(h.peer_state(a), nullptr);
    EXPECT_EQ(h.peer_state(a)->registered_ms, h.now);

    // Registered: its next message is answered inside handle(), no key agreement.
    const Message k = h.request(a, 0, Keepalive{});
    EXPECT_TRUE(std::holds_alternative<Status>(k.body));
    EXPECT_EQ(h.metric("relay_control_key_agreements_total"), 1);
}

TEST(KeyAgreement, AReplayedCopyWaitingAlongsideTheFirstIsRefusedOnceBothComplete) {
    Harness h;
    h.core->defer_key_agreements(8);
    TestPeer a = h.make_peer("alpha");
    const auto datagram = a.seal(a.register_body(), h.wall());
    EXPECT_TRUE(h.deliver(0, a.source[0], datagram).empty());
    // The copy arrives (from elsewhere) while the first still waits for its key.
    EXPECT_TRUE(h.deliver(0, {ip4(192, 0, 2, 66), 4444}, datagram).empty());
    EXPECT_EQ(h.core->key_agreements_in_flight(), 2u);

    const Outbox out = complete_all(h);
    EXPECT_EQ(replies_of<Registered>(a, out), 1u);
    EXPECT_EQ(out.size(), 1u) << "no second reply, to anyone";
    EXPECT_EQ(h.rejected("replayed"), 1);
    ASSERT_NE(h.peer_state(a), nullptr);
    EXPECT_EQ(h.peer_state(a)->notify_to, a.source[0]) << "the copy moved nothing";
    EXPECT_EQ(h.core->key_agreements_in_flight(), 0u);
}

TEST(KeyAgreement, AKeepaliveCopyOfAnUnknownSenderGetsOneAnswer) {
    Harness h;
    h.core->defer_key_agreements(8);
    TestPeer x = h.make_peer("alpha");
    const auto datagram = x.seal(Keepalive{}, h.wall());
    h.deliver(0, x.source[0], datagram);
    const Outbox first = complete_all(h);
    EXPECT_EQ(replies_of<Error>(x, first), 1u);  // not_registered
    // The copy: the key just proven is kept for one more message (recent_keys_), so no
    // second key agreement; a sender unknown to control has no replay state, as before.
    h.deliver(0, x.source[0], datagram);
    EXPECT_EQ(h.core->key_agreements_in_flight(), 0u);
    EXPECT_EQ(h.metric("relay_control_key_agreements_total"), 1);
}

TEST(KeyAgreement, TheQueueIsBoundedAndEachRefusalCounted) {
    Harness h;
    h.core->defer_key_agreements(2);
    std::vector<TestPeer> peers;
    for (int i = 0; i < 4; ++i) peers.push_back(h.make_peer("alpha"));
    for (TestPeer& p : peers) EXPECT_TRUE(h.send(p, 0, p.register_body()).empty());
    EXPECT_EQ(h.core->key_agreements_in_flight(), 2u);
    EXPECT_EQ(h.rejected("key_agreement_queue_full"), 2);
    EXPECT_EQ(h.metric("relay_control_key_agreements_total"), 2);

    // Taken by the crypto thread, still not back: still full.
    std::vector<KeyAgreementRequest> taken;
    h.core->take_key_agreements(taken);
    ASSERT_EQ(taken.size(), 2u);
    TestPeer late = h.make_peer("alpha");
    EXPECT_TRUE(h.send(late, 0, late.register_body()).empty());
    EXPECT_EQ(h.rejected("key_agreement_queue_full"), 3);

    // A registered peer never waits for the crypto thread, full queue or not.
    Outbox out;
    h.core->complete_key_agreement(agree(std::move(taken[0]), h.server.secret_key), h.clock(), out);
    ASSERT_EQ(replies_of<Registered>(peers[0], out), 1u);
    const Message k = h.request(peers[0], 0, Keepalive{});
    EXPECT_TRUE(std::holds_alternative<Status>(k.body));

    // One back: room for one more.
    EXPECT_EQ(h.core->key_agreements_in_flight(), 1u);
    EXPECT_TRUE(h.send(late, 0, late.register_body()).empty());
    EXPECT_EQ(h.core->key_agreements_in_flight(), 2u);
    EXPECT_EQ(h.rejected("key_agreement_queue_full"), 3);
}

TEST(KeyAgreement, AFailedKeyAgreementIsCountedAsBadKey) {
    Harness h;
    h.core->defer_key_agreements(8);
    TestPeer a = h.make_peer("alpha");
    h.send(a, 0, a.register_body());
    std::vector<KeyAgreementRequest> requests;
    h.core->take_key_agreements(requests);
    ASSERT_EQ(requests.size(), 1u);
    Outbox out;
    h.core->complete_key_agreement(KeyAgreementResult{std::move(requests[0]), std::nullopt},
                                   h.clock(), out);
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(h.rejected("bad_key"), 1);
    EXPECT_EQ(h.core->key_agreements_in_flight(), 0u);
    EXPECT_EQ(h.core->peers().size(), 0u);
}

// The crypto thread itself: what goes in comes back, computed, through its eventfd.
TEST(KeyAgreement, TheWorkerComputesOffThreadAndSignalsItsEventfd) {
    const KeyPair server = generate_key_pair();
    KeyAgreementWorker worker(server.secret_key);
    std::vector<KeyPair> senders(5);
    std::vector<KeyAgreementRequest> requests;
    for (KeyPair& k : senders) {
        k = generate_key_pair();
        requests.push_back({k.public_key, 1, {ip4(192, 0, 2, 1), 1000}, {1, 2, 3}});
    }
    requests.push_back({PublicKey{}, 0, {}, {}});  // all-zero: no shared key
    worker.submit(requests);
    EXPECT_TRUE(requests.empty());

    std::vector<KeyAgreementResult> results;
    while (results.size() < senders.size() + 1) {
        pollfd fd{worker.ready_fd(), POLLIN, 0};
        ASSERT_EQ(::poll(&fd, 1, -1), 1);
        worker.take_results(results);
    }
    ASSERT_EQ(results.size(), senders.size() + 1);
    for (size_t i = 0; i < senders.size(); ++i) {
        EXPECT_EQ(results[i].request.sender, senders[i].public_key) << "in order";
        EXPECT_EQ(results[i].request.datagram, (std::vector<uint8_t>{1, 2, 3}));
        ASSERT_TRUE(results[i].key);
        EXPECT_EQ(*results[i].key, shared_key(senders[i].public_key, server.secret_key));
    }
    EXPECT_FALSE(results.back().key);
}
