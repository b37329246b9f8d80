// Proxy selection (Go's net/http rules: HTTPS_PROXY/HTTP_PROXY/NO_PROXY, loopback direct) and
// proxy URLs (credentials, refused schemes).
#include "net/proxy.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "common/base64.h"

namespace mx::net {
namespace {

HttpUrl url(const std::string& text) {
  std::string error;
  auto u = parse_http_url(text, &error);
  EXPECT_TRUE(u) << error;
  return u.value_or(HttpUrl{});
}

TEST(ProxyUrl, HostPortAndCredentials) {
  std::string error;
  auto p = parse_proxy_url("http://us%40er:p%3Ass@proxy.corp:3128/ignored", &error);
  ASSERT_TRUE(p) << error;
  EXPECT_EQ(p->host, "proxy.corp");
  EXPECT_EQ(p->port, "3128");
  EXPECT_EQ(p->authorization, "Basic " + base64::encode("us@er:p:ss"));
  EXPECT_EQ(p->display, "http://proxy.corp:3128");  // no credentials

  p = parse_proxy_url("proxy.corp", &error);  // no scheme: http://, as in Go
  ASSERT_TRUE(p) << error;
  EXPECT_EQ(p->port, "80");
  EXPECT_TRUE(p->authorization.empty());
  p = parse_proxy_url("http://[::1]:8080", &error);
  ASSERT_TRUE(p) << error;
  EXPECT_EQ(p->host, "::1");
}

TEST(ProxyUrl, RefusedSchemesNameTheSchemeNotTheSecret) {
  std::string error;
  EXPECT_FALSE(parse_proxy_url("socks5://user:secret@proxy:1080", &error));
  EXPECT_NE(error.find("SOCKS5"), std::string::npos) << error;
  EXPECT_EQ(error.find("secret"), std::string::npos) << error;
  EXPECT_FALSE(parse_proxy_url("https://proxy:443", &error));
  EXPECT_NE(error.find("https://"), std::string::npos) << error;
  EXPECT_FALSE(parse_proxy_url("http://user:secret@:3128", &error));
  EXPECT_EQ(error.find("secret"), std::string::npos) << error;
}

TEST(ProxySelection, SchemePicksTheVariable) {
  ProxyEnvironment env;
  env.https_proxy = "http://secure-proxy:3128";
  env.http_proxy = "http://plain-proxy:3128";
  std::string error;
  auto p = proxy_for(env, url("https://api.example.com/x"), &error);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host, "secure-proxy");
  p = proxy_for(env, url("http://api.example.com/x"), &error);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host, "plain-proxy");
  env.http_proxy.clear();
  EXPECT_FALSE(proxy_for(env, url("http://api.example.com/x"), &error));
  EXPECT_TRUE(error.empty());
}

TEST(ProxySelection, LoopbackAlwaysGoesDirect) {
  ProxyEnvironment env;
  env.https_proxy = "http://proxy:3128";
  std::string error;
  EXPECT_FALSE(proxy_for(env, url("https://127.0.0.1:6443/"), &error));
  EXPECT_FALSE(proxy_for(env, url("https://127.8.9.10:6443/"), &error));
  EXPECT_FALSE(proxy_for(env, url("https://[::1]:6443/"), &error));
  EXPECT_FALSE(proxy_for(env, url("https://localhost:6443/"), &error));
  EXPECT_FALSE(proxy_for(env, url("https://LOCALHOST/"), &error));
  EXPECT_TRUE(proxy_for(env, url("https://localhost.example.com/"), &error));
  EXPECT_TRUE(proxy_for(env, url("https://10.0.0.1:6443/"), &error));
}

TEST(ProxySelection, NoProxyRules) {
  const auto direct = [](const std::string& no_proxy, const std::string& host,
                         const std::string& port = "443") {
    return bypasses_proxy(no_proxy, host, port);
  };
  EXPECT_TRUE(direct("*", "anything.example"));
  // A domain matches itself and its subdomains, not names that merely end with it.
  EXPECT_TRUE(direct("example.com", "example.com"));
  EXPECT_TRUE(direct("example.com", "api.example.com"));
  EXPECT_FALSE(direct("example.com", "notexample.com"));
  // A leading dot or "*." matches subdomains only.
  EXPECT_FALSE(direct(".example.com", "example.com"));
  EXPECT_TRUE(direct(".example.com", "api.example.com"));
  EXPECT_FALSE(direct("*.example.com", "example.com"));
  EXPECT_TRUE(direct("*.example.com", "a.b.example.com"));
  // Ports, case, spaces and empty entries.
  EXPECT_TRUE(direct("other.org, Example.COM:443", "API.example.com", "443"));
  EXPECT_FALSE(direct("example.com:6443", "api.example.com", "443"));
  EXPECT_TRUE(direct(",,example.com,", "example.com"));
  // IP addresses and CIDR blocks match IP hosts only.
  EXPECT_TRUE(direct("10.0.0.1", "10.0.0.1"));
  EXPECT_FALSE(direct("10.0.0.1", "10.0.0.2"));
  EXPECT_TRUE(direct("10.0.0.1:6443", "10.0.0.1", "6443"));
  EXPECT_FALSE(direct("10.0.0.1:6443", "10.0.0.1", "443"));
  EXPECT_TRUE(direct("10.0.0.0/8", "10.200.3.4"));
  EXPECT_FALSE(direct("10.0.0.0/8", "11.0.0.1"));
  EXPECT_TRUE(direct("172.16.0.0/12", "172.31.255.255"));
  EXPECT_FALSE(direct("172.16.0.0/12", "172.32.0.0"));
  EXPECT_TRUE(direct("fd00::/8", "fd12::1"));
  EXPECT_TRUE(direct("[fd00::1]:443", "fd00::1", "443"));
  EXPECT_FALSE(direct("10.0.0.0/8", "ten.example"));
  EXPECT_FALSE(direct("", "example.com"));
}

TEST(ProxySelection, EnvironmentUpperCaseFirstAndCgiIgnoresHttpProxy) {
  ::setenv("HTTPS_PROXY", "http://upper:1", 1);
  ::setenv("https_proxy", "http://lower:1", 1);
  ::unsetenv("HTTP_PROXY");
  ::setenv("http_proxy", "http://plain:1", 1);
  ::setenv("no_proxy", "example.com", 1);
  ::unsetenv("NO_PROXY");
  auto env = ProxyEnvironment::from_environment();
  EXPECT_EQ(env.https_proxy, "http://upper:1");
  EXPECT_EQ(env.http_proxy, "http://plain:1");
  EXPECT_EQ(env.no_proxy, "example.com");
  ::setenv("REQUEST_METHOD", "GET", 1);
  EXPECT_TRUE(ProxyEnvironment::from_environment().http_proxy.empty());
  for (const char* name :
       {"HTTPS_PROXY", "https_proxy", "http_proxy", "no_proxy", "REQUEST_METHOD"}) {
    ::unsetenv(name);
  }
}

}  // namespace
}  // namespace mx::net
