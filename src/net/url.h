// http:// and https:// URLs as the HTTP client needs them, and their log-safe form.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mx::net {

struct HttpUrl {
  bool tls = false;
  std::string host;         // without IPv6 brackets
  std::string port;         // "80"/"443" when the URL names none
  std::string target;       // path + query, "/" when empty
  std::string host_header;  // as it goes into Host:
};

// Parses an http:// or https:// URL. nullopt with `error` set when it is anything else.
// User info (user:pass@) is refused: credentials do not belong in annotations.
std::optional<HttpUrl> parse_http_url(std::string_view url, std::string* error);

// The URL without user info and query string, safe to log (tokens travel in queries).
std::string redact_url(std::string_view url);

}  // namespace mx::net
