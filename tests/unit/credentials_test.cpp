// Network tokens, base64 keys and key files (relay/control/credentials.hpp).
// Known answers come from implementations other than libsodium:
// - the token from Python's hashlib.blake2b and base64 (see TokenMatchesIndependentEncoding);
// - the public key from wireguard-tools (see Credential.PublicKeyMatchesWgPubkey).
#include <gtest/gtest.h>
#include <sodium.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "relay/control/credentials.hpp"

using namespace relay::control;

namespace {

NetworkSecret test_secret(uint8_t start = 0) {
    NetworkSecret s{};
    for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<uint8_t>(start + i);
    return s;
}

constexpr uint64_t kNow = 1'700'000'000;

// Base64url (no padding) helpers to take tokens apart and put them back together.
std::vector<uint8_t> token_body(const std::string& token) {
    const std::string b64 = token.substr(5);
    std::vector<uint8_t> out(b64.size());
    size_t len = 0;
    EXPECT_EQ(sodium_base642bin(out.data(), out.size(), b64.data(), b64.size(), nullptr, &len,
                                nullptr, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
              0);
    out.resize(len);
    return out;
}

std::string make_token(const std::vector<uint8_t>& body) {
    constexpr int v = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
    std::string b64(sodium_base64_ENCODED_LEN(body.size(), v), '\0');
    sodium_bin2base64(b64.data(), b64.size(), body.data(), body.size(), v);
    b64.resize(b64.size() - 1);  // the terminating NUL
    return "rly1." + b64;
}

// A fresh directory under /tmp, removed with everything in it at the end of the test.
class TempDir {
  public:
    TempDir() {
        char templ[] = "/tmp/relay-credentials-test-XXXXXX";
        if (!mkdtemp(templ)) throw std::runtime_error("mkdtemp failed");
        path_ = templ;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string file(const std::string& name) const { return path_ + "/" + name; }

  private:
    std::string path_;
};

void write_file(const std::string& path, const std::string& content, mode_t mode) {
    {
        std::ofstream f(path, std::ios::binary | std::ios::trunc);
        f << content;
    }
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

// ---- tokens -------------------------------------------------------------------

TEST(Token, RoundTrip) {
    const TokenClaims claims{"office-net_2", 7, kNow + 3600};
    const std::string token = issue_token(claims, test_secret());
    EXPECT_EQ(token.rfind("rly1.", 0), 0u);
    EXPECT_EQ(token.find('='), std::string::npos);

    auto parsed = parse_token(token);
    ASSERT_TRUE(parsed.ok()) << to_string(parsed.error());
    EXPECT_EQ(*parsed, claims);
    auto verified = verify_token(token, test_secret(), kNow);
    ASSERT_TRUE(verified.ok()) << to_string(verified.error());
    EXPECT_EQ(*verified, claims);
}

TEST(Token, MatchesIndependentEncoding) {
    // Python 3:
    //   body = bytes([5]) + b"alpha" + bytes([3]) + (1700000000).to_bytes(8, "big")
    //   mac = hashlib.blake2b(body, key=bytes(range(32)), digest_size=32).digest()
    //   "rly1." + base64.urlsafe_b64encode(body + mac).decode().rstrip("=")
    const std::string expected =
        "rly1.BWFscGhhAwAAAABlU_EAPwUnT2BeZ3BVURVSE77fwa_hhQrngXGgT-lJchaADLE";
    const TokenClaims claims{"alpha", 3, 1'700'000'000};
    EXPECT_EQ(issue_token(claims, test_secret()), expected);
    auto verified = verify_token(expected, test_secret(), 1'600'000'000);
    ASSERT_TRUE(verified.ok()) << to_string(verified.error());
    EXPECT_EQ(*verified, claims);
}

TEST(Token, LongestAndShortestNames) {
    for (const std::string& name : {std::string("a"), std::string(32, 'z'), std::string("0-_9")}) {
        const TokenClaims claims{name, 255, UINT64_MAX};
        auto verified = verify_token(issue_token(claims, test_secret()), test_secret(), kNow);
        ASSERT_TRUE(verified.ok()) << name;
        EXPECT_EQ(*verified, claims);
    }
}

TEST(Token, Expired) {
    const std::string token = issue_token({"net", 1, kNow}, test_secret());
    auto at_expiry = verify_token(token, test_secret(), kNow);
    ASSERT_FALSE(at_expiry.ok());
    EXPECT_EQ(at_expiry.error(), TokenError::expired);
    EXPECT_EQ(verify_token(token, test_secret(), kNow + 1).error(), TokenError::expired);
    EXPECT_TRUE(verify_token(token, test_secret(), kNow - 1).ok());
    // parse_token does not judge expiry.
    EXPECT_TRUE(parse_token(token).ok());
}

TEST(Token, WrongSecretIsBadMac) {
    const std::string token = issue_token({"net", 1, kNow + 60}, test_secret());
    auto v = verify_token(token, test_secret(1), kNow);
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.error(), TokenError::bad_mac);
    // Expired and forged: the MAC is judged first.
    EXPECT_EQ(verify_token(token, test_secret(1), kNow + 3600).error(), TokenError::bad_mac);
}

TEST(Token, TamperedFieldsAreBadMac) {
    const std::string token = issue_token({"alpha", 1, kNow + 60}, test_secret());
    const auto body = token_body(token);
    ASSERT_EQ(body.size(), 1u + 5 + 1 + 8 + 32);

    auto name = body;
    name[1] = 'b';  // "blpha": still a valid name
    EXPECT_EQ(verify_token(make_token(name), test_secret(), kNow).error(), TokenError::bad_mac);

    auto secret_id = body;
    secret_id[6] = 2;
    EXPECT_EQ(verify_token(make_token(secret_id), test_secret(), kNow).error(),
              TokenError::bad_mac);

    auto expiry = body;
    expiry[7] = 0x7f;  // far in the future
    EXPECT_EQ(verify_token(make_token(expiry), test_secret(), kNow).error(), TokenError::bad_mac);

    auto mac = body;
    mac.back() ^= 0x01;
    EXPECT_EQ(verify_token(make_token(mac), test_secret(), kNow).error(), TokenError::bad_mac);
}

TEST(Token, EveryBitFlipIsRejected) {
    const std::string token = issue_token({"alpha", 1, kNow + 60}, test_secret());
    const auto body = token_body(token);
    for (size_t byte = 0; byte < body.size(); ++byte) {
        for (int bit = 0; bit < 8; ++bit) {
            auto b = body;
            b[byte] ^= static_cast<uint8_t>(1u << bit);
            auto v = verify_token(make_token(b), test_secret(), kNow);
            ASSERT_FALSE(v.ok()) << byte << " " << bit;
            EXPECT_TRUE(v.error() == TokenError::bad_mac || v.error() == TokenError::malformed)
                << byte << " " << bit << " " << to_string(v.error());
        }
    }
    // And every character of the text replaced by another base64url character.
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 5; i < token.size(); ++i) {
        for (char c : alphabet) {
            if (c == token[i]) continue;
            std::string t = token;
            t[i] = c;
            EXPECT_FALSE(verify_token(t, test_secret(), kNow).ok()) << i << " " << c;
        }
    }
}

TEST(Token, GarbageIsMalformed) {
    const std::string good = issue_token({"alpha", 1, kNow + 60}, test_secret());
    const std::vector<std::string> bad = {
        "",
        "rly1.",
        "rly1",
        "hello world",
        good.substr(5),                                         // missing prefix
        "rly2." + good.substr(5),                               // other prefix
        "RLY1." + good.substr(5),                               // prefixes are case sensitive
        good + "=",                                             // padding is not part of the format
        good + "A",                                             // trailing data
        good.substr(0, good.size() - 1),                        // truncated
        good.substr(0, 20),                                     // truncated more
        "rly1." + good.substr(6),                               // a character short at the front
        "rly1.!!!!" + good.substr(9),                           // not base64
        "rly1." + good.substr(5, 10) + "+/" + good.substr(17),  // standard, not url-safe
        good.substr(0, 10) + " " + good.substr(11),             // whitespace
        good.substr(0, 10) + std::string(1, '\0') + good.substr(11),
        "rly1." + std::string(200, 'A'),  // too long
    };
    for (const auto& t : bad) {
        auto p = parse_token(t);
        ASSERT_FALSE(p.ok()) << t;
        EXPECT_EQ(p.error(), TokenError::malformed) << t;
        auto v = verify_token(t, test_secret(), kNow);
        ASSERT_FALSE(v.ok()) << t;
        EXPECT_EQ(v.error(), TokenError::malformed) << t;
    }
}

TEST(Token, NonCanonicalBase64IsMalformed) {
    // The body of a 5-letter network is 47 bytes: 63 characters, the last carrying two
    // bits that must be zero.  Setting one gives the same bytes under another text.
    const std::string good = issue_token({"alpha", 1, kNow + 60}, test_secret());
    ASSERT_EQ(good.size(), 5u + 63);
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const size_t last = alphabet.find(good.back());
    ASSERT_EQ(last % 4, 0u);
    std::string t = good;
    t.back() = alphabet[last + 1];
    EXPECT_EQ(parse_token(t).error(), TokenError::malformed);
}

TEST(Token, BadBodiesAreMalformed) {
    const auto body = token_body(issue_token({"alpha", 1, kNow + 60}, test_secret()));
    auto zero_len = body;
    zero_len[0] = 0;
    EXPECT_EQ(parse_token(make_token(zero_len)).error(), TokenError::malformed);
    auto long_len = body;
    long_len[0] = 6;  // says 6, the body fits 5
    EXPECT_EQ(parse_token(make_token(long_len)).error(), TokenError::malformed);
    auto short_len = body;
    short_len[0] = 4;
    EXPECT_EQ(parse_token(make_token(short_len)).error(), TokenError::malformed);
    auto upper = body;
    upper[1] = 'A';  // upper case is not allowed in names
    EXPECT_EQ(parse_token(make_token(upper)).error(), TokenError::malformed);
    auto dot = body;
    dot[2] = '.';
    EXPECT_EQ(parse_token(make_token(dot)).error(), TokenError::malformed);
    auto nul = body;
    nul[3] = 0;
    EXPECT_EQ(parse_token(make_token(nul)).error(), TokenError::malformed);
    auto extra = body;
    extra.push_back(0);
    EXPECT_EQ(parse_token(make_token(extra)).error(), TokenError::malformed);

    // A 33-character name, encoded by hand (issue_token refuses to make one).
    std::vector<uint8_t> too_long(1 + 33 + 1 + 8 + 32, 'a');
    too_long[0] = 33;
    EXPECT_EQ(parse_token(make_token(too_long)).error(), TokenError::malformed);
}

TEST(Token, IssueRefusesInvalidNames) {
    for (const std::string& name : {std::string(), std::string(33, 'a'), std::string("Alpha"),
                                    std::string("a.b"), std::string("a b"), std::string("é")}) {
        EXPECT_FALSE(valid_network_name(name)) << name;
        EXPECT_THROW(issue_token({name, 1, kNow}, test_secret()), std::invalid_argument) << name;
    }
    EXPECT_TRUE(valid_network_name("a"));
    EXPECT_TRUE(valid_network_name(std::string(32, '-')));
    EXPECT_TRUE(valid_network_name("net_01-b"));
}

TEST(Token, ErrorNames) {
    EXPECT_STREQ(to_string(TokenError::malformed), "malformed");
    EXPECT_STREQ(to_string(TokenError::unknown_network), "unknown_network");
    EXPECT_STREQ(to_string(TokenError::unknown_secret), "unknown_secret");
    EXPECT_STREQ(to_string(TokenError::bad_mac), "bad_mac");
    EXPECT_STREQ(to_string(TokenError::expired), "expired");
}

// ---- base64 keys --------------------------------------------------------------

TEST(Credential, PublicKeyMatchesWgPubkey) {
    // From wireguard-tools, run once when this test was written:
    //   $ echo AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= | wg pubkey
    //   j0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8=
    //   $ echo YHfQK2pqVr0BTKP6gmzWKVI6SgOQt3sYHhAJbbj6J0o= | wg pubkey
    //   pHEUsP67Fop9rgyfQcEZtOny83u94RQ4YUmVQLAc8xA=
    // The first secret is bytes 0..31, not clamped: both sides clamp when they use it.
    const std::pair<const char*, const char*> pairs[] = {
        {"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
         "j0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8="},
        {"YHfQK2pqVr0BTKP6gmzWKVI6SgOQt3sYHhAJbbj6J0o=",
         "pHEUsP67Fop9rgyfQcEZtOny83u94RQ4YUmVQLAc8xA="},
    };
    for (const auto& [secret_b64, public_b64] : pairs) {
        auto secret = key_from_base64(secret_b64);
        ASSERT_TRUE(secret.has_value());
        EXPECT_EQ(key_to_base64(public_key_of(*secret)), public_b64);
    }
    auto first = key_from_base64(pairs[0].first);
    for (size_t i = 0; i < 32; ++i) EXPECT_EQ((*first)[i], i);
}

TEST(Credential, Base64RoundTrip) {
    for (int i = 0; i < 50; ++i) {
        const KeyPair kp = generate_key_pair();
        const std::string text = key_to_base64(kp.public_key);
        EXPECT_EQ(text.size(), 44u);
        EXPECT_EQ(text.back(), '=');
        auto back = key_from_base64(text);
        ASSERT_TRUE(back.has_value());
        EXPECT_EQ(*back, kp.public_key);
    }
}

TEST(Credential, Base64RejectsWhatIsNotAKey) {
    const std::string good = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    ASSERT_TRUE(key_from_base64(good).has_value());
    const std::vector<std::string> bad = {
        "",
        good.substr(0, 43),                                // padding missing
        good + "\n",                                       // callers trim
        " " + good,                                        //
        good.substr(0, 42) + "==",                         // 31 bytes
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8fAA",  // 34 bytes, no padding
        good.substr(0, 10) + "-" + good.substr(11),        // url-safe alphabet
        good.substr(0, 10) + "!" + good.substr(11),        // not base64
        good.substr(0, 42) + "9=",                         // non-zero trailing bits
        std::string(44, '='),
    };
    for (const auto& t : bad) EXPECT_FALSE(key_from_base64(t).has_value()) << "'" << t << "'";
}

// ---- key files ----------------------------------------------------------------

TEST(KeyFile, WriteThenReadGivesTheSamePair) {
    TempDir dir;
    const std::string path = dir.file("server.key");
    auto written = write_new_key_file(path);
    ASSERT_TRUE(written.ok()) << written.error();
    EXPECT_EQ(written->public_key, public_key_of(written->secret_key));

    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    const std::string content = read_file(path);
    EXPECT_EQ(content, key_to_base64(written->secret_key) + "\n");

    auto read = read_key_file(path);
    ASSERT_TRUE(read.ok()) << read.error();
    EXPECT_EQ(read->secret_key, written->secret_key);
    EXPECT_EQ(read->public_key, written->public_key);
}

TEST(KeyFile, ModeIsSetDespiteTheUmask) {
    TempDir dir;
    const mode_t old = ::umask(0277);  // would leave 0400
    auto written = write_new_key_file(dir.file("k"));
    ::umask(old);
    ASSERT_TRUE(written.ok()) << written.error();
    struct stat st {};
    ASSERT_EQ(::stat(dir.file("k").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST(KeyFile, LooseModesAreRefusedNamingPathAndMode) {
    TempDir dir;
    const std::string path = dir.file("loose.key");
    const std::string key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
    for (mode_t mode : {0644, 0640, 0604, 0660, 0601, 0610, 0777}) {
        write_file(path, key, mode);
        auto r = read_key_file(path);
        ASSERT_FALSE(r.ok()) << std::oct << mode;
        char expected[8];
        std::snprintf(expected, sizeof expected, "%04o", static_cast<unsigned>(mode));
        EXPECT_NE(r.error().find(path), std::string::npos) << r.error();
        EXPECT_NE(r.error().find(std::string("mode ") + expected + " is looser than 0600"),
                  std::string::npos)
            << r.error();
        EXPECT_NE(r.error().find("chmod 600 " + path), std::string::npos) << r.error();
        // The secret never appears in an error.
        EXPECT_EQ(r.error().find("AAECAw"), std::string::npos) << r.error();
    }
}

TEST(KeyFile, OwnerOnlyModesAreAccepted) {
    TempDir dir;
    const std::string path = dir.file("ok.key");
    for (mode_t mode : {0600, 0400, 0700}) {
        write_file(path, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", mode);
        auto r = read_key_file(path);
        ASSERT_TRUE(r.ok()) << std::oct << mode << " " << r.error();
        EXPECT_EQ(key_to_base64(r->public_key), "j0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8=");
    }
}

TEST(KeyFile, SurroundingWhitespaceIsIgnored) {
    TempDir dir;
    const std::string path = dir.file("ws.key");
    for (const std::string& content :
         {std::string("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
          std::string("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\r\n"),
          std::string("  AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\n")}) {
        write_file(path, content, 0600);
        auto r = read_key_file(path);
        ASSERT_TRUE(r.ok()) << r.error();
    }
}

TEST(KeyFile, MissingFileIsRefused) {
    TempDir dir;
    const std::string path = dir.file("absent.key");
    auto r = read_key_file(path);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().find(path), std::string::npos) << r.error();
    EXPECT_NE(r.error().find("No such file"), std::string::npos) << r.error();
}

TEST(KeyFile, DirectoryIsRefused) {
    TempDir dir;
    const std::string path = dir.file("d");
    ASSERT_EQ(::mkdir(path.c_str(), 0700), 0);
    auto r = read_key_file(path);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().find(path), std::string::npos) << r.error();
}

TEST(KeyFile, GarbageContentIsRefused) {
    TempDir dir;
    const std::string path = dir.file("garbage.key");
    const std::vector<std::string> contents = {
        "",
        "\n",
        "hello world\n",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n",  // padding missing
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYX"
        "GBkaGxwdHh8=\n",  // two keys
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" + std::string(200, ' ') + "x",
        std::string(1000, 'A'),
        std::string(32, '\0'),  // a raw binary key is not the format
    };
    for (const auto& c : contents) {
        write_file(path, c, 0600);
        auto r = read_key_file(path);
        ASSERT_FALSE(r.ok()) << c;
        EXPECT_NE(r.error().find(path), std::string::npos) << r.error();
        EXPECT_NE(r.error().find("not a key file"), std::string::npos) << r.error();
    }
}

TEST(KeyFile, OverwriteIsRefused) {
    TempDir dir;
    const std::string path = dir.file("existing.key");
    auto first = write_new_key_file(path);
    ASSERT_TRUE(first.ok()) << first.error();
    const std::string before = read_file(path);
    auto second = write_new_key_file(path);
    ASSERT_FALSE(second.ok());
    EXPECT_NE(second.error().find(path), std::string::npos) << second.error();
    EXPECT_NE(second.error().find("refusing to overwrite"), std::string::npos) << second.error();
    EXPECT_EQ(read_file(path), before);

    // Nor through a symlink planted where the key should go.
    const std::string target = dir.file("target");
    const std::string link = dir.file("link.key");
    ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
    EXPECT_FALSE(write_new_key_file(link).ok());
    EXPECT_FALSE(std::filesystem::exists(target));
}

TEST(KeyFile, CreateInMissingDirectoryFailsNamingThePath) {
    TempDir dir;
    const std::string path = dir.file("no/such/dir.key");
    auto r = write_new_key_file(path);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().find(path), std::string::npos) << r.error();
}

TEST(KeyFile, NewKeysDiffer) {
    TempDir dir;
    auto a = write_new_key_file(dir.file("a"));
    auto b = write_new_key_file(dir.file("b"));
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_NE(a->secret_key, b->secret_key);
    EXPECT_NE(a->public_key, b->public_key);
}
