// The web config parser: exporter-toolkit's keys and values, errors that name the key, and no
// crash (only ConfigError) on malformed input.
#include <gtest/gtest.h>

#include <random>

#include "config/web_config.h"

namespace mx {
namespace {

const std::string kHash = "$2y$10$mzde3.Lfcl6FEmkzAXHDq.JOBtS5tg0y0APGdAVf7j0sapKrLeD7G";

std::string error_of(const std::string& yaml) {
  try {
    parse_web_config_text(yaml, "web.yml", "/etc/modal-exporter");
  } catch (const ConfigError& e) {
    return e.message;
  }
  return "";
}

TEST(WebConfig, EmptyFileMeansPlainHttpWithoutAuth) {
  const auto c = parse_web_config_text("");
  EXPECT_FALSE(c.tls.enabled);
  EXPECT_FALSE(c.auth_enabled());
  EXPECT_TRUE(c.http2);
  EXPECT_EQ(c.rate_limit_interval.count(), 0);
}

TEST(WebConfig, EveryExporterToolkitKey) {
  const auto c = parse_web_config_text(R"(
tls_server_config:
  cert_file: tls/server.crt
  key_file: /abs/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  client_allowed_sans: [prometheus.example, 10.0.0.1]
  min_version: TLS12
  max_version: TLS13
  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]
  curve_preferences: [X25519, CurveP256]
  prefer_server_cipher_suites: false
http_server_config:
  http2: false
  headers:
    Content-Security-Policy: "default-src 'self'"
    X-Content-Type-Options: nosniff
    X-Frame-Options: sameorigin
    X-XSS-Protection: "1; mode=block"
    Strict-Transport-Security: max-age=31536000; includeSubDomains
basic_auth_users:
  prometheus: )" + kHash + R"(
rate_limit:
  interval: 100ms
  burst: 20
)",
                                       "web.yml", "/etc/mx");
  EXPECT_TRUE(c.tls.enabled);
  EXPECT_EQ(c.tls.cert_file, "/etc/mx/tls/server.crt");  // relative to the file's directory
  EXPECT_EQ(c.tls.key_file, "/abs/server.key");
  EXPECT_EQ(c.tls.client_ca_file, "/etc/mx/ca.crt");
  EXPECT_EQ(c.tls.client_auth, ClientAuthType::require_and_verify_client_cert);
  EXPECT_EQ(c.tls.client_allowed_sans.size(), 2u);
  EXPECT_EQ(c.tls.cipher_suites.size(), 2u);
  EXPECT_FALSE(c.tls.prefer_server_cipher_suites);
  EXPECT_FALSE(c.http2);
  EXPECT_EQ(c.headers.size(), 5u);
  EXPECT_EQ(c.basic_auth_users.at("prometheus"), kHash);
  EXPECT_EQ(c.rate_limit_interval, Duration(100));
  EXPECT_EQ(c.rate_limit_burst, 20);
}

TEST(WebConfig, InlinePemAndAllClientAuthTypes) {
  for (const char* t : {"NoClientCert", "RequestClientCert", "RequireAnyClientCert"}) {
    auto c = parse_web_config_text(std::string("tls_server_config:\n  cert: |\n    PEM\n  key: K\n"
                                               "  client_auth_type: ") +
                                   t + "\n");
    EXPECT_EQ(to_string(c.tls.client_auth), std::string_view(t));
  }
  for (const char* t : {"VerifyClientCertIfGiven", "RequireAndVerifyClientCert"}) {
    auto c = parse_web_config_text(std::string("tls_server_config:\n  cert: C\n  key: K\n"
                                               "  client_ca: CA\n  client_auth_type: ") +
                                   t + "\n");
    EXPECT_EQ(to_string(c.tls.client_auth), std::string_view(t));
  }
}

TEST(WebConfig, ErrorsNameTheKey) {
  auto e = error_of("tls_server_config:\n  cert_file: a\n  key_file: b\n  bogus: 1\n");
  EXPECT_NE(e.find("tls_server_config.bogus"), std::string::npos) << e;
  EXPECT_NE(e.find("line 4"), std::string::npos) << e;
  e = error_of("unknown_section: {}\n");
  EXPECT_NE(e.find("\"unknown_section\""), std::string::npos) << e;
  e = error_of("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Maybe\n");
  EXPECT_NE(e.find("tls_server_config.client_auth_type"), std::string::npos) << e;
  e = error_of("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS14\n");
  EXPECT_NE(e.find("tls_server_config.min_version"), std::string::npos) << e;
  e = error_of(
      "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n"
      "  max_version: TLS12\n");
  EXPECT_NE(e.find("tls_server_config.min_version"), std::string::npos) << e;
  e = error_of("tls_server_config:\n  cert_file: a\n");
  EXPECT_NE(e.find("tls_server_config.key_file"), std::string::npos) << e;
  e = error_of("tls_server_config:\n  cert_file: a\n  cert: b\n  key_file: k\n");
  EXPECT_NE(e.find("tls_server_config.cert_file"), std::string::npos) << e;
  e = error_of("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n");
  EXPECT_NE(e.find("client auth policy"), std::string::npos) << e;
  e = error_of(
      "tls_server_config:\n  cert_file: a\n  key_file: b\n"
      "  client_auth_type: RequireAndVerifyClientCert\n");
  EXPECT_NE(e.find("tls_server_config.client_ca_file"), std::string::npos) << e;
  e = error_of("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [RC4]\n");
  EXPECT_NE(e.find("tls_server_config.cipher_suites"), std::string::npos) << e;
  e = error_of("tls_server_config:\n  cert_file: a\n  key_file: b\n  curve_preferences: [P-256]\n");
  EXPECT_NE(e.find("tls_server_config.curve_preferences"), std::string::npos) << e;
  e = error_of("http_server_config:\n  http2: maybe\n");
  EXPECT_NE(e.find("http_server_config.http2"), std::string::npos) << e;
  e = error_of("http_server_config:\n  headers:\n    X-Frame-Options: allow\n");
  EXPECT_NE(e.find("http_server_config.headers.X-Frame-Options"), std::string::npos) << e;
  e = error_of("http_server_config:\n  headers:\n    Server: nginx\n");
  EXPECT_NE(e.find("http_server_config.headers.Server"), std::string::npos) << e;
  e = error_of("rate_limit:\n  interval: fast\n");
  EXPECT_NE(e.find("rate_limit.interval"), std::string::npos) << e;
  e = error_of("rate_limit:\n  interval: 1s\n");
  EXPECT_NE(e.find("rate_limit.burst"), std::string::npos) << e;
  e = error_of("tls_server_config: [1, 2]\n");
  EXPECT_NE(e.find("tls_server_config"), std::string::npos) << e;
  e = error_of("a: [b\n");
  EXPECT_NE(e.find("invalid YAML"), std::string::npos) << e;
}

TEST(WebConfig, KeysMustBeStringsAndUniqueAsInTheMainConfig) {
  auto e = error_of("tls_server_config:\n  ? [a]\n  : 1\n");
  EXPECT_EQ(e, "web.yml: key \"tls_server_config\" (line 2): keys must be strings");
  e = error_of("http_server_config:\n  headers:\n    ? {a: 1}\n    : x\n");
  EXPECT_EQ(e, "web.yml: key \"http_server_config.headers\" (line 3): keys must be strings");
  e = error_of("basic_auth_users:\n  ? [u]\n  : x\n");
  EXPECT_EQ(e, "web.yml: key \"basic_auth_users\" (line 2): keys must be strings");
  e = error_of("rate_limit:\n  burst: 1\n  burst: 2\n");
  EXPECT_EQ(e, "web.yml: key \"rate_limit.burst\" (line 3): duplicate key");
  e = error_of("rate_limit:\n  interval: 300000000000d\n  burst: 1\n");
  EXPECT_NE(e.find("key \"rate_limit.interval\" (line 2)"), std::string::npos) << e;
  EXPECT_NE(e.find("too large"), std::string::npos) << e;
  e = error_of("auth_excluded_paths: [/healthz, readyz]\n");
  EXPECT_EQ(e, "web.yml: key \"auth_excluded_paths\" (line 1): paths start with '/'");
}

TEST(WebConfig, AHashThatIsNotBcryptIsAnErrorAndIsNotEchoed) {
  for (const std::string& bad : std::vector<std::string>{
           "plaintext", "$1$abc$abcdefgh", "$2y$03$" + kHash.substr(7), "$2y$10$short",
           "$2x$10$" + kHash.substr(7), "$2y$10$" + kHash.substr(7, 52) + "!"}) {
    const auto e = error_of("basic_auth_users:\n  alice: '" + bad + "'\n");
    EXPECT_NE(e.find("basic_auth_users.alice"), std::string::npos) << bad << ": " << e;
    EXPECT_EQ(e.find(bad), std::string::npos) << e;
  }
  EXPECT_TRUE(is_bcrypt_hash(kHash));
  EXPECT_TRUE(is_bcrypt_hash("$2b$" + kHash.substr(4)));
}

TEST(WebConfig, HostileInputOnlyEverThrowsConfigError) {
  std::mt19937 rng(14);
  const std::string seed =
      "tls_server_config:\n  cert_file: a\n  key_file: b\n"
      "basic_auth_users:\n  u: " +
      kHash + "\nrate_limit: {interval: 1s, burst: 2}\n";
  const std::string alphabet = ":-[]{}|>&*!%@`'\"#\n\t ,?abc01$\\";
  for (int i = 0; i < 3000; ++i) {
    std::string doc = seed;
    const int edits = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < edits; ++k) {
      const std::size_t at = rng() % (doc.size() + 1);
      if (rng() % 2 && at < doc.size()) {
        doc.erase(at, 1 + rng() % 4);
      } else {
        doc.insert(at, 1, alphabet[rng() % alphabet.size()]);
      }
    }
    try {
      parse_web_config_text(doc);
    } catch (const ConfigError&) {
    }
  }
  EXPECT_NE(error_of(std::string(100000, '[')), "");
  EXPECT_NE(error_of(std::string(2 << 20, 'a')), "");
  EXPECT_NE(error_of("*alias\n"), "");
}

}  // namespace
}  // namespace mx
