#include "common/base64.h"

#include <openssl/evp.h>

namespace mx::base64 {

std::string encode(std::string_view data, Alphabet alphabet) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(data.data()),
                                static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  if (alphabet == Alphabet::url) {
    while (!out.empty() && out.back() == '=') out.pop_back();
    for (char& c : out) {
      if (c == '+') c = '-';
      if (c == '/') c = '_';
    }
  }
  return out;
}

std::optional<std::string> decode(std::string_view text) {
  // Normalise to padded standard base64, which is what OpenSSL's block decoder takes.
  std::string normal;
  normal.reserve(text.size() + 3);
  std::size_t padding = 0;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    if (padding > 0) return std::nullopt;  // data after padding
    if (c == '-') c = '+';
    if (c == '_') c = '/';
    normal.push_back(c);
  }
  if (normal.size() % 4 == 1 || padding > 2) return std::nullopt;
  const std::size_t missing = (4 - normal.size() % 4) % 4;
  normal.append(missing, '=');
  std::string out(normal.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(normal.data()),
                                static_cast<int>(normal.size()));
  if (n < 0) return std::nullopt;
  // The block decoder counts the bytes that padding stands for; drop them.
  out.resize(static_cast<std::size_t>(n) - missing);
  return out;
}

}  // namespace mx::base64
