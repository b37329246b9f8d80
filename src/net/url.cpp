#include "net/url.h"

#include <algorithm>
#include <charconv>

namespace mx::net {

namespace {

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

bool has_control_or_space(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

}  // namespace

std::optional<HttpUrl> parse_http_url(std::string_view url, std::string* error) {
  auto fail = [&](std::string why) -> std::optional<HttpUrl> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  HttpUrl out;
  std::string_view rest;
  if (iequals_prefix(url, "http://")) {
    rest = url.substr(7);
  } else if (iequals_prefix(url, "https://")) {
    out.tls = true;
    rest = url.substr(8);
  } else {
    return fail("URL must start with http:// or https://");
  }
  const std::size_t authority_end = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, authority_end);
  std::string_view target =
      authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);
  if (const auto hash = target.find('#'); hash != std::string_view::npos) {
    target = target.substr(0, hash);  // a fragment is never sent
  }
  if (authority.find('@') != std::string_view::npos) {
    return fail("credentials in the URL are not supported");
  }
  if (has_control_or_space(authority) || has_control_or_space(target)) {
    return fail("URL contains spaces or control characters");
  }
  std::string_view host;
  std::string_view port;
  if (!authority.empty() && authority[0] == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return fail("unterminated IPv6 address in URL");
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return fail("unexpected text after the IPv6 address in URL");
      port = after.substr(1);
    }
  } else {
    const auto colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (host.empty()) return fail("URL has no host");
  if (port.empty() && authority.find(':') != std::string_view::npos && authority[0] != '[') {
    return fail("URL has an empty port");
  }
  if (!port.empty()) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || end != port.data() + port.size() || value == 0 || value > 65535) {
      return fail("invalid port in URL");
    }
  }
  out.host.assign(host);
  out.port = port.empty() ? (out.tls ? "443" : "80") : std::string(port);
  out.host_header.assign(authority);
  if (target.empty() || target[0] != '/') {
    out.target = "/";
    out.target.append(target);  // "?q" without a path
  } else {
    out.target.assign(target);
  }
  return out;
}

std::string redact_url(std::string_view url) {
  const auto scheme_end = url.find("://");
  const std::size_t authority_start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  std::string_view head = url.substr(0, authority_start);
  std::string_view rest = url.substr(authority_start);
  rest = rest.substr(0, rest.find_first_of("?#"));
  const std::size_t authority_end = rest.find('/');
  const std::string_view authority = rest.substr(0, authority_end);
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    rest = rest.substr(at + 1);
  }
  std::string out(head);
  out.append(rest);
  return out;
}

}  // namespace mx::net
