// Modal's decimal USD amounts (parse_usd). Invariants: an accepted amount is not negative, and
// format_usd writes text that parse_usd reads back to the same nano-dollars.
#include <string>

#include "fuzz_support.h"
#include "sources/modal/decimal.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto value = mx::parse_usd(mx::fuzz::as_text(data, size));
  if (!value) return 0;
  MX_FUZZ_CHECK(*value >= 0);
  const std::string text = mx::format_usd(*value);
  const auto again = mx::parse_usd(text);
  MX_FUZZ_CHECK(again && *again == *value);
  return 0;
}
