// JWTs Modal issues (jwt_expiry reads the `exp` claim without verifying the signature) and the
// other Modal strings checked before use. Half the inputs are taken as a whole token; the other
// half as a JSON payload that is base64url-encoded into "header.<payload>.signature", so the
// fuzzer reaches the claim parsing directly.
#include <chrono>
#include <string>

#include "common/base64.h"
#include "fuzz_support.h"
#include "sources/modal/modal_util.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view input = mx::fuzz::as_text(data + 1, size - 1);
  std::string token;
  if (data[0] & 1) {
    token = std::string(input);
  } else {
    // Appended, not "literal" + std::string&&: GCC 12 misreads that path (see source_test.cpp).
    token = "eyJhbGciOiJIUzI1NiJ9.";
    token += mx::base64::encode(input, mx::base64::Alphabet::url);
    token += ".c2lnbmF0dXJl";
  }
  if (const auto exp = mx::jwt_expiry(token)) {
    const auto seconds =
        std::chrono::duration_cast<std::chrono::seconds>(exp->time_since_epoch()).count();
    MX_FUZZ_CHECK(seconds >= 0 && seconds <= 4'000'000'000LL);
  }
  // Tokens are sent as gRPC metadata only when valid_metadata_value accepts them: it must reject
  // every byte outside 0x20..0x7e.
  if (mx::valid_metadata_value(input)) {
    for (const char c : input) MX_FUZZ_CHECK(c >= 0x20 && c <= 0x7e);
  }
  if (const auto decoded = mx::base64::decode(input)) {
    for (const auto alphabet : {mx::base64::Alphabet::standard, mx::base64::Alphabet::url}) {
      const auto again = mx::base64::decode(mx::base64::encode(*decoded, alphabet));
      MX_FUZZ_CHECK(again && *again == *decoded);
    }
  }
  std::string error;
  if (const auto target = mx::parse_modal_server_url(input, &error)) {
    MX_FUZZ_CHECK(!target->target.empty());
  } else {
    MX_FUZZ_CHECK(!error.empty());
  }
  return 0;
}
