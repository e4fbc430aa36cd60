// Writes seed inputs for every fuzz target into OUTDIR/<target>/:
//   - packet_processor: the frame sequence of every Harness in the data-plane fixture
//     suite (it runs the suite, recording), plus forged-handshake sequences that show
//     the fuzzer the mac1 and checksum fix-ups (packet_format.hpp);
//   - the codecs: one encoding of each message type (fixed keys, fuzz_keys.hpp);
//   - the configs: the repository's configs/*.yaml and a valid agent config;
//   - wg_dump: dumps as wg prints them.
// `make fuzz-seeds` runs it and keeps, per target, only the seeds that add coverage
// (libFuzzer -merge) in tests/fuzz/corpus/.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core_harness.hpp"
#include "fixture_harness.hpp"
#include "fuzz_keys.hpp"
#include "packet_format.hpp"
#include "relay/control/credentials.hpp"
#include "relay/control/envelope.hpp"
#include "relay/control/messages.hpp"
#include "relay/ipc/dataplane_protocol.hpp"
#include "relay/wire/bind.hpp"
#include "relay/wire/stun.hpp"
#include "wireguard_vectors.hpp"

namespace {

using namespace relay;
namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

fs::path g_out;
std::set<std::pair<std::string, Bytes>> g_written;

void write_seed(const std::string& target, const Bytes& bytes) {
    if (!g_written.insert({target, bytes}).second) return;
    const fs::path dir = g_out / target;
    fs::create_directories(dir);
    char name[32];
    std::snprintf(name, sizeof name, "seed-%04zu", g_written.size());
    std::ofstream(dir / name, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
}
void write_seed(const std::string& target, const std::string& text) {
    write_seed(target, Bytes(text.begin(), text.end()));
}

// --- packet_processor ---------------------------------------------------------

void record_harness(const fixtures::Harness& h) {
    Bytes seed;
    uint64_t now = fixtures::kStart;
    size_t records = 0;
    for (const auto& s : h.sent) {
        if (records++ == fuzz::kMaxRecords) break;
        fuzz::Record r;
        r.ctl = s.port == fixtures::kVlanPort ? fuzz::kVlanPortBit : 0;
        if (s.now != now) {
            r.ctl |= fuzz::kAdvance;
            r.delta_ms = static_cast<uint32_t>((s.now - now) / fixtures::kMs);
            now += uint64_t{r.delta_ms} * fixtures::kMs;
        }
        r.frame = s.frame;
        fuzz::append_record(seed, r);
    }
    if (!seed.empty()) write_seed("packet_processor", seed);
}

void forged_handshake_seeds() {
    using namespace relay::fixtures;
    namespace v = wg_vectors;
    auto frame = [](SocketAddress from, const Bytes& payload) {
        return inbound(from, kWgPort).payload(payload).build();
    };
    auto rec = [](uint8_t ctl, Bytes f) { return fuzz::Record{ctl, 0, std::move(f)}; };
    // The real latch, then an attacker's own initiation "from A" with a mac1 it computed
    // (the fix-up bits), and a response "from B" answering it.
    Bytes init = bytes_of(v::kInitiation1);
    init[4] ^= 0x5a;  // a sender index of its own
    Bytes resp = bytes_of(v::kResponse1);
    resp[8] ^= 0x5a;
    const uint8_t forge_to_b = fuzz::kFixMac1 | fuzz::kMac1ToB | fuzz::kFixUp;
    const uint8_t forge_to_a = fuzz::kFixMac1 | fuzz::kFixUp;
    std::vector<fuzz::Record> seq = {
        rec(0, frame(kPeerA, bytes_of(v::kInitiation1))),
        rec(0, frame(kPeerB, bytes_of(v::kInitiationFromB))),
        rec(0, frame(kPeerA, bytes_of(v::kInitiation1))),
        rec(0, frame(kPeerB, bytes_of(v::kResponse1))),
        rec(forge_to_b, frame(kAttacker, init)),
        rec(forge_to_a, frame(kAttacker2, resp)),
        rec(0, frame(kPeerA, bytes_of(v::kDataAtoB1))),
    };
    Bytes seed;
    for (const auto& r : seq) fuzz::append_record(seed, r);
    write_seed("packet_processor", seed);
    // The same frames as one burst.
    Bytes burst;
    for (auto r : seq) {
        r.ctl |= fuzz::kBurst;
        fuzz::append_record(burst, r);
    }
    write_seed("packet_processor", burst);
}

// --- codecs -------------------------------------------------------------------

SessionSpec sample_spec(LatchPolicy policy) {
    SessionSpec s;
    s.id = 0x1234;
    s.relay_ip = 0xc633640a;
    s.relay_port = 40000;
    s.policy = policy;
    s.sides[0].public_key = fixtures::wg_vectors::kPeerAPublicKey;
    s.sides[1].public_key = fixtures::wg_vectors::kPeerBPublicKey;
    s.sides[0].allowed_source = {0xcb007100, 24};
    s.sides[1].allowed_port = 51821;
    if (policy == LatchPolicy::bind) s.bind_secret.fill(0xb1);
    s.limits = {1000, 1'000'000, 100, 100'000};
    return s;
}

SessionStats sample_stats() {
    SessionStats st;
    st.spec = sample_spec(LatchPolicy::wireguard);
    st.sides[0].latched = true;
    st.sides[0].endpoint = {0xcb007105, 51820};
    st.sides[1].has_candidate = true;
    st.sides[1].candidate = {0xc633644d, 51821};
    st.sides[0].rx_packets = 5;
    st.idle_ms = 10;
    st.age_ms = 1000;
    return st;
}

void ipc_seeds() {
    using namespace relay::ipc;
    SessionUpdate u;
    u.id = 0x1234;
    u.allowed_port = {51820, 0};
    const RequestBody requests[] = {HealthRequest{},
                                    AddSessionRequest{sample_spec(LatchPolicy::wireguard)},
                                    AddSessionRequest{sample_spec(LatchPolicy::bind)},
                                    UpdateSessionRequest{u},
                                    RemoveSessionRequest{0x1234},
                                    GetSessionRequest{0x1234},
                                    ListSessionsRequest{0, 128}};
    uint32_t id = 1;
    for (const auto& b : requests) write_seed("ipc_codec", encode(Request{id++, b}));
    HealthReply health{0xfeed, 1000, 2, 1, 3, 65536, {0xc633640a, 0xcb00710a}};
    ListSessionsReply list{{sample_stats(), sample_stats()}, true};
    const Response responses[] = {
        {1, MsgType::health, Status::ok, "", health},
        {2, MsgType::add_session, Status::ok, "", EmptyReply{}},
        {3, MsgType::add_session, Status::exists, "session 4660 exists", EmptyReply{}},
        {4, MsgType::get_session, Status::ok, "", SessionReply{sample_stats()}},
        {5, MsgType::list_sessions, Status::ok, "", list},
    };
    for (const auto& r : responses) write_seed("ipc_codec", encode(r));
}

std::vector<control::Message> sample_messages() {
    using namespace relay::control;
    const uint64_t ts = 1'700'000'000'000ULL;
    PublicKey peer = fixtures::wg_vectors::kPeerBPublicKey;
    RegisterPeer reg{"rly1.token", fixtures::wg_vectors::kPeerAPublicKey,     51820, peer,
                     40000,        {{0x0a000002, 51820}, {0xc0a80102, 51820}}};
    Punch punch{7,
                peer,
                120,
                2500,
                {{{0xcb007105, 51820}, CandidateKind::reflexive},
                 {{0x0a000003, 51820}, CandidateKind::local}}};
    BindSecret secret;
    secret.fill(0xb1);
    return {
        {ts, 1, reg},
        {ts, 2, Keepalive{1500, true, true, false}},
        {ts, 3, Connect{peer, true}},
        {ts, 4, ResultReport{7, peer, Outcome::direct_failed, 2500}},
        {ts, 5, Release{0x1234}},
        {ts, 6, Deregister{}},
        {ts, 1, Registered{{0xcb007105, 40000}, 20, 75}},
        {ts, 2, Status{{0xcb007105, 40000}, NatClass::port_restricted, {0xcb007105, 51820}, 3479}},
        {ts, 3, ConnectAck{7, false}},
        {ts, 5, Ok{}},
        {ts, 4, Error{ErrorCode::unknown_peer, "no such peer in your network"}},
        {ts, 0, punch},
        {ts, 0,
         RelayOffer{7, 0x1234, peer, {0xc633640a, 40000}, LatchPolicy::wireguard, 0, {}, 180}},
        {ts, 0,
         RelayOffer{8, 0x1235, peer, {0xc633640a, 40001}, LatchPolicy::bind, 1, secret, 180}},
    };
}

void control_seeds() {
    using namespace relay::control;
    for (const Message& m : sample_messages()) {
        const Bytes plain = encode(m);
        write_seed("control_messages", plain);
        const bool to_server = static_cast<uint8_t>(type_of(m.body)) < 0x80;
        // envelope: 0/1 sealed datagrams, 2/3 plaintexts the target seals.
        Bytes sealed_mode = {uint8_t(to_server ? 0 : 1)};
        const Bytes sealed =
            to_server ? seal_request(fuzz::agent_keys().public_key, fuzz::agent_server_key(), plain)
                      : seal_reply(fuzz::agent_server_key(), plain);
        sealed_mode.insert(sealed_mode.end(), sealed.begin(), sealed.end());
        write_seed("envelope", sealed_mode);
        Bytes plain_mode = {uint8_t(to_server ? 2 : 3)};
        plain_mode.insert(plain_mode.end(), plain.begin(), plain.end());
        write_seed("envelope", plain_mode);
        if (to_server) continue;
        // control_client: the reply sealed with a fresh timestamp, then replayed.
        Bytes records;
        auto add = [&](uint8_t ctl, const Bytes& b) {
            records.push_back(ctl);
            records.push_back(static_cast<uint8_t>(b.size()));
            records.push_back(static_cast<uint8_t>(b.size() >> 8));
            records.insert(records.end(), b.begin(), b.end());
        };
        add(1 | 2, plain);
        add(4, {});
        write_seed("control_client", records);
    }
    // A request from a key the server has never seen (its shared key is derived).
    const KeyPair stranger = fuzz::key_pair_from(0x33);
    const Bytes plain = encode(sample_messages()[1]);
    Bytes d = {0};
    const Bytes sealed =
        seal_request(stranger.public_key,
                     *shared_key(fuzz::server_keys().public_key, stranger.secret_key), plain);
    d.insert(d.end(), sealed.begin(), sealed.end());
    write_seed("envelope", d);
}

void stun_seeds() {
    using namespace relay::wire::stun;
    const TransactionId tid = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    for (size_t len : {20, 28, 64, 100}) write_seed("stun", make_binding_request(tid, len));
    // A bare 20-byte header (what coturn's client sends).
    Bytes bare = make_binding_request(tid, 28);
    bare.resize(20);
    bare[2] = bare[3] = 0;
    write_seed("stun", bare);
    for (size_t limit : {32, 40, 52, 68})
        write_seed("stun", *make_binding_success(tid, {0xcb007105, 51820}, limit));
}

void bind_seeds() {
    using namespace relay::wire;
    for (uint8_t side : {0, 1}) {
        const SocketAddress observed{0xcb007105, static_cast<uint16_t>(51820 + side)};
        Bytes seed = {0xcb,
                      0x00,
                      0x71,
                      0x05,
                      static_cast<uint8_t>(observed.port >> 8),
                      static_cast<uint8_t>(observed.port)};
        const auto req = bind::make_request(fixtures::bind_secret(), fixtures::kBindSessionId, side,
                                            1 + side, observed);
        seed.insert(seed.end(), req.begin(), req.end());
        write_seed("bind_packet", seed);
    }
}

void config_seeds(const fs::path& source_root) {
    for (const auto& entry : fs::directory_iterator(source_root / "configs")) {
        if (entry.path().extension() != ".yaml") continue;
        std::ifstream in(entry.path(), std::ios::binary);
        std::stringstream text;
        text << in.rdbuf();
        write_seed("config_yaml", text.str());
    }
    control::NetworkSecret secret{};
    secret[0] = 7;
    const std::string token = control::issue_token({"lab", 1, 4102444800}, secret);
    const std::string server = control::key_to_base64(fuzz::server_keys().public_key);
    write_seed("agent_config",
               "interface: wg0\n"
               "key_file: /var/lib/relay-peer/wg0.key\n"
               "control:\n"
               "  address: 198.51.100.7\n"
               "  ports: [4478, 4479]\n"
               "  server_public_key: " +
                   server + "\ntoken: " + token +
                   "\npersistent_keepalive_s: 15\n"
                   "status_socket: /run/relay-peer/wg0.sock\n"
                   "wg_program: wg\n");
    write_seed("agent_config",
               "interface: wg0\nkey_file: /k\ncontrol: {address: 10.0.0.1, "
               "server_public_key: " +
                   server + "}\ntoken_file: /nonexistent/token\n");
}

void wg_dump_seeds() {
    const std::string a = control::key_to_base64(fixtures::wg_vectors::kPeerAPublicKey);
    const std::string b = control::key_to_base64(fixtures::wg_vectors::kPeerBPublicKey);
    const std::string priv = control::key_to_base64(fixtures::wg_vectors::kPeerAPrivateKey);
    const std::string own = priv + "\t" + a + "\t51820\toff\n";
    write_seed("wg_dump", own);
    write_seed("wg_dump", own + b +
                              "\t(none)\t203.0.113.9:40000\t100.64.0.2/32,10.9.0.0/16\t1764700000\t"
                              "1480\t2960\t25\n" +
                              a + "\t(none)\t(none)\t(none)\t0\t0\t0\toff\n");
}

// control_core: records  ctl len bytes  (control_core_fuzz.cpp has the ctl bits).
void control_core_seeds() {
    using namespace relay::control;
    namespace t = relay::control::testing;
    auto add = [](Bytes& seed, uint8_t ctl, const Bytes& b) {
        seed.push_back(ctl);
        seed.push_back(static_cast<uint8_t>(b.size()));
        seed.push_back(static_cast<uint8_t>(b.size() >> 8));
        seed.insert(seed.end(), b.begin(), b.end());
    };
    constexpr uint8_t kFromA = 0, kFromB = 2, kFromStranger = 4, kAsA = 0x08, kAsB = 0x10,
                      kAsStranger = 0x18, kNow = 0x20, kLater = 0x40, kTimers = 0x80;
    const uint64_t ts = t::kStartMs;
    const PublicKey b_wg = fuzz::key_pair_from(0x0b + 1).public_key;
    const PublicKey a_probe = fuzz::key_pair_from(0x0a + 2).public_key;
    const std::string token =
        issue_token({"alpha", 1, t::kStartMs / 1000 + 3600}, t::secret_of("alpha", 1));
    const wire::stun::TransactionId tid = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};

    Bytes unauthenticated;
    add(unauthenticated, kFromStranger, wire::stun::make_binding_request(tid, 20));
    add(unauthenticated, kFromStranger | 1, wire::stun::make_binding_request(tid, 64));
    add(unauthenticated, kFromStranger, t::wireguard_initiation(a_probe));
    add(unauthenticated, kFromStranger | kAsStranger | kNow, encode({ts, 1, Keepalive{}}));
    add(unauthenticated, kFromStranger | kAsStranger | kNow,
        encode(
            {ts, 2,
             RegisterPeer{"rly1.AAAA", fuzz::key_pair_from(0x0d).public_key, 51820, {}, 0, {}}}));
    write_seed("control_core", unauthenticated);

    Bytes pair;
    add(pair, kFromA | kAsA | kNow, encode({ts, 10, Keepalive{1000, false, false, false}}));
    add(pair, kFromA | 1 | kAsA | kNow, encode({ts, 11, Keepalive{1000, true, false, false}}));
    add(pair, kFromB | kAsB | kNow, encode({ts, 10, Keepalive{1000, false, true, true}}));
    add(pair, kFromA | kAsA | kNow, encode({ts, 12, Connect{b_wg, false}}));
    add(pair, kFromA | kAsA | kNow | kLater | kTimers,
        encode({ts, 13, ResultReport{1, b_wg, Outcome::direct_failed, 2500}}));
    add(pair, kFromA | kAsA | kNow, encode({ts, 14, Connect{b_wg, true}}));
    add(pair, kFromB | kAsB | kNow, encode({ts, 11, Release{1}}));
    add(pair, kFromA | kAsA | kNow, encode({ts, 15, Deregister{}}));
    write_seed("control_core", pair);

    Bytes stranger;
    RegisterPeer reg{token, fuzz::key_pair_from(0x0d).public_key,
                     51820, fuzz::key_pair_from(0x0e).public_key,
                     40000, {{0x0a000002, 51820}}};
    add(stranger, kFromStranger | kAsStranger | kNow, encode({ts, 1, reg}));
    add(stranger, kFromStranger | kAsStranger | kNow, encode({ts, 2, Connect{b_wg, true}}));
    add(stranger, kFromStranger | kAsStranger, encode({ts, 1, reg}));  // stale timestamp
    write_seed("control_core", stranger);
}

}  // namespace

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (argc != 2) {
        std::cerr << "usage: fuzz-make-seeds OUTDIR\n";
        return 2;
    }
    g_out = argv[1];
    fs::create_directories(g_out);

    // The fixture suite, quietly, recording each harness's frames.
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    fixtures::Harness::on_done = record_harness;
    const int suite = RUN_ALL_TESTS();
    fixtures::Harness::on_done = nullptr;
    if (suite != 0)
        std::cerr << "fuzz-make-seeds: the fixture suite failed (seeds written anyway)\n";

    forged_handshake_seeds();
    ipc_seeds();
    control_seeds();
    stun_seeds();
    bind_seeds();
    config_seeds(RELAY_SOURCE_ROOT);
    wg_dump_seeds();
    control_core_seeds();
    std::cout << "fuzz-make-seeds: " << g_written.size() << " seeds in " << g_out << "\n";
    return 0;
}
