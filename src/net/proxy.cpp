#include "net/proxy.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <utility>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "common/base64.h"

namespace mx::net {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string env(const char* upper, const char* lower_name) {
  if (const char* v = std::getenv(upper); v != nullptr && *v != '\0') return v;
  if (const char* v = std::getenv(lower_name); v != nullptr) return v;
  return {};
}

std::optional<boost::asio::ip::address> ip_of(std::string_view text) {
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address(std::string(text), ec);
  if (ec) return std::nullopt;
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return boost::asio::ip::address(a.to_v6().to_v4());
  }
  return a;
}

// The address's bytes (IPv4 as 4, IPv6 as 16).
std::vector<unsigned char> bytes_of(const boost::asio::ip::address& a) {
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    return {b.begin(), b.end()};
  }
  const auto b = a.to_v6().to_bytes();
  return {b.begin(), b.end()};
}

bool in_cidr(const boost::asio::ip::address& ip, std::string_view cidr) {
  const auto slash = cidr.find('/');
  const auto net = ip_of(cidr.substr(0, slash));
  if (!net || net->is_v4() != ip.is_v4()) return false;
  const std::string bits_text(cidr.substr(slash + 1));
  char* end = nullptr;
  const long bits = std::strtol(bits_text.c_str(), &end, 10);
  const auto a = bytes_of(ip);
  const auto b = bytes_of(*net);
  if (bits_text.empty() || *end != '\0' || bits < 0 || bits > static_cast<long>(a.size()) * 8) {
    return false;
  }
  for (long i = 0; i < bits; ++i) {
    const auto byte = static_cast<std::size_t>(i / 8);
    const int mask = 0x80 >> (i % 8);
    if ((a[byte] & mask) != (b[byte] & mask)) return false;
  }
  return true;
}

// "host:port", "[v6]:port" or just a host; the port is "" when absent.
std::pair<std::string, std::string> split_host_port(std::string_view entry) {
  if (!entry.empty() && entry.front() == '[') {
    const auto close = entry.find(']');
    if (close == std::string_view::npos) return {std::string(entry), ""};
    std::string_view after = entry.substr(close + 1);
    return {std::string(entry.substr(1, close - 1)),
            after.size() > 1 && after.front() == ':' ? std::string(after.substr(1)) : ""};
  }
  const auto colon = entry.find(':');
  if (colon == std::string_view::npos || entry.find(':', colon + 1) != std::string_view::npos) {
    return {std::string(entry), ""};  // no port, or a bare IPv6 address
  }
  return {std::string(entry.substr(0, colon)), std::string(entry.substr(colon + 1))};
}

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    const std::string hex(s.substr(i + 1, 2));
    if (!std::isxdigit(static_cast<unsigned char>(hex[0])) ||
        !std::isxdigit(static_cast<unsigned char>(hex[1]))) {
      return std::nullopt;
    }
    out += static_cast<char>(std::stoi(hex, nullptr, 16));
    i += 2;
  }
  return out;
}

}  // namespace

std::optional<ProxyUrl> parse_proxy_url(std::string_view url, std::string* error) {
  const auto fail = [&](std::string why) -> std::optional<ProxyUrl> {
    if (error != nullptr) *error = std::move(why);
    return std::nullopt;
  };
  std::string_view rest = url;
  const auto scheme_end = rest.find("://");
  if (scheme_end != std::string_view::npos) {
    const std::string scheme = lower(rest.substr(0, scheme_end));
    if (scheme == "socks5" || scheme == "socks5h") {
      return fail("SOCKS5 proxies (" + scheme + "://) are not supported; use an http:// proxy");
    }
    if (scheme != "http") {
      return fail("proxy URL scheme " + scheme + ":// is not supported; use an http:// proxy");
    }
    rest.remove_prefix(scheme_end + 3);
  }
  rest = rest.substr(0, rest.find_first_of("/?#"));
  ProxyUrl p;
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view info = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    const auto colon = info.find(':');
    const auto user = percent_decode(info.substr(0, colon));
    const auto pass = percent_decode(colon == std::string_view::npos ? std::string_view{}
                                                                     : info.substr(colon + 1));
    if (!user || !pass) return fail("proxy URL has malformed credentials");
    p.authorization = "Basic " + base64::encode(*user + ":" + *pass);
  }
  // The rest is parsed as an http:// URL of its own, which checks host and port.
  std::string why;
  auto parsed = parse_http_url("http://" + std::string(rest), &why);
  if (!parsed) return fail("proxy URL: " + why);
  p.host = parsed->host;
  p.port = parsed->port;
  p.display = "http://" + parsed->host_header;
  return p;
}

ProxyEnvironment ProxyEnvironment::from_environment() {
  ProxyEnvironment e;
  e.https_proxy = env("HTTPS_PROXY", "https_proxy");
  e.http_proxy = env("HTTP_PROXY", "http_proxy");
  e.no_proxy = env("NO_PROXY", "no_proxy");
  if (const char* cgi = std::getenv("REQUEST_METHOD"); cgi != nullptr && *cgi != '\0') {
    e.http_proxy.clear();  // a CGI request's Proxy: header would set HTTP_PROXY (httpoxy)
  }
  return e;
}

bool bypasses_proxy(std::string_view no_proxy, std::string_view host_in, std::string_view port) {
  const std::string host = lower(host_in);
  if (host == "localhost") return true;
  const auto ip = ip_of(host);
  if (ip && ip->is_loopback()) return true;

  std::size_t start = 0;
  while (start <= no_proxy.size()) {
    auto end = no_proxy.find(',', start);
    if (end == std::string_view::npos) end = no_proxy.size();
    std::string entry = lower(no_proxy.substr(start, end - start));
    start = end + 1;
    entry.erase(0, entry.find_first_not_of(" \t"));
    entry.erase(entry.find_last_not_of(" \t") + 1);
    if (entry.empty()) continue;
    if (entry == "*") return true;
    if (entry.find('/') != std::string::npos) {
      if (ip && in_cidr(*ip, entry)) return true;
      continue;
    }
    auto [entry_host, entry_port] = split_host_port(entry);
    if (entry_host.empty()) continue;
    const bool port_ok = entry_port.empty() || entry_port == port;
    if (const auto entry_ip = ip_of(entry_host)) {
      if (ip && *ip == *entry_ip && port_ok) return true;
      continue;
    }
    if (entry_host.rfind("*.", 0) == 0) entry_host.erase(0, 1);
    const bool match_host = entry_host.front() != '.';
    if (match_host) entry_host.insert(0, ".");
    const bool suffix =
        host.size() >= entry_host.size() &&
        host.compare(host.size() - entry_host.size(), entry_host.size(), entry_host) == 0;
    if ((suffix || (match_host && host == entry_host.substr(1))) && port_ok) return true;
  }
  return false;
}

std::optional<ProxyUrl> proxy_for(const ProxyEnvironment& env, const HttpUrl& url,
                                  std::string* error) {
  const std::string& proxy = url.tls ? env.https_proxy : env.http_proxy;
  if (proxy.empty() || bypasses_proxy(env.no_proxy, url.host, url.port)) return std::nullopt;
  return parse_proxy_url(proxy, error);
}

}  // namespace mx::net
