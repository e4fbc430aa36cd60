#include "relay/control/credentials.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace relay::control {

namespace {

constexpr size_t kTokenMacLen = 32;  // BLAKE2b-256
// Token body: name length, name, secret id, expiry, MAC.
constexpr size_t token_body_len(size_t name_len) {
    return 1 + name_len + 1 + 8 + kTokenMacLen;
}
constexpr size_t kMaxTokenBodyLen = token_body_len(kMaxNetworkNameLen);  // 74
// Longest token text: prefix plus unpadded base64 of the longest body (99 characters).
// Longer text is refused before decoding.
constexpr size_t kMaxTokenTextLen = kTokenPrefix.size() + (kMaxTokenBodyLen * 4 + 2) / 3;

constexpr size_t kKeyBase64Len = 44;  // 32 bytes, standard base64 with one '=' of padding
// A key file holds one 44-character line; anything much longer is not a key file.
constexpr size_t kMaxKeyFileLen = 128;

bool valid_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

void store_be64(uint8_t* p, uint64_t v) {
    for (int i = 7; i >= 0; --i) {
        p[i] = static_cast<uint8_t>(v);
        v >>= 8;
    }
}

uint64_t load_be64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
    return v;
}

std::array<uint8_t, kTokenMacLen> token_mac(const uint8_t* covered, size_t len,
                                            const NetworkSecret& secret) {
    std::array<uint8_t, kTokenMacLen> mac{};
    crypto_generichash(mac.data(), mac.size(), covered, len, secret.data(), secret.size());
    return mac;
}

// A token's decoded body, with the claims it carries.
struct DecodedToken {
    TokenClaims claims;
    std::array<uint8_t, kMaxTokenBodyLen> body{};
    size_t body_len = 0;
};

Result<DecodedToken, TokenError> decode_token(std::string_view token) {
    const auto malformed = Unexpected(TokenError::malformed);
    if (token.size() > kMaxTokenTextLen) return malformed;
    if (token.substr(0, kTokenPrefix.size()) != kTokenPrefix) return malformed;
    const std::string_view b64 = token.substr(kTokenPrefix.size());
    if (b64.empty()) return malformed;

    DecodedToken t;
    const char* end = nullptr;
    // No ignored characters, and libsodium refuses non-zero leftover bits: each token
    // has exactly one text form.
    if (sodium_base642bin(t.body.data(), t.body.size(), b64.data(), b64.size(), nullptr,
                          &t.body_len, &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return malformed;
    if (end != b64.data() + b64.size()) return malformed;

    const uint8_t* b = t.body.data();
    if (t.body_len < 1) return malformed;
    const size_t n = b[0];
    if (n < 1 || n > kMaxNetworkNameLen || t.body_len != token_body_len(n)) return malformed;
    t.claims.network.assign(reinterpret_cast<const char*>(b + 1), n);
    if (!valid_network_name(t.claims.network)) return malformed;
    t.claims.secret_id = b[1 + n];
    t.claims.expires_unix_s = load_be64(b + 2 + n);
    return t;
}

std::string errno_text() {
    return std::strerror(errno);
}

// Writes all of `data`, retrying after interruptions and short writes.
bool write_all(int fd, const char* data, size_t len) {
    while (len > 0) {
        ssize_t n = ::write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data += n;
        len -= static_cast<size_t>(n);
    }
    return true;
}

// So that the new file's name survives a crash too.  Best effort: the key itself is
// already on disk, and some file systems refuse fsync on a directory.
void fsync_parent_directory(const std::string& path) {
    const auto slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "."
                            : slash == 0               ? "/"
                                                       : path.substr(0, slash);
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    ::fsync(fd);
    ::close(fd);
}

}  // namespace

bool valid_network_name(std::string_view name) {
    if (name.empty() || name.size() > kMaxNetworkNameLen) return false;
    for (char c : name)
        if (!valid_name_char(c)) return false;
    return true;
}

const char* to_string(TokenError e) {
    switch (e) {
        case TokenError::malformed:
            return "malformed";
        case TokenError::unknown_network:
            return "unknown_network";
        case TokenError::unknown_secret:
            return "unknown_secret";
        case TokenError::bad_mac:
            return "bad_mac";
        case TokenError::expired:
            return "expired";
    }
    return "unknown";
}

std::string issue_token(const TokenClaims& claims, const NetworkSecret& secret) {
    if (!valid_network_name(claims.network))
        throw std::invalid_argument("issue_token: invalid network name \"" + claims.network +
                                    "\" (1..32 characters of a-z, 0-9, _ and -)");
    const size_t n = claims.network.size();
    std::array<uint8_t, kMaxTokenBodyLen> body{};
    body[0] = static_cast<uint8_t>(n);
    std::memcpy(body.data() + 1, claims.network.data(), n);
    body[1 + n] = claims.secret_id;
    store_be64(body.data() + 2 + n, claims.expires_unix_s);
    const size_t covered = 10 + n;
    const auto mac = token_mac(body.data(), covered, secret);
    std::memcpy(body.data() + covered, mac.data(), mac.size());
    const size_t body_len = token_body_len(n);

    constexpr int variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
    char b64[sodium_base64_ENCODED_LEN(kMaxTokenBodyLen, variant)];
    sodium_bin2base64(b64, sizeof b64, body.data(), body_len, variant);
    return std::string(kTokenPrefix) + b64;
}

Result<TokenClaims, TokenError> parse_token(std::string_view token) {
    auto t = decode_token(token);
    if (!t) return Unexpected(t.error());
    return std::move(t->claims);
}

Result<TokenClaims, TokenError> verify_token(std::string_view token, const NetworkSecret& secret,
                                             uint64_t now_unix_s) {
    auto t = decode_token(token);
    if (!t) return Unexpected(t.error());
    const size_t covered = t->body_len - kTokenMacLen;
    const auto mac = token_mac(t->body.data(), covered, secret);
    // Constant time, so that timing does not reveal how much of a forged MAC was right.
    if (sodium_memcmp(mac.data(), t->body.data() + covered, mac.size()) != 0)
        return Unexpected(TokenError::bad_mac);
    if (now_unix_s >= t->claims.expires_unix_s) return Unexpected(TokenError::expired);
    return std::move(t->claims);
}

std::string key_to_base64(std::span<const uint8_t, 32> key) {
    constexpr int variant = sodium_base64_VARIANT_ORIGINAL;
    char b64[sodium_base64_ENCODED_LEN(32, variant)];
    static_assert(sizeof b64 == kKeyBase64Len + 1);
    sodium_bin2base64(b64, sizeof b64, key.data(), key.size(), variant);
    std::string out(b64, kKeyBase64Len);
    sodium_memzero(b64, sizeof b64);
    return out;
}

std::optional<std::array<uint8_t, 32>> key_from_base64(std::string_view text) {
    if (text.size() != kKeyBase64Len) return std::nullopt;
    std::array<uint8_t, 32> key{};
    size_t len = 0;
    const char* end = nullptr;
    if (sodium_base642bin(key.data(), key.size(), text.data(), text.size(), nullptr, &len, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != text.data() + text.size() || len != key.size()) {
        sodium_memzero(key.data(), key.size());
        return std::nullopt;
    }
    return key;
}

Result<KeyPair, std::string> read_key_file(const std::string& path) {
    // open, then fstat the descriptor: the mode checked is the mode of the file read.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return Unexpected(path + ": cannot open: " + errno_text());
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        std::string err = path + ": cannot stat: " + errno_text();
        ::close(fd);
        return Unexpected(err);
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return Unexpected(path + ": not a regular file");
    }
    if ((st.st_mode & 077) != 0) {
        ::close(fd);
        char mode[16];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return Unexpected(path + ": mode " + mode +
                          " is looser than 0600 (group or others may access the secret key); "
                          "chmod 600 " +
                          path);
    }

    char buf[kMaxKeyFileLen + 1];
    size_t len = 0;
    bool read_failed = false;
    while (len < sizeof buf) {
        ssize_t n = ::read(fd, buf + len, sizeof buf - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            read_failed = true;
            break;
        }
        if (n == 0) break;
        len += static_cast<size_t>(n);
    }
    const std::string read_error = read_failed ? errno_text() : std::string();
    ::close(fd);
    if (read_failed) {
        sodium_memzero(buf, sizeof buf);
        return Unexpected(path + ": cannot read: " + read_error);
    }

    std::string_view text(buf, len);
    const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
    while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
    // A file longer than kMaxKeyFileLen is refused without looking further.
    std::optional<std::array<uint8_t, 32>> key;
    if (len <= kMaxKeyFileLen) key = key_from_base64(text);
    sodium_memzero(buf, sizeof buf);
    if (!key)
        return Unexpected(path +
                          ": not a key file (expected one line: a 32-byte key in base64, "
                          "44 characters, as `wg genkey` writes)");
    KeyPair kp;
    kp.secret_key = *key;
    kp.public_key = public_key_of(kp.secret_key);
    sodium_memzero(key->data(), key->size());
    return kp;
}

Result<KeyPair, std::string> write_new_key_file(const std::string& path) {
    // O_EXCL: never replace an existing key (nor follow a symlink planted at `path`).
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) {
        if (errno == EEXIST) return Unexpected(path + ": already exists; refusing to overwrite it");
        return Unexpected(path + ": cannot create: " + errno_text());
    }
    KeyPair kp = generate_key_pair();
    std::string text = key_to_base64(kp.secret_key);
    // fchmod: the umask may have taken bits off 0600 (read_key_file needs the owner's
    // read bit).
    const char* step = nullptr;
    int step_errno = 0;
    if (::fchmod(fd, 0600) != 0)
        step = "cannot set mode 0600";
    else if (!write_all(fd, text.data(), text.size()) || !write_all(fd, "\n", 1))
        step = "cannot write";
    else if (::fsync(fd) != 0)
        step = "cannot sync";
    if (step) step_errno = errno;
    sodium_memzero(text.data(), text.size());
    if (::close(fd) != 0 && !step) {
        step = "cannot close";
        step_errno = errno;
    }
    if (step) {
        // Leave no half-written key behind, so that a retry can create the file.
        ::unlink(path.c_str());
        sodium_memzero(kp.secret_key.data(), kp.secret_key.size());
        return Unexpected(path + ": " + step + ": " + std::strerror(step_errno));
    }
    fsync_parent_directory(path);
    return kp;
}

}  // namespace relay::control
