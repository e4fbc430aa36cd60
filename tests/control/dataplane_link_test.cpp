// DataplaneLink (control/src/dataplane_link.hpp) against a scripted data plane on a real
// Unix socket: a `busy` or an unanswered add or remove is asked again by id, and the
// answer decides; a removal of a session that is not there is done.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "dataplane_link.hpp"
#include "relay/ipc/unix_socket.hpp"

using namespace relay;
using namespace relay::control;
using ipc::Status;

namespace {

// Serves a socket on a thread; `script` answers each decoded request, or returns nothing
// to leave it unanswered.
class ScriptedDataplane {
  public:
    using Script = std::function<std::optional<ipc::Response>(const ipc::Request&, int nth)>;

    explicit ScriptedDataplane(Script script) : script_(std::move(script)) {
        std::string pattern = std::filesystem::temp_directory_path() / "relay-link-XXXXXX";
        if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp");
        dir_ = pattern;
        server_.emplace(dir_ + "/dataplane.sock");
        thread_ = std::thread([this] {
            while (!stop_)
                server_->poll_once(10, [this](std::span<const uint8_t> in) { return serve(in); });
        });
    }
    ~ScriptedDataplane() {
        stop_ = true;
        thread_.join();
        server_.reset();
        std::filesystem::remove_all(dir_);
    }
    std::string path() const { return dir_ + "/dataplane.sock"; }
    std::vector<ipc::MsgType> seen() {
        std::lock_guard lock(mutex_);
        return seen_;
    }

  private:
    std::vector<uint8_t> serve(std::span<const uint8_t> in) {
        auto request = ipc::decode_request(in);
        if (!request) return ipc::encode(ipc::error_response(request.error()));
        int nth;
        {
            std::lock_guard lock(mutex_);
            seen_.push_back(ipc::type_of(request->body));
            nth = static_cast<int>(seen_.size());
        }
        auto response = script_(*request, nth);
        if (!response) return {};
        response->request_id = request->request_id;
        response->type = ipc::type_of(request->body);
        return ipc::encode(*response);
    }

    Script script_;
    std::string dir_;
    std::optional<ipc::SeqpacketServer> server_;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::mutex mutex_;
    std::vector<ipc::MsgType> seen_;
};

ipc::Response answer(Status status) {
    ipc::Response r;
    r.status = status;
    if (status != Status::ok) r.error = "scripted";
    return r;
}

SessionSpec spec() {
    SessionSpec s;
    s.id = 7;
    s.relay_ip = 0xc633640a;
    s.relay_port = 40000;
    s.sides[0].public_key[0] = 1;
    s.sides[1].public_key[0] = 2;
    return s;
}

}  // namespace

TEST(DataplaneLink, ABusyAddIsAskedAgainAndItsAnswerDecides) {
    ScriptedDataplane dp(
        [](const ipc::Request&, int nth) { return answer(nth == 1 ? Status::busy : Status::ok); });
    DataplaneLink link(dp.path());
    EXPECT_EQ(link.add_session(spec()), std::nullopt);
    EXPECT_EQ(dp.seen(), (std::vector{ipc::MsgType::add_session, ipc::MsgType::add_session}));
}

// Reported as failed, so it is undone too: a remove queued behind the install.
TEST(DataplaneLink, AnAddStillBusyAfterTheRetryFailsAndIsUndone) {
    ScriptedDataplane dp([](const ipc::Request&, int) { return answer(Status::busy); });
    DataplaneLink link(dp.path());
    const auto error = link.add_session(spec());
    ASSERT_TRUE(error);
    EXPECT_TRUE(error->unavailable);
    EXPECT_EQ(error->status, Status::busy);
    std::vector<ipc::MsgType> expected(DataplaneLink::kAttempts, ipc::MsgType::add_session);
    expected.push_back(ipc::MsgType::remove_session);
    EXPECT_EQ(dp.seen(), expected);
}

TEST(DataplaneLink, ARefusalIsFinal) {
    ScriptedDataplane dp([](const ipc::Request&, int) { return answer(Status::exists); });
    DataplaneLink link(dp.path());
    const auto error = link.add_session(spec());
    ASSERT_TRUE(error);
    EXPECT_FALSE(error->unavailable);
    EXPECT_EQ(error->status, Status::exists);
    EXPECT_EQ(dp.seen().size(), 1u) << "no retry of a definite answer";
}

TEST(DataplaneLink, RemovingASessionThatIsNotThereIsDone) {
    ScriptedDataplane dp([](const ipc::Request&, int) { return answer(Status::not_found); });
    DataplaneLink link(dp.path());
    EXPECT_EQ(link.remove_session(7), std::nullopt);
}

// The reply to the first remove never comes (the link's timeout passes): the link asks
// again on a new connection, and the data plane's answer, not the timeout, decides.
TEST(DataplaneLink, AnUnansweredRemoveIsAskedAgain) {
    ScriptedDataplane dp([](const ipc::Request&, int nth) -> std::optional<ipc::Response> {
        if (nth == 1) return std::nullopt;
        return answer(Status::not_found);  // the first one was done after all
    });
    DataplaneLink link(dp.path());
    EXPECT_EQ(link.remove_session(7), std::nullopt);
    EXPECT_EQ(dp.seen().size(), 2u);
}
