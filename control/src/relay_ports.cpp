#include "relay_ports.hpp"

namespace relay::control {

RelayPorts::RelayPorts(uint16_t min, uint16_t max)
    : min_(min), used_(static_cast<size_t>(max - min) + 1, false), free_(used_.size()) {}

std::optional<uint16_t> RelayPorts::take() {
    if (free_ == 0) return std::nullopt;
    for (size_t n = 0; n < used_.size(); ++n) {
        const size_t i = (cursor_ + n) % used_.size();
        if (!used_[i]) {
            used_[i] = true;
            --free_;
            cursor_ = i + 1;
            return static_cast<uint16_t>(min_ + i);
        }
    }
    return std::nullopt;
}

bool RelayPorts::take_specific(uint16_t port) {
    if (port < min_ || port - min_ >= static_cast<int>(used_.size())) return false;
    const size_t i = port - min_;
    if (used_[i]) return false;
    used_[i] = true;
    --free_;
    return true;
}

void RelayPorts::give_back(uint16_t port) {
    if (port < min_ || port - min_ >= static_cast<int>(used_.size())) return;
    const size_t i = port - min_;
    if (!used_[i]) return;
    used_[i] = false;
    ++free_;
}

}  // namespace relay::control
