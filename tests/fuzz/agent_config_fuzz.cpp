// libFuzzer target: relay-peer's YAML config (peer/src/agent_config.hpp,
// parse_agent_config).  Checked: the only way to refuse a text is an AgentConfigError;
// nothing else escapes, nothing crashes.
#include <cstdint>
#include <string>

#include "agent_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    try {
        (void)relay::peer::parse_agent_config(text, "fuzz.yaml");
    } catch (const relay::peer::AgentConfigError&) {
    }
    return 0;
}
