#include "sources/modal/decimal.h"

#include <cstdint>
#include <limits>

namespace mx {
namespace {

constexpr int kFractionDigits = 9;  // nano-dollars
// Exponents beyond this only ever mean 0 (after rounding) or overflow; clamping keeps the
// arithmetic below in int64 whatever the text says.
constexpr std::int64_t kMaxExponent = 1'000'000;

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool equals_lower(std::string_view text, std::string_view word) {
  if (text.size() != word.size()) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (lower(text[i]) != word[i]) return false;
  }
  return true;
}

// value * 10 + digit without overflow (value >= 0).
bool push_digit(std::int64_t& value, int digit) {
  std::int64_t next = 0;
  if (__builtin_mul_overflow(value, 10, &next)) return false;
  if (__builtin_add_overflow(next, digit, &next)) return false;
  value = next;
  return true;
}

}  // namespace

DecimalResult parse_decimal_usd(std::string_view text) {
  DecimalResult result;
  bool negative = false;
  if (!text.empty() && (text.front() == '+' || text.front() == '-')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  // Python spells these "NaN", "sNaN", "Infinity"; its parser also takes "Inf" and any case.
  // NaN may carry a diagnostic payload ("NaN123").
  {
    std::string_view word = text;
    while (!word.empty() && is_digit(word.back())) word.remove_suffix(1);
    if (equals_lower(text, "inf") || equals_lower(text, "infinity") ||
        ((equals_lower(word, "nan") || equals_lower(word, "snan")))) {
      result.status = DecimalStatus::not_finite;
      return result;
    }
  }

  // Mantissa: digits, optionally with one '.'.
  std::string_view mantissa = text;
  std::string_view exponent_text;
  if (const auto e = text.find_first_of("eE"); e != std::string_view::npos) {
    mantissa = text.substr(0, e);
    exponent_text = text.substr(e + 1);
    if (exponent_text.empty()) return result;
  }
  const auto dot = mantissa.find('.');
  const std::string_view whole = mantissa.substr(0, dot);
  const std::string_view fraction =
      dot == std::string_view::npos ? std::string_view{} : mantissa.substr(dot + 1);
  if (whole.empty() && fraction.empty()) return result;
  for (char c : whole) {
    if (!is_digit(c)) return result;
  }
  for (char c : fraction) {
    if (!is_digit(c)) return result;  // also catches a second '.'
  }
  std::int64_t exponent = 0;
  if (!exponent_text.empty()) {
    bool exp_negative = false;
    if (exponent_text.front() == '+' || exponent_text.front() == '-') {
      exp_negative = exponent_text.front() == '-';
      exponent_text.remove_prefix(1);
    }
    if (exponent_text.empty()) return result;
    for (char c : exponent_text) {
      if (!is_digit(c)) return result;
      if (exponent < kMaxExponent) exponent = exponent * 10 + (c - '0');
    }
    exponent = std::min(exponent, kMaxExponent);
    if (exp_negative) exponent = -exponent;
  }

  // The value is digits(whole+fraction) * 10^(exponent - |fraction|); in nano-dollars the
  // decimal point moves kFractionDigits further right.
  std::string_view digits_whole = whole;
  while (!digits_whole.empty() && digits_whole.front() == '0') digits_whole.remove_prefix(1);
  const std::int64_t shift =
      exponent - static_cast<std::int64_t>(fraction.size()) + kFractionDigits;
  // All significant digits, in order, as one sequence over whole then fraction.
  const std::size_t n = digits_whole.size() + fraction.size();
  auto digit_at = [&](std::size_t i) {
    return i < digits_whole.size() ? digits_whole[i] - '0'
                                   : fraction[i - digits_whole.size()] - '0';
  };
  bool all_zero = true;
  for (std::size_t i = 0; i < n; ++i) all_zero = all_zero && digit_at(i) == 0;
  if (all_zero) {
    result.status = DecimalStatus::ok;
    return result;
  }

  std::int64_t value = 0;
  // Digits kept: all of them plus `shift` zeros, or all but the last -shift.
  const std::int64_t keep = static_cast<std::int64_t>(n) + std::min<std::int64_t>(shift, 0);
  for (std::int64_t i = 0; i < keep; ++i) {
    if (!push_digit(value, digit_at(static_cast<std::size_t>(i)))) {
      result.status = DecimalStatus::out_of_range;
      return result;
    }
  }
  for (std::int64_t i = 0; i < shift; ++i) {
    if (!push_digit(value, 0)) {
      result.status = DecimalStatus::out_of_range;
      return result;
    }
  }
  // Round half away from zero on the first dropped digit (when it exists and is kept-adjacent).
  if (keep >= 0 && keep < static_cast<std::int64_t>(n) &&
      digit_at(static_cast<std::size_t>(keep)) >= 5) {
    if (value == std::numeric_limits<std::int64_t>::max()) {
      result.status = DecimalStatus::out_of_range;
      return result;
    }
    ++value;
  }
  result.status = DecimalStatus::ok;
  result.value = negative ? -value : value;
  return result;
}

std::optional<NanoUsd> parse_usd(std::string_view text) {
  const auto r = parse_decimal_usd(text);
  if (r.status != DecimalStatus::ok) return std::nullopt;
  return r.value;
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
