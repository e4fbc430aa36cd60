# The two commands of the README.  Both install what is missing first.
BUILD ?= build
CONFIG ?= configs/dev.yaml
MESON_OPTS ?=

.PHONY: all deps build run test test-kernel-wg bench bench-e2e demo clean format fuzz fuzz-seeds

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

# libFuzzer targets (tests/fuzz), built with clang under ASan/UBSan in their own
# build dir, each run for FUZZ_SECONDS on a scratch copy of its seed corpus; one
# result per target in $(FUZZ_BUILD)/test-results/fuzz-<target>.xml.
# FUZZ_TARGETS=fuzz-stun (space-separated) runs only those.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
$(FUZZ_BUILD)/build.ninja:
	CC=clang CXX=clang++ meson setup $(FUZZ_BUILD) -Dfuzz=true -Db_sanitize=address,undefined \
		-Db_lundef=false -Dbuildtype=debugoptimized

fuzz: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD) fuzz-targets
	rm -rf $(FUZZ_BUILD)/tests/fuzz/work
	FUZZ_SECONDS=$(FUZZ_SECONDS) meson test -C $(FUZZ_BUILD) --no-rebuild --suite fuzz \
		--print-errorlogs $(FUZZ_TARGETS); status=$$?; \
		cat $(FUZZ_BUILD)/tests/fuzz/work/*/result.json 2>/dev/null; exit $$status

# Regenerates the seeds (tests/fuzz/make_seeds.cpp) and adds to each committed corpus
# the ones that bring new coverage (libFuzzer -merge).
fuzz-seeds: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD) fuzz-targets
	rm -rf $(FUZZ_BUILD)/seeds
	$(FUZZ_BUILD)/tests/fuzz/fuzz-make-seeds $(FUZZ_BUILD)/seeds
	@for dir in $(FUZZ_BUILD)/seeds/*/; do \
		t=$$(basename $$dir); mkdir -p tests/fuzz/corpus/$$t; \
		$(FUZZ_BUILD)/tests/fuzz/fuzz-$$t -merge=1 tests/fuzz/corpus/$$t $$dir 2>&1 | tail -1; \
	done

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
