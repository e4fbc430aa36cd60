#include "relay/control/envelope.hpp"

#include <openssl/bn.h>
#include <sodium.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace relay::control {

static_assert(crypto_box_PUBLICKEYBYTES == 32 && crypto_box_SECRETKEYBYTES == 32);
static_assert(crypto_box_BEFORENMBYTES == std::tuple_size_v<SharedKey>);
static_assert(crypto_box_NONCEBYTES == kNonceLen);
static_assert(crypto_box_MACBYTES == kBoxMacLen);

namespace {

constexpr size_t kFixedHeaderLen = 6;  // magic, version, direction
constexpr size_t kSenderOffset = 6;
constexpr size_t kRequestNonceOffset = kSenderOffset + 32;             // 38
constexpr size_t kRequestBoxOffset = kRequestNonceOffset + kNonceLen;  // 62
constexpr size_t kReplyNonceOffset = 6;
constexpr size_t kReplyBoxOffset = kReplyNonceOffset + kNonceLen;  // 30

// Checks everything about an envelope that needs no key, in the order PROTOCOL.md
// gives: header fields first (so that a short datagram of the wrong kind is reported as
// such), then the length limits of this direction.
std::optional<EnvelopeError> check_header(std::span<const uint8_t> d, uint8_t direction,
                                          size_t overhead) {
    if (d.size() < kFixedHeaderLen) return EnvelopeError::too_short;
    if (std::memcmp(d.data(), kEnvelopeMagic.data(), kEnvelopeMagic.size()) != 0)
        return EnvelopeError::bad_magic;
    if (d[4] != kEnvelopeVersion) return EnvelopeError::bad_version;
    if (d[5] != direction) return EnvelopeError::wrong_direction;
    if (d.size() < overhead) return EnvelopeError::too_short;
    if (d.size() > kMaxEnvelopeLen) return EnvelopeError::too_long;
    return std::nullopt;
}

void write_fixed_header(uint8_t* out, uint8_t direction) {
    std::memcpy(out, kEnvelopeMagic.data(), kEnvelopeMagic.size());
    out[4] = kEnvelopeVersion;
    out[5] = direction;
}

// Seals `plaintext` at out[box_offset..] under a fresh nonce written at out[nonce_offset..].
void seal_into(std::vector<uint8_t>& out, size_t nonce_offset, size_t box_offset,
               const SharedKey& key, std::span<const uint8_t> plaintext) {
    uint8_t* nonce = out.data() + nonce_offset;
    randombytes_buf(nonce, kNonceLen);
    // Only fails for a message longer than crypto_box_MESSAGEBYTES_MAX (far beyond any
    // vector we could allocate).
    if (crypto_box_easy_afternm(out.data() + box_offset, plaintext.data(), plaintext.size(), nonce,
                                key.data()) != 0)
        std::abort();
}

Result<std::vector<uint8_t>, EnvelopeError> open_box(std::span<const uint8_t> d,
                                                     size_t nonce_offset, size_t box_offset,
                                                     const SharedKey& key) {
    const size_t box_len = d.size() - box_offset;  // >= kBoxMacLen: checked by check_header
    std::vector<uint8_t> plain(box_len - kBoxMacLen);
    if (crypto_box_open_easy_afternm(plain.data(), d.data() + box_offset, box_len,
                                     d.data() + nonce_offset, key.data()) != 0)
        return Unexpected(EnvelopeError::auth_failed);
    return plain;
}

void ensure_sodium_initialized() {
    // sodium_init() is itself safe to call from several threads; the function-local
    // static (initialized once, thread-safely, by the C++ runtime) just keeps the cost
    // to a load after the first call.  Without it randombytes may not be ready, and a
    // relay that cannot draw nonces or keys must not run at all.
    static const int rc = sodium_init();
    if (rc < 0) std::abort();
}

// X25519 public keys are malleable: several 32-byte strings give the same shared key
// with every secret (libsodium clamps secrets to multiples of 8):
// - bit 255 is ignored, and u and u + p are the same number mod p = 2^255 - 19;
// - u and the u of P + T, for T a point of order 2, 4 or 8, give the same k·P (for
//   order 2, that is just 1/u).
// Since the envelope's sender key is not covered by the MAC, a request replayed with
// such a variant would open, under what looks like another peer's key (a new identity,
// and a fresh replay cache).  So a key is accepted only in the one form honest keys
// have: canonical, and a point of the prime-order subgroup.

// Bit 255 clear and u < p.  Cheap: used on every request, before any lookup.
bool is_canonical_u(const PublicKey& k) {
    if (k[31] & 0x80) return false;
    // u >= p only for ed ff .. ff 7f (little endian) and above.
    if (k[31] != 0x7f) return true;
    for (size_t i = 30; i >= 1; --i)
        if (k[i] != 0xff) return true;
    return k[0] < 0xed;
}

// The Edwards form of u (y = (u - 1) / (u + 1)), which libsodium can check for
// being on the curve, of large order, and in the prime-order subgroup.  Montgomery
// keys have no such check in libsodium, hence the field arithmetic here (public data:
// no need for constant time).
bool in_prime_order_subgroup(const PublicKey& k) {
    using BnPtr = std::unique_ptr<BIGNUM, decltype(&BN_free)>;
    using CtxPtr = std::unique_ptr<BN_CTX, decltype(&BN_CTX_free)>;
    CtxPtr ctx(BN_CTX_new(), &BN_CTX_free);
    BnPtr p(BN_new(), &BN_free), u(nullptr, &BN_free), num(BN_new(), &BN_free),
        den(BN_new(), &BN_free), y(BN_new(), &BN_free);
    if (!ctx || !p || !num || !den || !y) return false;
    // p = 2^255 - 19
    if (!BN_set_bit(p.get(), 255) || !BN_sub_word(p.get(), 19)) return false;
    std::array<uint8_t, 32> be{};
    std::reverse_copy(k.begin(), k.end(), be.begin());
    u.reset(BN_bin2bn(be.data(), static_cast<int>(be.size()), nullptr));
    if (!u) return false;
    if (!BN_mod_sub(num.get(), u.get(), BN_value_one(), p.get(), ctx.get()) ||
        !BN_mod_add(den.get(), u.get(), BN_value_one(), p.get(), ctx.get()))
        return false;
    if (BN_is_zero(den.get())) return false;  // u = -1: no Edwards point
    if (!BN_mod_inverse(den.get(), den.get(), p.get(), ctx.get()) ||
        !BN_mod_mul(y.get(), num.get(), den.get(), p.get(), ctx.get()))
        return false;
    std::array<uint8_t, 32> ed{};  // little endian y, sign bit of x 0 (either sign will do)
    if (BN_bn2binpad(y.get(), be.data(), static_cast<int>(be.size())) != 32) return false;
    std::reverse_copy(be.begin(), be.end(), ed.begin());
    // Refuses: not canonical, small order, not on the curve (u on the twist), and any
    // point outside the prime-order subgroup (the torsion variants above).
    return crypto_core_ed25519_is_valid_point(ed.data()) == 1;
}

}  // namespace

bool valid_public_key(const PublicKey& key) {
    ensure_sodium_initialized();
    return is_canonical_u(key) && in_prime_order_subgroup(key);
}

KeyPair generate_key_pair() {
    ensure_sodium_initialized();
    KeyPair kp;
    crypto_box_keypair(kp.public_key.data(), kp.secret_key.data());
    return kp;
}

PublicKey public_key_of(const SecretKey& secret) {
    ensure_sodium_initialized();
    PublicKey pk{};
    crypto_scalarmult_base(pk.data(), secret.data());
    return pk;
}

std::optional<SharedKey> shared_key(const PublicKey& theirs, const SecretKey& ours) {
    if (!valid_public_key(theirs)) return std::nullopt;
    SharedKey k{};
    // libsodium refuses a public key of small order too (the X25519 result would be
    // all zero, a key anyone can compute); valid_public_key has already refused those.
    if (crypto_box_beforenm(k.data(), theirs.data(), ours.data()) != 0) {
        sodium_memzero(k.data(), k.size());
        return std::nullopt;
    }
    return k;
}

bool looks_like_envelope(std::span<const uint8_t> datagram) {
    return datagram.size() >= kFixedHeaderLen &&
           std::memcmp(datagram.data(), kEnvelopeMagic.data(), kEnvelopeMagic.size()) == 0;
}

const char* to_string(EnvelopeError e) {
    switch (e) {
        case EnvelopeError::too_short:
            return "too_short";
        case EnvelopeError::bad_magic:
            return "bad_magic";
        case EnvelopeError::bad_version:
            return "bad_version";
        case EnvelopeError::wrong_direction:
            return "wrong_direction";
        case EnvelopeError::too_long:
            return "too_long";
        case EnvelopeError::bad_key:
            return "bad_key";
        case EnvelopeError::auth_failed:
            return "auth_failed";
    }
    return "unknown";
}

std::vector<uint8_t> seal_request(const PublicKey& sender, const SharedKey& key,
                                  std::span<const uint8_t> plaintext) {
    ensure_sodium_initialized();
    std::vector<uint8_t> out(kRequestOverhead + plaintext.size());
    write_fixed_header(out.data(), kToServer);
    std::memcpy(out.data() + kSenderOffset, sender.data(), sender.size());
    seal_into(out, kRequestNonceOffset, kRequestBoxOffset, key, plaintext);
    return out;
}

Result<RequestHeader, EnvelopeError> peek_request(std::span<const uint8_t> datagram) {
    if (auto err = check_header(datagram, kToServer, kRequestOverhead)) return Unexpected(*err);
    RequestHeader h;
    std::memcpy(h.sender.data(), datagram.data() + kSenderOffset, h.sender.size());
    std::memcpy(h.nonce.data(), datagram.data() + kRequestNonceOffset, h.nonce.size());
    // What costs nothing is refused here: the all-zero key and non-canonical encodings.
    // The rest (small order, twist, torsion) is caught when shared_key() returns
    // nullopt, which the caller reports as bad_key too.
    if (sodium_is_zero(h.sender.data(), h.sender.size()) || !is_canonical_u(h.sender))
        return Unexpected(EnvelopeError::bad_key);
    return h;
}

Result<std::vector<uint8_t>, EnvelopeError> open_request(std::span<const uint8_t> datagram,
                                                         const SharedKey& key) {
    if (auto err = check_header(datagram, kToServer, kRequestOverhead)) return Unexpected(*err);
    return open_box(datagram, kRequestNonceOffset, kRequestBoxOffset, key);
}

std::vector<uint8_t> seal_reply(const SharedKey& key, std::span<const uint8_t> plaintext) {
    ensure_sodium_initialized();
    std::vector<uint8_t> out(kReplyOverhead + plaintext.size());
    write_fixed_header(out.data(), kToPeer);
    seal_into(out, kReplyNonceOffset, kReplyBoxOffset, key, plaintext);
    return out;
}

Result<std::vector<uint8_t>, EnvelopeError> open_reply(std::span<const uint8_t> datagram,
                                                       const SharedKey& key) {
    if (auto err = check_header(datagram, kToPeer, kReplyOverhead)) return Unexpected(*err);
    return open_box(datagram, kReplyNonceOffset, kReplyBoxOffset, key);
}

std::optional<Nonce> reply_nonce(std::span<const uint8_t> datagram) {
    if (check_header(datagram, kToPeer, kReplyOverhead)) return std::nullopt;
    Nonce n;
    std::memcpy(n.data(), datagram.data() + kReplyNonceOffset, n.size());
    return n;
}

}  // namespace relay::control
