// Forward proxies for the HTTP client, chosen as Go's net/http does (golang.org/x/net/http/
// httpproxy), so that the exporter goes where kubectl and the rest of a cluster's tooling go:
// HTTPS_PROXY for https:// URLs, HTTP_PROXY for http:// URLs (upper-case names first, then the
// lower-case ones), NO_PROXY exceptions, and localhost and loopback addresses always direct.
// A kubeconfig's proxy-url replaces the environment for that cluster. Only http:// proxies are
// spoken (CONNECT for https:// targets, absolute-form requests for http:// ones).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "net/url.h"

namespace mx::net {

struct ProxyUrl {
  std::string host;  // without IPv6 brackets
  std::string port;  // "80" when the URL names none
  // "Basic <base64(user:password)>" when the URL carries user info; never logged.
  std::string authorization;
  std::string display;  // "http://host:port", safe to log
};

// "http://user:pass@proxy:3128", or "proxy:3128" (http:// assumed, as in Go). nullopt with
// `error` for socks5://, https:// and anything malformed; `error` never holds the password.
std::optional<ProxyUrl> parse_proxy_url(std::string_view url, std::string* error);

struct ProxyEnvironment {
  std::string http_proxy;
  std::string https_proxy;
  std::string no_proxy;

  // HTTP_PROXY/http_proxy, HTTPS_PROXY/https_proxy, NO_PROXY/no_proxy. HTTP_PROXY is ignored
  // under CGI (REQUEST_METHOD set), as in Go.
  static ProxyEnvironment from_environment();
};

// True when NO_PROXY or the loopback rule sends `host`:`port` direct: "*", an IP address or CIDR
// block, "example.com" (the domain and its subdomains), ".example.com" / "*.example.com"
// (subdomains only), each optionally with ":port".
bool bypasses_proxy(std::string_view no_proxy, std::string_view host, std::string_view port);

// The proxy for `url` under `env`: nullopt for direct (no proxy set, bypassed, or an unusable
// proxy URL, which `error` then explains).
std::optional<ProxyUrl> proxy_for(const ProxyEnvironment& env, const HttpUrl& url,
                                  std::string* error);

}  // namespace mx::net
