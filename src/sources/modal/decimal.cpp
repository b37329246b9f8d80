#include "sources/modal/decimal.h"

#include <cstdint>
#include <limits>

namespace mx {
namespace {

constexpr int kFractionDigits = 9;  // nano-dollars

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// value * 10 + digit without overflow.
bool push_digit(std::int64_t& value, int digit) {
  std::int64_t next = 0;
  if (__builtin_mul_overflow(value, 10, &next)) return false;
  if (__builtin_add_overflow(next, digit, &next)) return false;
  value = next;
  return true;
}

}  // namespace

std::optional<NanoUsd> parse_usd(std::string_view text) {
  const auto dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  const std::string_view fraction =
      dot == std::string_view::npos ? std::string_view{} : text.substr(dot + 1);
  if (whole.empty()) return std::nullopt;
  if (dot != std::string_view::npos && fraction.empty()) return std::nullopt;
  for (char c : whole) {
    if (!is_digit(c)) return std::nullopt;
  }
  for (char c : fraction) {
    if (!is_digit(c)) return std::nullopt;  // also catches a second '.'
  }

  std::int64_t value = 0;
  for (char c : whole) {
    if (!push_digit(value, c - '0')) return std::nullopt;
  }
  for (int i = 0; i < kFractionDigits; ++i) {
    const int digit = i < static_cast<int>(fraction.size()) ? fraction[i] - '0' : 0;
    if (!push_digit(value, digit)) return std::nullopt;
  }
  // Round half-up on the first dropped digit; the rest cannot change a half-up decision.
  if (fraction.size() > kFractionDigits && fraction[kFractionDigits] >= '5') {
    if (value == std::numeric_limits<std::int64_t>::max()) return std::nullopt;
    ++value;
  }
  return value;
}

std::string format_usd(NanoUsd value) {
  std::string out;
  std::uint64_t magnitude = 0;
  if (value < 0) {
    out += '-';
    magnitude = static_cast<std::uint64_t>(-(value + 1)) + 1;  // safe for INT64_MIN
  } else {
    magnitude = static_cast<std::uint64_t>(value);
  }
  constexpr std::uint64_t kScale = 1'000'000'000;
  out += std::to_string(magnitude / kScale);
  std::string fraction = std::to_string(magnitude % kScale);
  fraction.insert(0, kFractionDigits - fraction.size(), '0');
  while (fraction.size() > 1 && fraction.back() == '0') fraction.pop_back();
  out += '.';
  out += fraction;
  return out;
}

}  // namespace mx
