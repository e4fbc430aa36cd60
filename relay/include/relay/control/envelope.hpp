// The sealed envelope every product control message travels in (BRIEF §5):
// libsodium crypto_box (X25519 + XSalsa20-Poly1305) between the peer's key pair
// and the server's static key pair, with a random 24-byte nonce.  Shared keys
// are precomputed once per peer (crypto_box_beforenm) and cached by the caller.
//
// Request (peer -> control):
//   0   4  magic "RLYC"
//   4   1  version (1)
//   5   1  direction (1 = to server)
//   6   32 sender's public key
//   38  24 nonce
//   62  .. crypto_box_easy_afternm output: 16-byte MAC, then the encrypted plaintext
//          (messages.hpp)
// Reply / notification (control -> peer):
//   0   4  magic "RLYC"
//   4   1  version (1)
//   5   1  direction (2 = to peer)
//   6   24 nonce
//   30  .. crypto_box_easy_afternm output, as above
// Whole envelope: at most kMaxEnvelopeLen bytes.
// The first byte 'R' (0x52) tells these apart from STUN (top bits 00) and WireGuard
// (first byte 1..4).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "relay/result.hpp"
#include "relay/session.hpp"

namespace relay::control {

constexpr std::array<uint8_t, 4> kEnvelopeMagic = {'R', 'L', 'Y', 'C'};
constexpr uint8_t kEnvelopeVersion = 1;
constexpr uint8_t kToServer = 1;
constexpr uint8_t kToPeer = 2;
constexpr size_t kNonceLen = 24;
constexpr size_t kBoxMacLen = 16;
constexpr size_t kRequestOverhead = 6 + 32 + kNonceLen + kBoxMacLen;  // 78
constexpr size_t kReplyOverhead = 6 + kNonceLen + kBoxMacLen;         // 46
constexpr size_t kMaxEnvelopeLen = 1400;

using SecretKey = std::array<uint8_t, 32>;
using SharedKey = std::array<uint8_t, 32>;  // crypto_box_beforenm output
using Nonce = std::array<uint8_t, kNonceLen>;

struct KeyPair {
    PublicKey public_key{};
    SecretKey secret_key{};
};
KeyPair generate_key_pair();
// The public half of a secret key (crypto_scalarmult_base).
PublicKey public_key_of(const SecretKey& secret);
// Whether `key` is a public key in the one form honest keys have (every key made by
// generate_key_pair, public_key_of or `wg pubkey` is): a canonical encoding (bit 255
// clear, u < 2^255 - 19) of a point of the prime-order subgroup.  X25519 would accept
// other strings that give the same shared key as a real key (bit 255 set, u + p, the
// real point plus a small-order point); taking them would let one peer's sealed
// request be replayed under another identity.
bool valid_public_key(const PublicKey& key);
// crypto_box_beforenm(their public, our secret).  std::nullopt unless
// valid_public_key(theirs) (so for all degenerate and malleated keys).
std::optional<SharedKey> shared_key(const PublicKey& theirs, const SecretKey& ours);

bool looks_like_envelope(std::span<const uint8_t> datagram);

enum class EnvelopeError {
    too_short,
    bad_magic,
    bad_version,
    wrong_direction,
    too_long,
    bad_key,      // degenerate sender public key
    auth_failed,  // MAC did not verify (wrong key, tampered, or not for us)
};
const char* to_string(EnvelopeError e);

// Checks, by both open_* and peek_request, in this order: at least the 6 fixed bytes
// (too_short), magic, version, direction, at least the overhead of this direction
// (too_short), at most kMaxEnvelopeLen (too_long); then the MAC (auth_failed).

// Sender side of a request: seal `plaintext` from `sender` to the server under a fresh
// random nonce.  The caller keeps plaintext within kMaxEnvelopeLen - kRequestOverhead
// (a longer one is sealed anyway, and every receiver refuses it as too_long).
std::vector<uint8_t> seal_request(const PublicKey& sender, const SharedKey& key,
                                  std::span<const uint8_t> plaintext);
// Server side: the sender's key and nonce, before opening (to find or compute the shared key).
// An all-zero or non-canonical sender key is refused here as bad_key; other invalid keys
// show up as shared_key() returning nullopt, which the caller reports as bad_key too.
// The sender field is not covered by the MAC: the server must open a request with the
// shared key of exactly this sender (cached by these 32 bytes), never one found by
// other means (such as the source address).
struct RequestHeader {
    PublicKey sender{};
    Nonce nonce{};
};
Result<RequestHeader, EnvelopeError> peek_request(std::span<const uint8_t> datagram);
Result<std::vector<uint8_t>, EnvelopeError> open_request(std::span<const uint8_t> datagram,
                                                         const SharedKey& key);

// Server -> peer.  Plaintext within kMaxEnvelopeLen - kReplyOverhead, as above.
std::vector<uint8_t> seal_reply(const SharedKey& key, std::span<const uint8_t> plaintext);
Result<std::vector<uint8_t>, EnvelopeError> open_reply(std::span<const uint8_t> datagram,
                                                       const SharedKey& key);
// The nonce of a reply (for the receiver's replay cache), if the header is well formed.
std::optional<Nonce> reply_nonce(std::span<const uint8_t> datagram);

}  // namespace relay::control
