// Exact decimal USD amounts as Modal sends them, parsed to integer nano-dollars so that sums are
// exact: "0.000001" + "12345.678901" is 12345678902000 nano-dollars, no float error.
//
// Modal's server formats Python Decimals with str(), so the text is what str(Decimal) prints:
// plain ("1.234567"), signed ("-0.5", a credit), or in exponent notation for small and large
// values ("1E-7", "2.5E-8", "1.2E+3"). docs/modal.md describes how costs are used.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "model/objects.h"

namespace mx {

enum class DecimalStatus {
  ok,
  malformed,     // not a decimal number at all ("abc", "1.2.3", "", " 1")
  not_finite,    // NaN, sNaN, Infinity (any sign or case): a Decimal, but not an amount
  out_of_range,  // beyond the int64 nano-dollar range (about +-9.2e9 USD)
};

struct DecimalResult {
  DecimalStatus status = DecimalStatus::malformed;
  NanoUsd value = 0;  // valid when status == ok
};

// Accepts the syntax of Python's Decimal(str): an optional sign, digits with an optional '.'
// (digits on at least one side: "5", "5.", ".5", "007.50"), and an optional exponent
// ('e' or 'E', optional sign, digits). No whitespace, underscores or other characters.
// More than 9 fractional digits (after applying the exponent) are rounded half away from zero to
// the nano-dollar: dropping a real cost would be worse than an error of at most half a
// nano-dollar. "-0" and "0E-9" are 0.
DecimalResult parse_decimal_usd(std::string_view text);

// parse_decimal_usd's value when it is ok, else nullopt.
std::optional<NanoUsd> parse_usd(std::string_view text);

// "12345.678901" style, trailing zeros of the fraction removed, at least one fractional digit
// ("3.0"). For logs and tests.
std::string format_usd(NanoUsd value);

}  // namespace mx
