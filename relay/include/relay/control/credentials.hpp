// Network credentials (BRIEF §5): time-limited tokens an operator issues for one
// network, MACed with one of the network's secrets.  Several secrets may be active at
// once (rotation): a token verifies if any active secret of its network verifies it.
//
// Token text: "rly1." + base64url (no padding) of
//   0   1   network name length n (1..32)
//   1   n   network name ([a-z0-9_-])
//   1+n 1   secret id (which secret of the network signed it)
//   2+n 8   expiry, Unix seconds, big endian
//   10+n 32 MAC = BLAKE2b-256 keyed with the secret over the bytes before it
// Plus key files (the server's and peers' X25519 key pairs) and base64 helpers.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "relay/control/envelope.hpp"
#include "relay/result.hpp"

namespace relay::control {

using NetworkSecret = std::array<uint8_t, 32>;

struct TokenClaims {
    std::string network;
    uint8_t secret_id = 0;
    uint64_t expires_unix_s = 0;
    bool operator==(const TokenClaims&) const = default;
};

constexpr std::string_view kTokenPrefix = "rly1.";
constexpr size_t kMaxNetworkNameLen = 32;

// 1..32 characters, each a-z, 0-9, '_' or '-'.
bool valid_network_name(std::string_view name);

// claims.network must be a valid_network_name (the operator's tooling checks it first);
// an invalid one throws std::invalid_argument, as it is a bug in the caller.
std::string issue_token(const TokenClaims& claims, const NetworkSecret& secret);

enum class TokenError { malformed, unknown_network, unknown_secret, bad_mac, expired };
const char* to_string(TokenError e);

// Parses the token without checking its MAC (to find the network and secret id).
Result<TokenClaims, TokenError> parse_token(std::string_view token);
// Full check: parses, verifies the MAC under `secret`, and checks expiry against now
// (expired when now_unix_s >= expires_unix_s).  The MAC is checked first, so `expired`
// is only ever reported for a genuine token.  unknown_network and unknown_secret are
// for the caller, which picks `secret` by the parsed network and secret id.
Result<TokenClaims, TokenError> verify_token(std::string_view token, const NetworkSecret& secret,
                                             uint64_t now_unix_s);

// Standard base64 (with padding) of 32-byte keys, as wg(8) prints them: exactly 44
// characters; key_from_base64 accepts nothing else (no whitespace, no other length).
std::string key_to_base64(std::span<const uint8_t, 32> key);
std::optional<std::array<uint8_t, 32>> key_from_base64(std::string_view text);

// Key files: one line, the base64 secret key (the public key is derived), like `wg genkey`.
// read_key_file refuses a file whose mode allows any access by group or others
// (looser than 0600), naming the file and its mode; and one that is not a valid key.
// Whitespace around the key (the trailing newline) is ignored.  Error texts name the
// path and never contain key material.
Result<KeyPair, std::string> read_key_file(const std::string& path);
// Writes a new key pair's secret to `path` with mode 0600 (refuses to overwrite).
Result<KeyPair, std::string> write_new_key_file(const std::string& path);

}  // namespace relay::control
