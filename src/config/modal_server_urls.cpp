#include "config/modal_server_urls.h"

namespace mx {
namespace {

std::string quoted(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

std::string_view trim_spaces(std::string_view s) {
  constexpr std::string_view kSpace = " \t\n\r\f\v";
  const auto first = s.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kSpace) - first + 1);
}

}  // namespace

std::optional<ModalServerTarget> parse_modal_server_url(std::string_view url, std::string* error) {
  ModalServerTarget result;
  std::string_view rest;
  std::string default_port;
  if (url.starts_with("https://")) {
    rest = url.substr(8);
    result.tls = true;
    default_port = "443";
  } else if (url.starts_with("http://")) {
    rest = url.substr(7);
    result.tls = false;
    default_port = "80";
  } else {
    *error = quoted(url) + " must start with https:// or http://";
    return std::nullopt;
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty() || rest.find_first_of("/?#@ ") != std::string_view::npos) {
    *error = quoted(url) + " must be scheme://host[:port]";
    return std::nullopt;
  }
  // host, host:port, [v6], [v6]:port
  std::string_view host = rest;
  std::string_view port;
  if (rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) {
      *error = quoted(url) + " has an unterminated IPv6 address";
      return std::nullopt;
    }
    host = rest.substr(0, close + 1);
    const auto after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        *error = quoted(url) + " must be scheme://host[:port]";
        return std::nullopt;
      }
      port = after.substr(1);
    }
  } else if (const auto colon = rest.find(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (host.empty()) {
      *error = quoted(url) + " has no host";
      return std::nullopt;
    }
  }
  if (port.data() != nullptr) {
    bool ok = !port.empty() && port.size() <= 5;
    long value = 0;
    // At most 5 digits are read: a long port must not overflow `value` (found by tests/fuzz).
    for (char c : port.substr(0, 5)) {
      if (c < '0' || c > '9') {
        ok = false;
        break;
      }
      value = value * 10 + (c - '0');
    }
    if (!ok || value < 1 || value > 65535) {
      *error = quoted(url) + " has an invalid port";
      return std::nullopt;
    }
    result.target = std::string(host) + ":" + std::string(port);
  } else {
    result.target = std::string(host) + ":" + default_port;
  }
  return result;
}

std::optional<std::vector<ModalServerTarget>> parse_modal_server_urls(std::string_view list,
                                                                      std::string* error) {
  std::vector<ModalServerTarget> out;
  std::size_t begin = 0;
  while (true) {
    const auto comma = list.find(',', begin);
    const auto entry = trim_spaces(list.substr(
        begin, comma == std::string_view::npos ? std::string_view::npos : comma - begin));
    if (entry.empty()) {
      *error = quoted(list) + " has an empty entry";
      return std::nullopt;
    }
    auto target = parse_modal_server_url(entry, error);
    if (!target) return std::nullopt;
    out.push_back(std::move(*target));
    if (comma == std::string_view::npos) break;
    begin = comma + 1;
  }
  return out;
}

}  // namespace mx
