# The two commands of the README.  Both install what is missing first.
BUILD ?= build
CONFIG ?= configs/dev.yaml
MESON_OPTS ?=

.PHONY: all deps build run test test-kernel-wg bench bench-e2e demo clean format

all: build

deps:
	@bash deploy/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_OPTS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# Starts a relay node on the embedded development config (virtual devices,
# no hugepages, no NIC) until Ctrl-C.
# The development control key is made on first use; the server's public key and a
# development network token are printed for peers on this machine.
DEV_KEY ?= /var/lib/relay-dev/control.key
run: build
	@mkdir -p $(dir $(DEV_KEY))
	@[ -f $(DEV_KEY) ] || $(BUILD)/relay/relay keygen $(DEV_KEY) >/dev/null
	@echo "server public key: $$($(BUILD)/relay/relay pubkey $(DEV_KEY))"
	@echo "network token (dev, 24 h): $$($(BUILD)/relay/relay token $(CONFIG) --network dev 2>/dev/null)"
	$(BUILD)/relay/relay run $(CONFIG)

# Every test suite: unit, data-plane fixtures, integration (root for the
# namespace-based ones).
test: build
	meson test -C $(BUILD) --print-errorlogs

# Only on request: the kernel module's WireGuard driven by the agent (tests/e2e/test_kernel_wg.py;
# needs root and a kernel with the WireGuard module, which CI's machines lack).
test-kernel-wg: build
	meson test -C $(BUILD) --print-errorlogs --suite e2e-kernel-wg

# A small NAT lab with the relay node and three peers (full cone, port-restricted,
# symmetric): one pair connects directly, one through the relay (needs root).
demo: build
	python3 tests/e2e/demo.py --build-dir $(BUILD)

bench: build
	$(BUILD)/perf/relay-bench dataplane
	$(BUILD)/perf/relay-bench control

# iperf3 through WireGuard in the NAT lab, direct against relayed (needs root): perf/README.md.
bench-e2e: build
	python3 perf/e2e_iperf.py --build-dir $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf $(BUILD)
