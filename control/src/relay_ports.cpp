#include "relay_ports.hpp"

#include <sodium.h>

namespace relay::control {

RelayPorts::RelayPorts(uint16_t min, uint16_t max)
    : min_(min), position_(max >= min ? static_cast<size_t>(max - min) + 1 : 0) {
    // randombytes needs libsodium initialised (idempotent; it fails only without a
    // random source, and then the process could not seal a message either).
    if (sodium_init() < 0) position_.clear();
    free_.reserve(position_.size());
    for (uint32_t i = 0; i < position_.size(); ++i) {
        position_[i] = i;
        free_.push_back(i);
    }
}

void RelayPorts::remove_free(uint32_t offset) {
    const uint32_t at = position_[offset];
    const uint32_t last = free_.back();
    free_[at] = last;
    position_[last] = at;
    free_.pop_back();
    position_[offset] = kUsed;
}

std::optional<uint16_t> RelayPorts::take() {
    if (free_.empty()) return std::nullopt;
    const uint32_t offset = free_[randombytes_uniform(static_cast<uint32_t>(free_.size()))];
    remove_free(offset);
    return static_cast<uint16_t>(min_ + offset);
}

bool RelayPorts::take_specific(uint16_t port) {
    if (!in_range(port)) return false;
    const uint32_t offset = port - min_;
    if (position_[offset] == kUsed) return false;
    remove_free(offset);
    return true;
}

void RelayPorts::give_back(uint16_t port) {
    if (!in_range(port)) return;
    const uint32_t offset = port - min_;
    if (position_[offset] != kUsed) return;
    position_[offset] = static_cast<uint32_t>(free_.size());
    free_.push_back(offset);
}

}  // namespace relay::control
