// Durations in Go's time.ParseDuration syntax ("1.5s", "500ms", "15s", "5m", "1h30m"), the form
// Prometheus tooling uses, plus "d" (24h). Kept as whole milliseconds.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace mx {

using Duration = std::chrono::milliseconds;

// Parses a non-negative duration: a sequence of decimal numbers (fraction allowed) each with a
// unit of ns, us (or µs), ms, s, m, h, d; "0" alone needs none. nullopt when malformed, negative,
// beyond Go's limit (2562047h, int64 nanoseconds) or not a whole number of milliseconds; then
// *error, if given, says which, quoting the text.
std::optional<Duration> parse_duration(std::string_view text, std::string* error = nullptr);

// Shortest Go-style spelling: 90000ms -> "1m30s", 0 -> "0s".
std::string format_duration(Duration d);

}  // namespace mx
