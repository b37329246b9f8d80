#include "sources/modal/decimal.h"

#include <limits>

#include <gtest/gtest.h>

namespace mx {
namespace {

TEST(ParseUsd, ParsesPlainDecimalsExactly) {
  EXPECT_EQ(parse_usd("0.000001"), 1000);
  EXPECT_EQ(parse_usd("12345.678901"), 12345678901000);
  EXPECT_EQ(parse_usd("3"), 3000000000);
  EXPECT_EQ(parse_usd("0"), 0);
  EXPECT_EQ(parse_usd("0.0"), 0);
  EXPECT_EQ(parse_usd("007.50"), 7500000000);
  EXPECT_EQ(parse_usd("0.000000001"), 1);
  EXPECT_EQ(parse_usd("3.9492"), 3949200000);
}

TEST(ParseUsd, SumsAreExactWhereDoublesAreNot) {
  // 0.1 + 0.2 != 0.3 in binary floating point; in nano-dollars it is.
  EXPECT_EQ(*parse_usd("0.1") + *parse_usd("0.2"), *parse_usd("0.3"));
  NanoUsd total = 0;
  for (int i = 0; i < 1000000; ++i) total += *parse_usd("0.000001");
  EXPECT_EQ(total, *parse_usd("1"));
  EXPECT_EQ(*parse_usd("0.000001") + *parse_usd("12345.678901"), *parse_usd("12345.678902"));
}

TEST(ParseUsd, RejectsMalformedText) {
  for (const char* bad : {"",      "abc",          "1.2.3", ".",   "-",     "+",   "e5",
                          "1e",    "1e+",          "1E5.0", " 1",  "1 ",    "1,5", "0x10",
                          "1_000", "\xef\xbc\x91", "--1",   "+-1", "1e5e5", "1.5f"}) {
    EXPECT_EQ(parse_decimal_usd(bad).status, DecimalStatus::malformed) << "'" << bad << "'";
    EXPECT_FALSE(parse_usd(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(ParseUsd, AcceptsWhatPythonDecimalStrPrints) {
  // str(Decimal("0.0000001")) == "1E-7"; small per-second rates look like this.
  EXPECT_EQ(parse_usd("1E-7"), 100);
  EXPECT_EQ(parse_usd("2.5E-8"), 25);
  EXPECT_EQ(parse_usd("2.5e-8"), 25);
  EXPECT_EQ(parse_usd("1.2E+3"), 1200000000000);
  EXPECT_EQ(parse_usd("1E+1"), 10000000000);
  EXPECT_EQ(parse_usd("0E-9"), 0);
  EXPECT_EQ(parse_usd("0E+99999999999999"), 0);
  EXPECT_EQ(parse_usd("1E-99999999999999"), 0);
  EXPECT_EQ(parse_usd("5E-10"), 1);  // rounds half away from zero
  EXPECT_EQ(parse_usd("4E-10"), 0);
  // Signs: a credit is a negative amount.
  EXPECT_EQ(parse_usd("-0.5"), -500000000);
  EXPECT_EQ(parse_usd("+1"), 1000000000);
  EXPECT_EQ(parse_usd("-0"), 0);
  EXPECT_EQ(parse_usd("-1.5E-9"), -2);
  EXPECT_EQ(parse_usd("-2.5E-8"), -25);
  // Python's parser takes a missing digit on one side of the point.
  EXPECT_EQ(parse_usd(".5"), 500000000);
  EXPECT_EQ(parse_usd("5."), 5000000000);
}

TEST(ParseUsd, RejectsNonFiniteValuesDistinctly) {
  for (const char* s : {"NaN", "nan", "-NaN", "sNaN", "NaN123", "Infinity", "-Infinity", "inf",
                        "+Inf", "INFINITY"}) {
    EXPECT_EQ(parse_decimal_usd(s).status, DecimalStatus::not_finite) << s;
  }
  EXPECT_EQ(parse_decimal_usd("Infinit").status, DecimalStatus::malformed);
}

TEST(ParseUsd, NegativeItemsLowerTheSum) {
  NanoUsd total = 0;
  for (const char* s : {"1.25", "-0.25", "1E-7", "-1E-7"}) total += *parse_usd(s);
  EXPECT_EQ(total, *parse_usd("1"));
}

TEST(ParseUsd, RejectsOverflow) {
  // int64 nano-dollars hold up to 9223372036.854775807 USD.
  EXPECT_EQ(parse_usd("9223372036.854775807"), std::numeric_limits<NanoUsd>::max());
  EXPECT_FALSE(parse_usd("9223372036.854775808").has_value());
  EXPECT_FALSE(parse_usd("9223372037").has_value());
  EXPECT_FALSE(parse_usd("99999999999999999999999999").has_value());
  EXPECT_FALSE(parse_usd("9223372036.8547758075").has_value());  // rounds past the maximum
  EXPECT_EQ(parse_decimal_usd("1E+10").status, DecimalStatus::out_of_range);
  EXPECT_EQ(parse_decimal_usd("-99999999999").status, DecimalStatus::out_of_range);
  EXPECT_EQ(parse_decimal_usd("1E+999999999999").status, DecimalStatus::out_of_range);
  EXPECT_EQ(parse_usd("9.223372036854775807E+9"), std::numeric_limits<NanoUsd>::max());
}

TEST(ParseUsd, RoundsBeyondNineFractionalDigitsHalfUp) {
  EXPECT_EQ(parse_usd("0.0000000014"), 1);
  EXPECT_EQ(parse_usd("0.0000000015"), 2);
  EXPECT_EQ(parse_usd("0.0000000004999"), 0);
  EXPECT_EQ(parse_usd("1.9999999999"), 2000000000);
  EXPECT_EQ(parse_usd("0.123456789123456789"), 123456789);
}

TEST(FormatUsd, PrintsShortestExactForm) {
  EXPECT_EQ(format_usd(1000), "0.000001");
  EXPECT_EQ(format_usd(12345678901000), "12345.678901");
  EXPECT_EQ(format_usd(3000000000), "3.0");
  EXPECT_EQ(format_usd(0), "0.0");
  EXPECT_EQ(format_usd(-1500000000), "-1.5");
  EXPECT_EQ(format_usd(std::numeric_limits<NanoUsd>::min()), "-9223372036.854775808");
  for (const char* s : {"0.000001", "12345.678901", "0.3", "9223372036.854775807"}) {
    EXPECT_EQ(format_usd(*parse_usd(s)), s);
  }
}

}  // namespace
}  // namespace mx
