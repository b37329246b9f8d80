// Structured logging to stderr (logfmt or JSON), shared by every stage.
// Thread-safe: gRPC completion threads may log while the io_context thread does.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace mx {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };
enum class LogFormat { logfmt, json };

std::optional<LogLevel> parse_log_level(std::string_view text);
std::optional<LogFormat> parse_log_format(std::string_view text);
std::string_view to_string(LogLevel level);
std::string_view to_string(LogFormat format);

// One key=value pair of a log line. Numbers and booleans are converted here so call sites
// stay short: log::info("msg", {{"port", 8081}, {"source", name}}).
struct LogField {
  std::string_view key;
  std::string value;

  LogField(std::string_view k, std::string v) : key(k), value(std::move(v)) {}
  LogField(std::string_view k, std::string_view v) : key(k), value(v) {}
  LogField(std::string_view k, const char* v) : key(k), value(v) {}
  LogField(std::string_view k, bool v) : key(k), value(v ? "true" : "false") {}
  template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T>>>
  LogField(std::string_view k, T v) : key(k), value(format_number(v)) {}

 private:
  template <typename T>
  static std::string format_number(T v) {
    if constexpr (std::is_floating_point_v<T>) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.6g", static_cast<double>(v));
      return buf;
    } else {
      return std::to_string(v);
    }
  }
};

namespace log {

void configure(LogLevel level, LogFormat format);
bool enabled(LogLevel level);
void write(LogLevel level, std::string_view message, std::initializer_list<LogField> fields = {});

inline void debug(std::string_view m, std::initializer_list<LogField> f = {}) {
  write(LogLevel::debug, m, f);
}
inline void info(std::string_view m, std::initializer_list<LogField> f = {}) {
  write(LogLevel::info, m, f);
}
inline void warn(std::string_view m, std::initializer_list<LogField> f = {}) {
  write(LogLevel::warn, m, f);
}
inline void error(std::string_view m, std::initializer_list<LogField> f = {}) {
  write(LogLevel::error, m, f);
}

// Tests capture lines instead of writing them to stderr; pass an empty function to restore.
void set_sink(std::function<void(std::string_view line)> sink);

}  // namespace log
}  // namespace mx
