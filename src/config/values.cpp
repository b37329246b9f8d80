#include "config/values.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace mx {
namespace {

std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

std::string join_names(const std::vector<std::string_view>& names) {
  std::string out;
  for (auto n : names) out += (out.empty() ? "" : ", ") + std::string(n);
  return out;
}

std::optional<long long> parse_integer(std::string_view text, long long min, long long max,
                                       std::string* error) {
  const std::string v(text);
  char* end = nullptr;
  errno = 0;
  const long long parsed = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno == ERANGE) {
    *error = "expected an integer, got \"" + v + "\"";
    return std::nullopt;
  }
  if (parsed < min || parsed > max) {
    *error =
        "value " + v + " out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]";
    return std::nullopt;
  }
  return parsed;
}

std::optional<double> parse_number(std::string_view text, double min, double max,
                                   std::string* error) {
  const std::string v(text);
  char* end = nullptr;
  const double parsed = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !std::isfinite(parsed)) {
    *error = "expected a number, got \"" + v + "\"";
    return std::nullopt;
  }
  if (!(parsed >= min && parsed <= max)) {
    *error =
        "value " + v + " out of range [" + format_number(min) + ", " + format_number(max) + "]";
    return std::nullopt;
  }
  return parsed;
}

const Names<LogLevel>& log_level_names() {
  static const Names<LogLevel> names = {{"debug", LogLevel::debug},
                                        {"info", LogLevel::info},
                                        {"warn", LogLevel::warn},
                                        {"error", LogLevel::error}};
  return names;
}

const Names<LogFormat>& log_format_names() {
  static const Names<LogFormat> names = {{"logfmt", LogFormat::logfmt}, {"json", LogFormat::json}};
  return names;
}

std::string telemetry_path_error(std::string_view path) {
  if (path.empty() || path.front() != '/') return "must start with '/'";
  return "";
}

std::string shard_error(int shard, int total_shards) {
  if (shard < total_shards) return "";
  return "shard " + std::to_string(shard) + " must be below total shards " +
         std::to_string(total_shards);
}

}  // namespace mx
