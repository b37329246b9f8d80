// Go-style durations ("500ms", "15s", "5m", "1h30m"), the form Prometheus tooling uses.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace mx {

using Duration = std::chrono::milliseconds;

// Parses a non-negative duration; nullopt when malformed (sign, unknown unit, no unit, empty).
std::optional<Duration> parse_duration(std::string_view text);

// Shortest Go-style spelling: 90000ms -> "1m30s", 0 -> "0s".
std::string format_duration(Duration d);

}  // namespace mx
