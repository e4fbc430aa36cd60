#include "network_watch.hpp"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace relay::peer {

Result<NetworkWatch, std::string> NetworkWatch::open() {
    ipc::FileDescriptor fd(
        ::socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE));
    if (!fd) return Unexpected{std::string("rtnetlink socket: ") + std::strerror(errno)};
    sockaddr_nl local{};
    local.nl_family = AF_NETLINK;
    local.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE;
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0)
        return Unexpected{std::string("rtnetlink bind: ") + std::strerror(errno)};
    return NetworkWatch(std::move(fd));
}

bool NetworkWatch::changed() {
    bool any = false;
    alignas(nlmsghdr) char buf[8192];
    for (;;) {
        const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
        if (n < 0) {
            // The kernel dropped notifications (our buffer was full): something changed.
            if (errno == ENOBUFS) {
                any = true;
                continue;
            }
            break;  // EAGAIN: drained
        }
        size_t left = static_cast<size_t>(n);
        for (auto* h = reinterpret_cast<const nlmsghdr*>(buf); NLMSG_OK(h, left);
             h = NLMSG_NEXT(h, left)) {
            switch (h->nlmsg_type) {
                case RTM_NEWADDR:
                case RTM_DELADDR:
                case RTM_NEWROUTE:
                case RTM_DELROUTE:
                    any = true;
                    break;
                default:
                    break;
            }
        }
    }
    return any;
}

}  // namespace relay::peer
