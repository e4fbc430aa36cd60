# The two commands of the README.  Both install what is missing first.
BUILD ?= build
CONFIG ?= configs/dev.yaml
MESON_OPTS ?=

.PHONY: all deps build run test bench clean format

all: build

deps:
	@bash deploy/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_OPTS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# Starts a relay node on the embedded development config (virtual devices,
# no hugepages, no NIC) until Ctrl-C.
run: build
	$(BUILD)/relay/relay run $(CONFIG)

# Every test suite: unit, data-plane fixtures, integration (root for the
# namespace-based ones).
test: build
	meson test -C $(BUILD) --print-errorlogs

bench: build
	$(BUILD)/perf/relay-bench dataplane

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf $(BUILD)
