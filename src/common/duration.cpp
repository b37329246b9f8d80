#include "common/duration.h"

#include <cstdint>
#include <limits>
#include <utility>

namespace mx {

namespace {

// Wide enough that a number of up to 19 digits times the largest unit cannot overflow.
__extension__ using Wide = unsigned __int128;

constexpr Wide kMaxNanoseconds = std::numeric_limits<std::int64_t>::max();
constexpr Wide kFractionDigits = 1'000'000'000'000'000'000ULL;  // further digits are ignored

std::optional<Wide> unit_nanoseconds(std::string_view unit) {
  static constexpr std::pair<std::string_view, std::uint64_t> kUnits[] = {
      {"ns", 1},
      {"us", 1'000},
      {"\u00b5s", 1'000},  // micro sign
      {"\u03bcs", 1'000},  // Greek mu
      {"ms", 1'000'000},
      {"s", 1'000'000'000},
      {"m", 60'000'000'000},
      {"h", 3'600'000'000'000},
      {"d", 86'400'000'000'000},
  };
  for (const auto& [name, ns] : kUnits) {
    if (name == unit) return ns;
  }
  return std::nullopt;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view text, std::string* error) {
  const auto fail = [&](const std::string& what) -> std::optional<Duration> {
    if (error) *error = what;
    return std::nullopt;
  };
  const std::string quoted = "\"" + std::string(text) + "\"";
  const auto malformed = [&] {
    return fail("malformed duration " + quoted + " (expected e.g. 500ms, 1.5s, 15s, 5m, 1h30m)");
  };
  std::string_view rest = text;
  const bool negative = !rest.empty() && rest.front() == '-';
  if (!rest.empty() && (rest.front() == '-' || rest.front() == '+')) rest.remove_prefix(1);
  if (rest == "0") return Duration{0};
  if (rest.empty()) return malformed();
  Wide total = 0;
  while (!rest.empty()) {
    Wide whole = 0, fraction = 0, scale = 1;
    bool digits = false;
    for (; !rest.empty() && is_digit(rest.front()); rest.remove_prefix(1)) {
      // Past the limit the value only needs to stay past it, not exact.
      if (whole <= kMaxNanoseconds) whole = whole * 10 + static_cast<unsigned>(rest.front() - '0');
      digits = true;
    }
    if (!rest.empty() && rest.front() == '.') {
      for (rest.remove_prefix(1); !rest.empty() && is_digit(rest.front()); rest.remove_prefix(1)) {
        if (scale < kFractionDigits) {
          fraction = fraction * 10 + static_cast<unsigned>(rest.front() - '0');
          scale *= 10;
        }
        digits = true;
      }
    }
    if (!digits) return malformed();
    std::size_t unit_length = 0;
    while (unit_length < rest.size() && !is_digit(rest[unit_length]) && rest[unit_length] != '.') {
      ++unit_length;
    }
    const auto unit = unit_nanoseconds(rest.substr(0, unit_length));
    if (!unit) return malformed();
    rest.remove_prefix(unit_length);
    if (whole > kMaxNanoseconds) whole = kMaxNanoseconds + 1;
    total += whole * *unit + fraction * *unit / scale;
    if (total > kMaxNanoseconds) {
      return fail("duration " + quoted + " is too large (the limit is 2562047h, about 292 years)");
    }
  }
  if (negative && total != 0) return fail("negative duration " + quoted);
  if (total % 1'000'000 != 0) return fail("duration " + quoted + " is finer than 1ms");
  return Duration{static_cast<std::int64_t>(total / 1'000'000)};
}

std::string format_duration(Duration d) {
  std::int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  const std::int64_t h = ms / 3'600'000;
  ms %= 3'600'000;
  const std::int64_t m = ms / 60'000;
  ms %= 60'000;
  const std::int64_t s = ms / 1000;
  ms %= 1000;
  if (h) out += std::to_string(h) + "h";
  if (m) out += std::to_string(m) + "m";
  if (s) out += std::to_string(s) + "s";
  if (ms) out += std::to_string(ms) + "ms";
  return out;
}

}  // namespace mx
