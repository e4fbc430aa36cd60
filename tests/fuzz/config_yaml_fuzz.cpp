// libFuzzer target: the node's YAML config loader (relay/config.hpp, load_config_text),
// which every program runs on the operator's file.  Checked: the only way to refuse a
// text is a ConfigError (naming the file); nothing else escapes, nothing crashes; a
// config that loads yields EAL arguments.
#include <cstdint>
#include <string>

#include "fuzz_check.hpp"
#include "relay/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    try {
        const relay::Config config = relay::load_config_text(text, "fuzz.yaml");
        (void)relay::eal_arguments(config.dataplane);
    } catch (const relay::ConfigError& e) {
        FUZZ_CHECK(e.file() == "fuzz.yaml", "a ConfigError that does not name the file");
        (void)relay::describe(e);
    }
    return 0;
}
