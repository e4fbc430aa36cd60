// One JSON object on one line: every relay-bench result is printed this way
// so that scripts can read the output with a line-oriented JSON parser.
// Only what the benchmarks print is supported: flat keys with strings,
// booleans, integers, doubles (NaN and infinities become null) and nested
// objects or arrays that the caller already rendered.
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace relay::bench {

class JsonLine {
  public:
    JsonLine& add(std::string_view key, std::string_view value) {
        begin_field(key);
        append_string(value);
        return *this;
    }
    JsonLine& add(std::string_view key, const char* value) {
        return add(key, std::string_view(value));
    }
    JsonLine& add(std::string_view key, bool value) {
        begin_field(key);
        text_ += value ? "true" : "false";
        return *this;
    }
    template <std::integral Integer>
    requires(!std::same_as<Integer, bool>) JsonLine& add(std::string_view key, Integer value) {
        begin_field(key);
        text_ += std::to_string(value);
        return *this;
    }
    // `decimals`: digits after the point (results are noisy; more is clutter).
    JsonLine& add(std::string_view key, double value, int decimals = 3) {
        begin_field(key);
        if (!std::isfinite(value)) {
            text_ += "null";
            return *this;
        }
        char buffer[64];
        std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
        text_ += buffer;
        return *this;
    }
    JsonLine& add_null(std::string_view key) {
        begin_field(key);
        text_ += "null";
        return *this;
    }
    // `json` must already be a valid JSON value (an object or array built elsewhere).
    JsonLine& add_raw(std::string_view key, std::string_view json) {
        begin_field(key);
        text_ += json;
        return *this;
    }

    std::string str() const { return text_ + "}"; }

    // Prints the object and a newline, and flushes so that a reader sees each
    // scenario as soon as it has run.  False when the output is gone (a closed
    // pipe, with SIGPIPE ignored): the caller can stop early and clean up.
    bool print(std::FILE* out = stdout) const {
        const std::string line = str() + "\n";
        return std::fwrite(line.data(), 1, line.size(), out) == line.size() &&
               std::fflush(out) == 0;
    }

  private:
    void begin_field(std::string_view key) {
        if (text_.size() > 1) text_ += ',';
        append_string(key);
        text_ += ':';
    }
    void append_string(std::string_view value) {
        text_ += '"';
        for (const char c : value) {
            switch (c) {
                case '"':
                    text_ += "\\\"";
                    break;
                case '\\':
                    text_ += "\\\\";
                    break;
                case '\n':
                    text_ += "\\n";
                    break;
                case '\t':
                    text_ += "\\t";
                    break;
                default:
                    if (static_cast<unsigned char>(c) < 0x20) {
                        char escaped[8];
                        std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
                        text_ += escaped;
                    } else {
                        text_ += c;
                    }
            }
        }
        text_ += '"';
    }

    std::string text_ = "{";
};

}  // namespace relay::bench
