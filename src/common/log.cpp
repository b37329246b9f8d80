#include "common/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace mx {
namespace {

struct LogState {
  std::mutex mutex;
  LogLevel level = LogLevel::info;
  LogFormat format = LogFormat::logfmt;
  std::function<void(std::string_view)> sink;
};

LogState& state() {
  static LogState s;
  return s;
}

std::string timestamp_now() {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const auto secs = system_clock::to_time_t(now);
  const auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(millis));
  return buf;
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

// logfmt quotes a value when it is empty or holds a space, quote, '=' or control character.
void append_logfmt_value(std::string& out, std::string_view s) {
  bool needs_quotes = s.empty();
  for (unsigned char c : s) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\') needs_quotes = true;
  }
  if (!needs_quotes) {
    out += s;
    return;
  }
  append_json_string(out, s);
}

}  // namespace

std::optional<LogLevel> parse_log_level(std::string_view t) {
  if (t == "debug") return LogLevel::debug;
  if (t == "info") return LogLevel::info;
  if (t == "warn") return LogLevel::warn;
  if (t == "error") return LogLevel::error;
  return std::nullopt;
}

std::optional<LogFormat> parse_log_format(std::string_view t) {
  if (t == "logfmt") return LogFormat::logfmt;
  if (t == "json") return LogFormat::json;
  return std::nullopt;
}

std::string_view to_string(LogLevel level) {
  switch (level) {
    case LogLevel::debug:
      return "debug";
    case LogLevel::info:
      return "info";
    case LogLevel::warn:
      return "warn";
    case LogLevel::error:
      return "error";
  }
  return "info";
}

std::string_view to_string(LogFormat format) {
  return format == LogFormat::json ? "json" : "logfmt";
}

namespace log {

void configure(LogLevel level, LogFormat format) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  s.level = level;
  s.format = format;
}

bool enabled(LogLevel level) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  return level >= s.level;
}

void write(LogLevel level, std::string_view message, std::initializer_list<LogField> fields) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  if (level < s.level) return;
  std::string line;
  line.reserve(128);
  if (s.format == LogFormat::json) {
    line += "{\"ts\":";
    append_json_string(line, timestamp_now());
    line += ",\"level\":";
    append_json_string(line, to_string(level));
    line += ",\"msg\":";
    append_json_string(line, message);
    for (const auto& f : fields) {
      line += ',';
      append_json_string(line, f.key);
      line += ':';
      append_json_string(line, f.value);
    }
    line += '}';
  } else {
    line += "ts=";
    line += timestamp_now();
    line += " level=";
    line += to_string(level);
    line += " msg=";
    append_logfmt_value(line, message);
    for (const auto& f : fields) {
      line += ' ';
      line += f.key;
      line += '=';
      append_logfmt_value(line, f.value);
    }
  }
  if (s.sink) {
    s.sink(line);
    return;
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

void set_sink(std::function<void(std::string_view line)> sink) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  s.sink = std::move(sink);
}

}  // namespace log
}  // namespace mx
