#include "network_watch.hpp"

#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

namespace relay::peer {
namespace {

// Runs `body` on a thread of its own in a fresh network namespace (namespaces belong to
// the thread; the `ip` commands it starts inherit it), so the host's is never touched.
template <typename F>
void in_fresh_netns(F&& body) {
    std::thread t([&] {
        ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << "unshare(CLONE_NEWNET)";
        body();
    });
    t.join();
}

TEST(NetworkWatch, SeesAddressesAndRoutesComeAndGo) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace";
    in_fresh_netns([] {
        auto watch = NetworkWatch::open();
        ASSERT_TRUE(watch) << watch.error();
        EXPECT_FALSE(watch->changed()) << "nothing happened yet";

        // (The kernel may lack the dummy module: loopback serves.)  Its coming up adds
        // 127.0.0.1 and routes: drain that before the checks.
        ASSERT_EQ(std::system("ip link set lo up"), 0);
        watch->changed();

        ASSERT_EQ(std::system("ip addr add 192.0.2.10/24 dev lo"), 0);
        EXPECT_TRUE(watch->changed()) << "new address";
        EXPECT_FALSE(watch->changed()) << "drained";

        ASSERT_EQ(std::system("ip route add 198.51.100.0/24 dev lo"), 0);
        EXPECT_TRUE(watch->changed()) << "new route";

        ASSERT_EQ(std::system("ip addr del 192.0.2.10/24 dev lo"), 0);
        EXPECT_TRUE(watch->changed()) << "address removed";
        EXPECT_FALSE(watch->changed());
    });
}

}  // namespace
}  // namespace relay::peer
