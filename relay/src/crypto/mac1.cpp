#include "relay/crypto/mac1.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstring>
#include <stdexcept>

namespace relay::crypto {

namespace {
constexpr char kMac1Label[] = "mac1----";
}

Mac1Key mac1_key_for(const PublicKey& receiver_public_key) {
    Mac1Key key{};
    unsigned int out_len = 0;
    std::array<uint8_t, 8 + 32> input{};
    std::memcpy(input.data(), kMac1Label, 8);
    std::memcpy(input.data() + 8, receiver_public_key.data(), receiver_public_key.size());
    if (EVP_Digest(input.data(), input.size(), key.data(), &out_len, EVP_blake2s256(), nullptr) !=
            1 ||
        out_len != key.size())
        throw std::runtime_error("BLAKE2s-256 failed");
    return key;
}

struct Mac1::State {
    EVP_MAC* mac = nullptr;
    EVP_MAC_CTX* ctx = nullptr;
    ~State() {
        EVP_MAC_CTX_free(ctx);
        EVP_MAC_free(mac);
    }
};

Mac1::Mac1() : state_(std::make_unique<State>()) {
    state_->mac = EVP_MAC_fetch(nullptr, "BLAKE2SMAC", nullptr);
    if (!state_->mac) throw std::runtime_error("OpenSSL has no BLAKE2SMAC");
    state_->ctx = EVP_MAC_CTX_new(state_->mac);
    if (!state_->ctx) throw std::runtime_error("EVP_MAC_CTX_new failed");
    size_t out_size = 16;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &out_size),
                           OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(state_->ctx, params) != 1)
        throw std::runtime_error("BLAKE2SMAC: cannot set a 16-byte output");
}

Mac1::~Mac1() = default;

Mac Mac1::compute(const Mac1Key& key, std::span<const uint8_t> covered) {
    Mac out{};
    size_t out_len = 0;
    // Re-keying the same context keeps the 16-byte size set in the constructor.
    if (EVP_MAC_init(state_->ctx, key.data(), key.size(), nullptr) != 1 ||
        EVP_MAC_update(state_->ctx, covered.data(), covered.size()) != 1 ||
        EVP_MAC_final(state_->ctx, out.data(), &out_len, out.size()) != 1 || out_len != out.size())
        throw std::runtime_error("BLAKE2SMAC failed");
    return out;
}

bool Mac1::verify(const Mac1Key& key, std::span<const uint8_t> message, size_t mac1_offset) {
    if (mac1_offset + 16 > message.size()) return false;
    Mac expected = compute(key, message.first(mac1_offset));
    // Constant time is not needed for secrecy here (mac1 keys derive from public
    // keys), but CRYPTO_memcmp costs nothing and keeps timing uninformative.
    return CRYPTO_memcmp(expected.data(), message.data() + mac1_offset, 16) == 0;
}

}  // namespace relay::crypto
