#include "config/web_config.h"

#include "config/schema.h"
#include "config/values.h"

namespace mx {
namespace {

// The cipher suites crypto/tls offers (tls.CipherSuites()), by their IANA names, which is how
// exporter-toolkit spells them. The TLS 1.3 ones are accepted and fixed, as in Go.
const std::vector<std::string_view> kCipherSuites = {
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
};
const std::vector<std::string_view> kCurves = {"CurveP256", "CurveP384", "CurveP521", "X25519"};
const std::vector<std::string_view> kVersions = {"TLS10", "TLS11", "TLS12", "TLS13"};

// crypto/tls's ClientAuthType names; the first of a type is how it is shown.
const Names<ClientAuthType>& client_auth_names() {
  static const Names<ClientAuthType> names = {
      {"NoClientCert", ClientAuthType::no_client_cert},
      {"RequestClientCert", ClientAuthType::request_client_cert},
      {"RequireAnyClientCert", ClientAuthType::require_any_client_cert},
      {"RequireClientCert", ClientAuthType::require_any_client_cert},  // exporter-toolkit alias
      {"VerifyClientCertIfGiven", ClientAuthType::verify_client_cert_if_given},
      {"RequireAndVerifyClientCert", ClientAuthType::require_and_verify_client_cert}};
  return names;
}

// The headers exporter-toolkit lets a web config set, with the values it allows (empty: any).
const std::vector<std::pair<std::string_view, std::vector<std::string_view>>> kHeaders = {
    {"Strict-Transport-Security", {}},
    {"X-Content-Type-Options", {"nosniff"}},
    {"X-Frame-Options", {"deny", "sameorigin"}},
    {"X-XSS-Protection", {}},
    {"Content-Security-Policy", {}},
};

std::string resolve_path(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return base_dir + "/" + path;
}

std::string tls_version_error(const std::string& v) {
  for (auto known : kVersions) {
    if (known == v) return "";
  }
  return "unknown TLS version \"" + v + "\" (known: TLS10..TLS13)";
}

void read_header(const std::string& name, const schema::Value& v, WebSecurityConfig& c) {
  const std::vector<std::string_view>* allowed = nullptr;
  std::vector<std::string_view> known;
  for (const auto& [header, values] : kHeaders) {
    if (header == name) allowed = &values;
    known.push_back(header);
  }
  if (!allowed) v.fail("this header cannot be configured (known: " + join_names(known) + ")");
  if (v.node().IsNull()) return;  // "unset if blank"
  const std::string value = v.text();
  if (value.empty()) return;
  for (char ch : value) {
    if (ch == '\r' || ch == '\n' || ch == '\0') v.fail("control character");
  }
  bool ok = allowed->empty();
  for (auto a : *allowed) ok = ok || a == value;
  if (!ok) {
    v.fail("invalid value \"" + value + "\" (expected one of: " + join_names(*allowed) + ")");
  }
  c.headers.emplace_back(name, value);
}

void read_user(const std::string& user, const schema::Value& v, WebSecurityConfig& c) {
  // The key names the user, never the hash: these messages reach the log.
  if (user.empty() || user.find(':') != std::string::npos) {
    v.fail("a user name must be non-empty and contain no ':'");
  }
  if (!v.node().IsScalar() || !is_bcrypt_hash(v.node().Scalar())) {
    v.fail("not a bcrypt hash (expected $2y$, $2b$ or $2a$, e.g. from `htpasswd -nBC 10 \"\"`)");
  }
  c.basic_auth_users[user] = v.node().Scalar();
}

// Every key of the format, bound to `c`; client_auth_type is kept as written in `client_auth`
// (TLS is on when any TLS key is set, as exporter-toolkit decides it).
std::vector<schema::Key> keys(WebSecurityConfig& c, std::string& client_auth) {
  using namespace schema;
  auto& t = c.tls;
  const std::string p = "tls_server_config.";
  const auto client_auth_check = [](const std::string& v) {
    std::string error;
    if (v.empty() || parse_name(v, client_auth_names(), &error)) return std::string();
    return error;
  };
  const auto no_show = [] { return std::string(); };
  return {
      text(p + "cert", t.cert, "inline PEM server certificate"),
      text(p + "key", t.key, "inline PEM private key"),
      text(p + "client_ca", t.client_ca, "inline PEM client CA"),
      text(p + "cert_file", t.cert_file, "server certificate file"),
      text(p + "key_file", t.key_file, "private key file"),
      text(p + "client_auth_type", client_auth, "client certificate policy", client_auth_check),
      text(p + "client_ca_file", t.client_ca_file, "client CA file"),
      list(p + "client_allowed_sans", t.client_allowed_sans, "allowed client SANs; empty: any"),
      text(p + "min_version", t.min_version, "TLS10..TLS13", tls_version_error),
      text(p + "max_version", t.max_version, "TLS10..TLS13", tls_version_error),
      list(p + "cipher_suites", t.cipher_suites, "TLS 1.2 cipher suites", kCipherSuites),
      boolean(p + "prefer_server_cipher_suites", t.prefer_server_cipher_suites,
              "accepted for compatibility"),
      list(p + "curve_preferences", t.curve_preferences, "key exchange curves", kCurves),
      boolean("http_server_config.http2", c.http2, "accepted; the server speaks HTTP/1.1"),
      mapping(
          "http_server_config.headers", "response headers",
          [&c](const std::string& name, const Value& value) { read_header(name, value, c); },
          no_show),
      mapping(
          "basic_auth_users", "user name to bcrypt hash",
          [&c](const std::string& user, const Value& hash) { read_user(user, hash, c); }, no_show),
      duration("rate_limit.interval", c.rate_limit_interval, "token refill period; 0: no limit",
               /*allow_zero=*/true),
      integer("rate_limit.burst", c.rate_limit_burst, 0, 1000000, "token bucket size"),
      list("auth_excluded_paths", c.auth_excluded_paths, "paths served without basic auth", {},
           [](const std::string& path) {
             return path[0] == '/' ? std::string() : std::string("paths start with '/'");
           }),
  };
}

void check_tls(const schema::Document& doc, const std::string& client_auth,
               const std::string& base_dir, TlsServerConfig& c) {
  const std::string p = "tls_server_config.";
  c.enabled = !c.cert.empty() || !c.key.empty() || !c.cert_file.empty() || !c.key_file.empty() ||
              !c.client_ca.empty() || !c.client_ca_file.empty() || !client_auth.empty();
  if (!c.enabled) return;
  if (c.cert.empty() == c.cert_file.empty()) {
    doc.fail(p + "cert_file", "set exactly one of cert_file and cert");
  }
  if (c.key.empty() == c.key_file.empty()) {
    doc.fail(p + "key_file", "set exactly one of key_file and key");
  }
  if (!c.client_ca.empty() && !c.client_ca_file.empty()) {
    doc.fail(p + "client_ca", "set at most one of client_ca_file and client_ca");
  }
  std::string error;
  if (!client_auth.empty()) c.client_auth = *parse_name(client_auth, client_auth_names(), &error);
  const bool has_ca = !c.client_ca.empty() || !c.client_ca_file.empty();
  if (has_ca && c.client_auth == ClientAuthType::no_client_cert) {
    doc.fail(p + "client_auth_type", "a client CA is configured without a client auth policy");
  }
  if (!has_ca && (c.client_auth == ClientAuthType::verify_client_cert_if_given ||
                  c.client_auth == ClientAuthType::require_and_verify_client_cert)) {
    doc.fail(p + "client_ca_file",
             "verifying client certificates needs client_ca_file or client_ca");
  }
  if (c.min_version > c.max_version) {
    doc.fail(p + "min_version", "must not be above max_version");
  }
  c.cert_file = resolve_path(base_dir, c.cert_file);
  c.key_file = resolve_path(base_dir, c.key_file);
  c.client_ca_file = resolve_path(base_dir, c.client_ca_file);
}

}  // namespace

bool is_bcrypt_hash(std::string_view h) {
  if (h.size() != 60 || h[0] != '$' || h[1] != '2' || h[3] != '$' || h[6] != '$') return false;
  if (h[2] != 'a' && h[2] != 'b' && h[2] != 'y') return false;
  if (h[4] < '0' || h[4] > '9' || h[5] < '0' || h[5] > '9') return false;
  const int cost = (h[4] - '0') * 10 + (h[5] - '0');
  if (cost < 4 || cost > 31) return false;
  for (std::size_t i = 7; i < h.size(); ++i) {
    const char c = h[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '/';
    if (!ok) return false;
  }
  return true;
}

std::string_view to_string(ClientAuthType type) {
  return name_of(type, client_auth_names());
}

WebSecurityConfig parse_web_config_text(std::string_view yaml, const std::string& source_name,
                                        const std::string& base_dir) {
  const schema::Document doc(yaml, source_name);
  WebSecurityConfig c;
  std::string client_auth;
  doc.read(keys(c, client_auth));
  check_tls(doc, client_auth, base_dir, c.tls);
  if (c.rate_limit_interval.count() > 0 && c.rate_limit_burst < 1) {
    // A token bucket of size 0 would refuse every request.
    doc.fail("rate_limit.burst", "must be at least 1 when rate_limit.interval is set");
  }
  return c;
}

WebSecurityConfig load_web_config_file(const std::string& path) {
  const std::string text = schema::read_file(path, "web config file");
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  return parse_web_config_text(text, path, dir);
}

}  // namespace mx
