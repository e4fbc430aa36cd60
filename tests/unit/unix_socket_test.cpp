// The IPC transport: a SeqpacketServer served from a thread (as the data plane's control thread
// does) and a DataplaneClient or a raw socket in the test.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "relay/ipc/unix_socket.hpp"

namespace relay::ipc {
namespace {

using Bytes = std::vector<uint8_t>;
using namespace std::chrono_literals;

// ---------------------------------------------------------------- helpers

sockaddr_un address_of(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    return a;
}

FileDescriptor raw_connect(const std::string& path) {
    FileDescriptor fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    sockaddr_un a = address_of(path);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        throw std::runtime_error("connect " + path + ": " + std::strerror(errno));
    }
    return fd;
}

void raw_send(const FileDescriptor& fd, const Bytes& datagram) {
    ASSERT_EQ(::send(fd.get(), datagram.data(), datagram.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(datagram.size()))
        << std::strerror(errno);
}

// One datagram, or nullopt after the timeout; an empty vector means the peer hung up.
std::optional<Bytes> raw_receive(const FileDescriptor& fd, int timeout_ms = 2000) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return std::nullopt;
    Bytes buffer(kMaxMessageBytes);
    ssize_t n = ::recv(fd.get(), buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n < 0) return std::nullopt;
    buffer.resize(static_cast<size_t>(n));
    return buffer;
}

// A socket file that nobody listens on, as a crashed server leaves it.
void leave_stale_socket(const std::string& path) {
    FileDescriptor fd(::socket(AF_UNIX, SOCK_SEQPACKET, 0));
    sockaddr_un a = address_of(path);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0)
        << std::strerror(errno);
}

HealthReply sample_health() {
    return HealthReply{0x1234567890abcdef, 5000, 2, 1, 3, 1024, {0xc633640a}};
}

// A stand-in for the data plane's dispatcher; records the request ids it saw.
class FakeDataplane {
  public:
    Response operator()(const Request& request) {
        {
            std::lock_guard lock(mutex_);
            seen_ids_.push_back(request.request_id);
        }
        Response response;
        if (std::holds_alternative<HealthRequest>(request.body)) {
            response.body = sample_health();
        } else if (auto* get = std::get_if<GetSessionRequest>(&request.body)) {
            SessionStats stats;
            stats.spec.id = get->id;
            stats.spec.relay_port = 40000;
            stats.age_ms = 99;
            response.body = SessionReply{stats};
        } else {
            response.status = Status::not_found;
            response.error = "no such session";
        }
        return response;  // id and type are filled in by handle_datagram
    }
    std::vector<uint32_t> seen_ids() {
        std::lock_guard lock(mutex_);
        return seen_ids_;
    }

  private:
    std::mutex mutex_;
    std::vector<uint32_t> seen_ids_;
};

// Calls server.poll_once() in a loop on its own thread until destroyed.
class ServingThread {
  public:
    ServingThread(SeqpacketServer& server, SeqpacketServer::Handler handler)
        : thread_([this, &server, handler = std::move(handler)] {
              while (!stop_) server.poll_once(10, handler);
          }) {}
    ~ServingThread() {
        stop_ = true;
        thread_.join();
    }

  private:
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

SeqpacketServer::Handler dispatching_to(FakeDataplane& dataplane) {
    return [&dataplane](std::span<const uint8_t> in) {
        return handle_datagram(in, [&dataplane](const Request& r) { return dataplane(r); });
    };
}

class UnixSocketTest : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string pattern = (std::filesystem::temp_directory_path() / "relay-ipc-XXXXXX");
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr) << std::strerror(errno);
        dir_ = pattern;
        path_ = dir_ + "/run/relay/dataplane.sock";  // the server creates run/relay
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::string dir_;
    std::string path_;
};

// ---------------------------------------------------------------- tests

TEST_F(UnixSocketTest, CallRoundTrip) {
    SeqpacketServer server(path_);
    FakeDataplane dataplane;
    ServingThread serving(server, dispatching_to(dataplane));

    auto client = DataplaneClient::connect(path_);
    ASSERT_TRUE(client.ok()) << client.error();

    auto health = client->call(HealthRequest{});
    ASSERT_TRUE(health.ok()) << health.error();
    EXPECT_EQ(health->status, Status::ok);
    EXPECT_EQ(health->type, MsgType::health);
    EXPECT_EQ(std::get<HealthReply>(health->body), sample_health());

    auto session = client->call(GetSessionRequest{77});
    ASSERT_TRUE(session.ok()) << session.error();
    ASSERT_EQ(session->status, Status::ok) << session->error;
    EXPECT_EQ(std::get<SessionReply>(session->body).session.spec.id, 77u);

    // A refusal is a successful call carrying the data plane's status.
    auto removed = client->call(RemoveSessionRequest{5});
    ASSERT_TRUE(removed.ok()) << removed.error();
    EXPECT_EQ(removed->status, Status::not_found);
    EXPECT_EQ(removed->error, "no such session");
    EXPECT_EQ(removed->type, MsgType::remove_session);

    EXPECT_EQ(dataplane.seen_ids(), (std::vector<uint32_t>{1, 2, 3}));
    EXPECT_EQ(health->request_id, 1u);
    EXPECT_EQ(removed->request_id, 3u);
}

TEST_F(UnixSocketTest, CreatesTheDirectoryAndSetsTheMode) {
    SeqpacketServer server(path_, 0660);
    struct stat st {};
    ASSERT_EQ(::stat(path_.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0660u);
    ASSERT_EQ(::stat((dir_ + "/run/relay").c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    const mode_t umask_now = ::umask(0);  // umask can only be read by setting it
    ::umask(umask_now);
    EXPECT_EQ(st.st_mode & 0777, 0755u & ~umask_now);
}

TEST_F(UnixSocketTest, GarbageDatagramGetsMalformedReplyEchoingWhatItCan) {
    SeqpacketServer server(path_);
    FakeDataplane dataplane;
    ServingThread serving(server, dispatching_to(dataplane));
    FileDescriptor raw = raw_connect(path_);

    // Not our protocol at all: nothing to echo.
    raw_send(raw, Bytes{'h', 'e', 'l', 'l', 'o', ' ', 'g', 'a', 'r', 'b', 'a', 'g', 'e'});
    auto reply = raw_receive(raw);
    ASSERT_TRUE(reply.has_value());
    auto decoded = decode_response(*reply);
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    EXPECT_EQ(decoded->status, Status::malformed);
    EXPECT_EQ(decoded->request_id, 0u);
    EXPECT_NE(decoded->error.find("magic"), std::string::npos) << decoded->error;

    // A readable header with a broken body: the reply echoes its id and type.
    SessionSpec spec;
    spec.id = 1;
    Bytes add = encode(Request{42, AddSessionRequest{spec}});
    add.resize(kRequestHeaderBytes + 10);
    add[17] = 10;  // body_length (low byte): agrees with the short body
    raw_send(raw, add);
    reply = raw_receive(raw);
    ASSERT_TRUE(reply.has_value());
    decoded = decode_response(*reply);
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    EXPECT_EQ(decoded->status, Status::malformed);
    EXPECT_EQ(decoded->request_id, 42u);
    EXPECT_EQ(decoded->type, MsgType::add_session);
    EXPECT_NE(decoded->error.find("add_session.spec.relay_ip"), std::string::npos)
        << decoded->error;

    EXPECT_TRUE(dataplane.seen_ids().empty());  // nothing reached the dispatcher
}

TEST_F(UnixSocketTest, OversizedDatagramGetsLargerThanReply) {
    SeqpacketServer server(path_);
    FakeDataplane dataplane;
    ServingThread serving(server, dispatching_to(dataplane));
    FileDescriptor raw = raw_connect(path_);

    Bytes huge = encode(Request{77, HealthRequest{}});
    huge.resize(kMaxMessageBytes + 4000, 0xaa);
    raw_send(raw, huge);
    auto reply = raw_receive(raw);
    ASSERT_TRUE(reply.has_value());
    auto decoded = decode_response(*reply);
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    EXPECT_EQ(decoded->status, Status::malformed);
    EXPECT_EQ(decoded->error, "request larger than 65536 bytes");
    EXPECT_EQ(decoded->request_id, 77u);
    EXPECT_EQ(decoded->type, MsgType::health);

    // The rest of the big datagram was discarded: the connection carries on.
    raw_send(raw, encode(Request{78, HealthRequest{}}));
    reply = raw_receive(raw);
    ASSERT_TRUE(reply.has_value());
    decoded = decode_response(*reply);
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    EXPECT_EQ(decoded->status, Status::ok);
    EXPECT_EQ(decoded->request_id, 78u);
}

// Holds requests in the serving thread until the test lets them through, so that
// "the server has not answered yet" is a fact of the test, not a race with a clock.
class Gate {
  public:
    // In the serving thread: note the arrival, then wait for the gate to open.
    void hold() {
        std::unique_lock lock(mutex_);
        ++arrived_;
        changed_.notify_all();
        changed_.wait(lock, [&] { return open_; });
    }
    void open() {
        std::lock_guard lock(mutex_);
        open_ = true;
        changed_.notify_all();
    }
    // Bounded only so that a broken test fails instead of hanging.
    bool wait_arrived(int n) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, 30s, [&] { return arrived_ >= n; });
    }

  private:
    std::mutex mutex_;
    std::condition_variable changed_;
    int arrived_ = 0;
    bool open_ = false;
};

// Opens the gate before the serving thread is joined (declare it after the thread).
struct OpenOnExit {
    Gate& gate;
    ~OpenOnExit() { gate.open(); }
};

TEST_F(UnixSocketTest, CallTimesOutWhenTheServerDoesNotAnswer) {
    SeqpacketServer server(path_);
    Gate gate;
    ServingThread serving(server, [&](std::span<const uint8_t>) {
        gate.hold();
        return Bytes{};  // and then no answer at all
    });
    OpenOnExit release{gate};
    auto client = DataplaneClient::connect(path_);
    ASSERT_TRUE(client.ok()) << client.error();

    auto result = client->call(HealthRequest{}, 200);
    ASSERT_FALSE(result.ok()) << "the server holds the request: nothing can have answered";
    EXPECT_NE(result.error().find("timeout"), std::string::npos) << result.error();
    EXPECT_TRUE(gate.wait_arrived(1)) << "the request never reached the server";
}

TEST_F(UnixSocketTest, LateReplyToATimedOutCallIsSkipped) {
    SeqpacketServer server(path_);
    FakeDataplane dataplane;
    auto dispatch = dispatching_to(dataplane);
    Gate gate;
    std::atomic<int> calls{0};
    ServingThread serving(server, [&](std::span<const uint8_t> in) {
        if (calls++ == 0) gate.hold();  // answers the first call only after it timed out
        return dispatch(in);
    });
    OpenOnExit release{gate};
    auto client = DataplaneClient::connect(path_);
    ASSERT_TRUE(client.ok()) << client.error();

    auto first = client->call(GetSessionRequest{1}, 50);
    ASSERT_FALSE(first.ok());
    ASSERT_TRUE(gate.wait_arrived(1));
    gate.open();  // the late reply to 1 goes out before request 2 is read
    auto second = client->call(GetSessionRequest{2}, 2000);
    ASSERT_TRUE(second.ok()) << second.error();
    EXPECT_EQ(second->request_id, 2u);
    EXPECT_EQ(std::get<SessionReply>(second->body).session.spec.id, 2u);
    EXPECT_EQ(dataplane.seen_ids().size(), 2u) << "both requests were served, the first one late";
}

TEST_F(UnixSocketTest, ConnectSaysWhatWentWrong) {
    auto missing = DataplaneClient::connect(path_);
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.error().find(path_), std::string::npos) << missing.error();
    EXPECT_NE(missing.error().find("No such file"), std::string::npos) << missing.error();

    std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
    leave_stale_socket(path_);
    auto refused = DataplaneClient::connect(path_);
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.error().find("Connection refused"), std::string::npos) << refused.error();
}

TEST_F(UnixSocketTest, ClientReportsAServerThatWentAway) {
    auto server = std::make_optional<SeqpacketServer>(path_);
    auto client = DataplaneClient::connect(path_);
    ASSERT_TRUE(client.ok()) << client.error();
    server->poll_once(100, [](std::span<const uint8_t>) { return Bytes{}; });  // accepts
    server.reset();
    auto result = client->call(HealthRequest{}, 500);
    ASSERT_FALSE(result.ok());
    EXPECT_NE(result.error().find("connection closed"), std::string::npos) << result.error();
}

TEST_F(UnixSocketTest, SecondServerOnTheSamePathIsRefused) {
    SeqpacketServer first(path_);
    try {
        SeqpacketServer second(path_);
        FAIL() << "a second server started on " << path_;
    } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()), "another process is serving " + path_);
    }
    // The refused server left the first one's socket alone.
    FakeDataplane dataplane;
    ServingThread serving(first, dispatching_to(dataplane));
    auto client = DataplaneClient::connect(path_);
    ASSERT_TRUE(client.ok()) << client.error();
    auto health = client->call(HealthRequest{});
    ASSERT_TRUE(health.ok()) << health.error();
    EXPECT_EQ(health->status, Status::ok);
}

TEST_F(UnixSocketTest, StaleSocketFileIsReplaced) {
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
    leave_stale_socket(path_);
    ASSERT_TRUE(std::filesystem::exists(path_));

    SeqpacketServer server(path_);
    FakeDataplane dataplane;
    ServingThread serving(server, dispatching_to(dataplane));
    auto client = DataplaneClient::connect(path_);
    ASSERT_TRUE(client.ok()) << client.error();
    auto health = client->call(HealthRequest{});
    ASSERT_TRUE(health.ok()) << health.error();
}

TEST_F(UnixSocketTest, AFileThatIsNotASocketIsLeftAlone) {
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
    std::ofstream(path_) << "precious";
    EXPECT_THROW(SeqpacketServer server(path_), std::runtime_error);
    std::ifstream in(path_);
    std::string content;
    in >> content;
    EXPECT_EQ(content, "precious");
}

TEST_F(UnixSocketTest, DestructorRemovesTheSocketFile) {
    {
        SeqpacketServer server(path_);
        EXPECT_TRUE(std::filesystem::exists(path_));
    }
    EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(UnixSocketTest, MovedServerRemovesTheSocketFileOnce) {
    {
        SeqpacketServer original(path_);
        SeqpacketServer moved(std::move(original));
        EXPECT_EQ(moved.path(), path_);
        EXPECT_TRUE(std::filesystem::exists(path_));
    }
    EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(UnixSocketTest, HungUpClientsAreDropped) {
    SeqpacketServer server(path_);
    auto no_reply = [](std::span<const uint8_t>) { return Bytes{}; };
    {
        FileDescriptor a = raw_connect(path_);
        FileDescriptor b = raw_connect(path_);
        server.poll_once(100, no_reply);
        EXPECT_EQ(server.client_count(), 2u);
    }
    for (int i = 0; i < 10 && server.client_count() > 0; ++i) server.poll_once(100, no_reply);
    EXPECT_EQ(server.client_count(), 0u);
}

TEST_F(UnixSocketTest, AtMost64ClientsAndTheNewestIsClosed) {
    SeqpacketServer server(path_);
    auto no_reply = [](std::span<const uint8_t>) { return Bytes{}; };
    std::vector<FileDescriptor> clients;
    for (size_t i = 0; i < SeqpacketServer::kMaxClients; ++i) {
        clients.push_back(raw_connect(path_));
    }
    for (int i = 0; i < 10 && server.client_count() < SeqpacketServer::kMaxClients; ++i) {
        server.poll_once(100, no_reply);
    }
    ASSERT_EQ(server.client_count(), SeqpacketServer::kMaxClients);

    FileDescriptor extra = raw_connect(path_);
    server.poll_once(100, no_reply);
    EXPECT_EQ(server.client_count(), SeqpacketServer::kMaxClients);
    auto hang_up = raw_receive(extra, 1000);
    ASSERT_TRUE(hang_up.has_value());
    EXPECT_TRUE(hang_up->empty());  // closed by the server
}

TEST_F(UnixSocketTest, PathTooLongIsRefused) {
    std::string long_path = dir_ + "/" + std::string(200, 'p');
    EXPECT_THROW(SeqpacketServer server(long_path), std::runtime_error);
    EXPECT_FALSE(DataplaneClient::connect(long_path).ok());
}

TEST(UnixSocketHandleDatagram, DispatchExceptionsBecomeInternalErrors) {
    Bytes reply = handle_datagram(
        encode(Request{9, GetSessionRequest{3}}),
        [](const Request&) -> Response { throw std::runtime_error("worker 1 gone"); });
    auto decoded = decode_response(reply);
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    EXPECT_EQ(decoded->status, Status::internal);
    EXPECT_EQ(decoded->request_id, 9u);
    EXPECT_EQ(decoded->type, MsgType::get_session);
    EXPECT_NE(decoded->error.find("worker 1 gone"), std::string::npos);
}

TEST(UnixSocketHandleDatagram, AReplyBodyThatDoesNotFitTheTypeIsAnInternalError) {
    Bytes reply = handle_datagram(encode(Request{9, GetSessionRequest{3}}),
                                  [](const Request&) { return Response{}; });  // no SessionReply
    auto decoded = decode_response(reply);
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    EXPECT_EQ(decoded->status, Status::internal);
    EXPECT_EQ(decoded->request_id, 9u);
}

TEST(UnixSocketHandleDatagram, EchoesIdAndTypeOverWhatDispatchSays) {
    Bytes reply = handle_datagram(encode(Request{21, RemoveSessionRequest{3}}), [](const Request&) {
        return Response{999, MsgType::health, Status::ok, "", EmptyReply{}};
    });
    auto decoded = decode_response(reply);
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    EXPECT_EQ(decoded->request_id, 21u);
    EXPECT_EQ(decoded->type, MsgType::remove_session);
    EXPECT_EQ(decoded->status, Status::ok);
}

TEST(UnixSocketHandleDatagram, UnsupportedVersionReplyCarriesOurVersion) {
    Bytes request = encode(Request{5, HealthRequest{}});
    request[5] = kVersion + 1;  // a version from the future
    bool dispatched = false;
    Bytes reply = handle_datagram(request, [&](const Request&) {
        dispatched = true;
        return Response{};
    });
    EXPECT_FALSE(dispatched);
    ASSERT_GE(reply.size(), 6u);
    EXPECT_EQ(reply[4], 0);
    EXPECT_EQ(reply[5], kVersion);
    auto decoded = decode_response(reply);
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    EXPECT_EQ(decoded->status, Status::unsupported_version);
    EXPECT_EQ(decoded->request_id, 5u);
}

}  // namespace
}  // namespace relay::ipc
