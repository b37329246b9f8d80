// Modal's decimal USD amounts (parse_usd), as Python's Decimal prints them: signs and exponents
// are accepted (a negative line item is a credit). Invariant: format_usd writes text that
// parse_usd reads back to the same nano-dollars.
#include <string>

#include "fuzz_support.h"
#include "sources/modal/decimal.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto value = mx::parse_usd(mx::fuzz::as_text(data, size));
  if (!value) return 0;
  const std::string text = mx::format_usd(*value);
  const auto again = mx::parse_usd(text);
  MX_FUZZ_CHECK(again && *again == *value);
  return 0;
}
