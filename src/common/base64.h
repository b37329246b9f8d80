// Base64 for the few places that need it: kubeconfig *-data fields, the `exp` claim of Modal's
// JWT, and the test fixtures (continue tokens, generated kubeconfigs, fake JWTs).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mx::base64 {

enum class Alphabet { standard, url };

// Standard: `+/` with `=` padding (RFC 4648 §4). Url: `-_` without padding (§5, as JWTs use).
std::string encode(std::string_view data, Alphabet alphabet = Alphabet::standard);

// Accepts either alphabet, with or without padding, and ignores ASCII whitespace (kubeconfigs
// wrap long values). nullopt for any other character or for data after padding.
std::optional<std::string> decode(std::string_view text);

}  // namespace mx::base64
