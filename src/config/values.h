// Parsers and checks of single values, shared by the YAML reader (schema.h) and the command-line
// flags (flags.h), so that a value given either way is checked once and the same way. Each sets
// *error to what is wrong (quoting the value, never naming the key: the caller does that).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/log.h"

namespace mx {

// "a, b, c"
std::string join_names(const std::vector<std::string_view>& names);

// A decimal integer within [min, max].
std::optional<long long> parse_integer(std::string_view text, long long min, long long max,
                                       std::string* error);
// A decimal number within [min, max].
std::optional<double> parse_number(std::string_view text, double min, double max,
                                   std::string* error);

// One of the named values.
template <typename T>
using Names = std::vector<std::pair<std::string_view, T>>;

template <typename T>
std::optional<T> parse_name(std::string_view text, const Names<T>& names, std::string* error) {
  std::vector<std::string_view> known;
  for (const auto& [name, value] : names) {
    if (name == text) return value;
    known.push_back(name);
  }
  *error = "unknown value \"" + std::string(text) + "\" (known: " + join_names(known) + ")";
  return std::nullopt;
}

template <typename T>
std::string_view name_of(const T& value, const Names<T>& names) {
  for (const auto& [name, v] : names) {
    if (v == value) return name;
  }
  return {};
}

const Names<LogLevel>& log_level_names();
const Names<LogFormat>& log_format_names();

// The metrics path (web.telemetry_path, --web.telemetry-path): empty when valid.
std::string telemetry_path_error(std::string_view path);

// shard < total_shards, whichever way they were set: empty when valid.
std::string shard_error(int shard, int total_shards);

}  // namespace mx
