#!/usr/bin/env bash
# Installs exactly what is missing to build, run and test the relay node on
# Debian 12.  Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail

# Build and run
packages=(build-essential meson ninja-build pkg-config libdpdk-dev libsodium-dev libyaml-cpp-dev
          prometheus-cpp-dev libgtest-dev libssl-dev nlohmann-json3-dev)
# Tests: namespaces, veth, checksum offload, captures, real WireGuard peers, a real Prometheus
packages+=(iproute2 iputils-ping ethtool tcpdump wireguard-go wireguard-tools curl prometheus coturn nftables conntrack iperf3 python3)
# deploy/ checks: shell scripts and systemd units are verified, not skipped
packages+=(shellcheck systemd)
# Fuzzing (make fuzz): clang and its libFuzzer and sanitizer runtimes
packages+=(clang libclang-rt-14-dev)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# --no-install-recommends: the dpdk package's recommends pull in a kernel image.
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
