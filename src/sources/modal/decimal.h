// Exact decimal USD amounts as Modal sends them ("1.234567"), parsed to integer nano-dollars so
// that sums are exact: "0.000001" + "12345.678901" is 12345678902000 nano-dollars, no float error.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "model/objects.h"

namespace mx {

// Accepts plain decimals: one or more digits, optionally '.' and one or more digits
// ("3", "0.000001", "12345.678901", "007.50"). Rejects everything else: empty text, signs
// (a negative cost makes no sense for a bill, so "-0.5" is malformed, and "+1" too), exponents
// ("1e5"), whitespace, ".5", "5.", "1.2.3", and values beyond the int64 nano-dollar range
// (about 9.2e9 USD).
//
// More than 9 fractional digits are rounded half-up to the nano-dollar instead of rejected:
// Modal's Python side uses arbitrary-precision Decimals and may send long fractions, and dropping
// a real cost would be worse than an error of at most half a nano-dollar.
std::optional<NanoUsd> parse_usd(std::string_view text);

// "12345.678901" style, trailing zeros of the fraction removed, at least one fractional digit
// ("3.0"). For logs and tests.
std::string format_usd(NanoUsd value);

}  // namespace mx
