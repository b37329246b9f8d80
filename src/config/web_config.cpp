#include "config/web_config.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <sstream>

namespace mx {
namespace {

constexpr std::size_t kMaxDocumentBytes = 1 << 20;
constexpr int kMaxNesting = 64;  // far beyond the format's depth of 3; bounds the YAML recursion

// The cipher suites crypto/tls offers (tls.CipherSuites()), by their IANA names, which is how
// exporter-toolkit spells them. The TLS 1.3 ones are accepted and fixed, as in Go.
const std::initializer_list<std::string_view> kCipherSuites = {
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
const std::initializer_list<std::string_view> kCurves = {"CurveP256", "CurveP384", "CurveP521",
                                                         "X25519"};
const std::initializer_list<std::string_view> kVersions = {"TLS10", "TLS11", "TLS12", "TLS13"};

// The headers exporter-toolkit lets a web config set, with the values it allows (empty: any).
struct HeaderRule {
  std::string_view name;
  std::initializer_list<std::string_view> values;
};
const HeaderRule kHeaders[] = {
    {"Strict-Transport-Security", {}},
    {"X-Content-Type-Options", {"nosniff"}},
    {"X-Frame-Options", {"deny", "sameorigin"}},
    {"X-XSS-Protection", {}},
    {"Content-Security-Policy", {}},
};

bool one_of(std::string_view v, std::initializer_list<std::string_view> list) {
  for (auto x : list) {
    if (x == v) return true;
  }
  return false;
}

std::string list_of(std::initializer_list<std::string_view> list) {
  std::string out;
  for (auto x : list) out += (out.empty() ? "" : ", ") + std::string(x);
  return out;
}

// Brackets and braces nest flow collections; yaml-cpp recurses on them. Deeper than any web
// config is rejected before parsing (block nesting is bounded by the line structure instead).
bool nesting_within_limit(std::string_view text) {
  int depth = 0;
  for (char c : text) {
    if (c == '[' || c == '{') {
      if (++depth > kMaxNesting) return false;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return true;
}

class WebReader {
 public:
  explicit WebReader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const YAML::Node& node, const std::string& key,
                         const std::string& what) const {
    std::ostringstream out;
    out << source_ << ": key \"" << key << "\"";
    if (node.IsDefined() && node.Mark().line >= 0) out << " (line " << node.Mark().line + 1 << ")";
    out << ": " << what;
    throw ConfigError{out.str()};
  }

  void expect_map(const YAML::Node& node, const std::string& path,
                  std::initializer_list<std::string_view> allowed) const {
    if (node.IsNull()) return;
    if (!node.IsMap()) fail(node, path.empty() ? "<top level>" : path, "expected a mapping");
    for (const auto& entry : node) {
      if (!entry.first.IsScalar()) fail(entry.first, path, "keys must be strings");
      const auto& key = entry.first.Scalar();
      if (!one_of(key, allowed)) {
        fail(entry.first, join(path, key),
             "unknown key (known keys here: " + list_of(allowed) + ")");
      }
    }
  }

  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

  // The value under `key`, or an undefined/null node when absent.
  static bool child(const YAML::Node& parent, const char* key, YAML::Node& out) {
    if (!parent.IsMap()) return false;
    const YAML::Node value = parent[key];
    if (!value.IsDefined() || value.IsNull()) return false;
    out.reset(value);
    return true;
  }

  void scalar(const YAML::Node& parent, const std::string& path, const char* key,
              std::string& out) const {
    YAML::Node n;
    if (!child(parent, key, n)) return;
    if (!n.IsScalar()) fail(n, join(path, key), "expected a string");
    out = n.Scalar();
  }

  void boolean(const YAML::Node& parent, const std::string& path, const char* key,
               bool& out) const {
    YAML::Node n;
    if (!child(parent, key, n)) return;
    const std::string v = n.IsScalar() ? n.Scalar() : "";
    if (v == "true") {
      out = true;
    } else if (v == "false") {
      out = false;
    } else {
      fail(n, join(path, key), "expected true or false");
    }
  }

  void string_list(const YAML::Node& parent, const std::string& path, const char* key,
                   std::vector<std::string>& out,
                   std::initializer_list<std::string_view> allowed = {}) const {
    YAML::Node n;
    if (!child(parent, key, n)) return;
    if (!n.IsSequence()) fail(n, join(path, key), "expected a list of strings");
    out.clear();
    for (const auto& item : n) {
      if (!item.IsScalar() || item.Scalar().empty()) {
        fail(item, join(path, key), "expected a non-empty string in the list");
      }
      if (allowed.size() > 0 && !one_of(item.Scalar(), allowed)) {
        fail(item, join(path, key),
             "unknown value \"" + item.Scalar() + "\" (known: " + list_of(allowed) + ")");
      }
      out.push_back(item.Scalar());
    }
  }

 private:
  std::string source_;
};

std::string resolve_path(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return base_dir + "/" + path;
}

void read_tls(const WebReader& r, const YAML::Node& n, const std::string& base_dir,
              TlsServerConfig& c) {
  const std::string p = "tls_server_config";
  r.expect_map(n, p,
               {"cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type",
                "client_ca_file", "client_allowed_sans", "min_version", "max_version",
                "cipher_suites", "prefer_server_cipher_suites", "curve_preferences"});
  std::string client_auth;
  r.scalar(n, p, "cert", c.cert);
  r.scalar(n, p, "key", c.key);
  r.scalar(n, p, "client_ca", c.client_ca);
  r.scalar(n, p, "cert_file", c.cert_file);
  r.scalar(n, p, "key_file", c.key_file);
  r.scalar(n, p, "client_auth_type", client_auth);
  r.scalar(n, p, "client_ca_file", c.client_ca_file);
  r.string_list(n, p, "client_allowed_sans", c.client_allowed_sans);
  r.scalar(n, p, "min_version", c.min_version);
  r.scalar(n, p, "max_version", c.max_version);
  r.string_list(n, p, "cipher_suites", c.cipher_suites, kCipherSuites);
  r.boolean(n, p, "prefer_server_cipher_suites", c.prefer_server_cipher_suites);
  r.string_list(n, p, "curve_preferences", c.curve_preferences, kCurves);

  c.enabled = !c.cert.empty() || !c.key.empty() || !c.cert_file.empty() || !c.key_file.empty() ||
              !c.client_ca.empty() || !c.client_ca_file.empty() || !client_auth.empty();
  if (!c.enabled) return;
  if (c.cert.empty() == c.cert_file.empty()) {
    r.fail(n, p + ".cert_file", "set exactly one of cert_file and cert");
  }
  if (c.key.empty() == c.key_file.empty()) {
    r.fail(n, p + ".key_file", "set exactly one of key_file and key");
  }
  if (!c.client_ca.empty() && !c.client_ca_file.empty()) {
    r.fail(n["client_ca"], p + ".client_ca", "set at most one of client_ca_file and client_ca");
  }
  static const std::pair<std::string_view, ClientAuthType> kAuth[] = {
      {"", ClientAuthType::no_client_cert},
      {"NoClientCert", ClientAuthType::no_client_cert},
      {"RequestClientCert", ClientAuthType::request_client_cert},
      {"RequireAnyClientCert", ClientAuthType::require_any_client_cert},
      {"RequireClientCert", ClientAuthType::require_any_client_cert},  // exporter-toolkit alias
      {"VerifyClientCertIfGiven", ClientAuthType::verify_client_cert_if_given},
      {"RequireAndVerifyClientCert", ClientAuthType::require_and_verify_client_cert}};
  bool known = false;
  for (const auto& [name, type] : kAuth) {
    if (name == client_auth) {
      c.client_auth = type;
      known = true;
    }
  }
  if (!known) {
    r.fail(n["client_auth_type"], p + ".client_auth_type",
           "unknown value \"" + client_auth +
               "\" (known: NoClientCert, RequestClientCert, RequireAnyClientCert, "
               "VerifyClientCertIfGiven, RequireAndVerifyClientCert)");
  }
  const bool has_ca = !c.client_ca.empty() || !c.client_ca_file.empty();
  if (has_ca && c.client_auth == ClientAuthType::no_client_cert) {
    r.fail(n["client_auth_type"].IsDefined() ? n["client_auth_type"] : n, p + ".client_auth_type",
           "a client CA is configured without a client auth policy");
  }
  if (!has_ca && (c.client_auth == ClientAuthType::verify_client_cert_if_given ||
                  c.client_auth == ClientAuthType::require_and_verify_client_cert)) {
    r.fail(n["client_auth_type"], p + ".client_ca_file",
           "verifying client certificates needs client_ca_file or client_ca");
  }
  for (const char* key : {"min_version", "max_version"}) {
    const std::string& v = std::string_view(key) == "min_version" ? c.min_version : c.max_version;
    if (!one_of(v, kVersions)) {
      r.fail(n[key], p + "." + key, "unknown TLS version \"" + v + "\" (known: TLS10..TLS13)");
    }
  }
  if (c.min_version > c.max_version) {
    r.fail(n["min_version"], p + ".min_version", "must not be above max_version");
  }
  c.cert_file = resolve_path(base_dir, c.cert_file);
  c.key_file = resolve_path(base_dir, c.key_file);
  c.client_ca_file = resolve_path(base_dir, c.client_ca_file);
}

void read_http(const WebReader& r, const YAML::Node& n, WebSecurityConfig& c) {
  const std::string p = "http_server_config";
  r.expect_map(n, p, {"http2", "headers"});
  r.boolean(n, p, "http2", c.http2);
  YAML::Node headers;
  if (!WebReader::child(n, "headers", headers)) return;
  if (!headers.IsMap()) r.fail(headers, p + ".headers", "expected a mapping of header to value");
  for (const auto& entry : headers) {
    const std::string name = entry.first.IsScalar() ? entry.first.Scalar() : "";
    const std::string key = p + ".headers." + name;
    const HeaderRule* rule = nullptr;
    for (const auto& h : kHeaders) {
      if (h.name == name) rule = &h;
    }
    if (!rule) {
      std::string known;
      for (const auto& h : kHeaders) known += (known.empty() ? "" : ", ") + std::string(h.name);
      r.fail(entry.first, key, "this header cannot be configured (known: " + known + ")");
    }
    if (entry.second.IsNull()) continue;  // "unset if blank"
    if (!entry.second.IsScalar()) r.fail(entry.second, key, "expected a string");
    const std::string value = entry.second.Scalar();
    if (value.empty()) continue;
    for (char ch : value) {
      if (ch == '\r' || ch == '\n' || ch == '\0') r.fail(entry.second, key, "control character");
    }
    if (rule->values.size() > 0 && !one_of(value, rule->values)) {
      r.fail(entry.second, key,
             "invalid value \"" + value + "\" (expected one of: " + list_of(rule->values) + ")");
    }
    c.headers.emplace_back(name, value);
  }
}

void read_users(const WebReader& r, const YAML::Node& n, WebSecurityConfig& c) {
  if (!n.IsMap()) r.fail(n, "basic_auth_users", "expected a mapping of user name to bcrypt hash");
  for (const auto& entry : n) {
    if (!entry.first.IsScalar()) r.fail(entry.first, "basic_auth_users", "keys must be strings");
    const std::string user = entry.first.Scalar();
    // The key names the user, never the hash: these messages reach the log.
    const std::string key = "basic_auth_users." + user;
    if (user.empty() || user.find(':') != std::string::npos) {
      r.fail(entry.first, key, "a user name must be non-empty and contain no ':'");
    }
    if (!entry.second.IsScalar() || !is_bcrypt_hash(entry.second.Scalar())) {
      r.fail(entry.second, key,
             "not a bcrypt hash (expected $2y$, $2b$ or $2a$, e.g. from `htpasswd -nBC 10 \"\"`)");
    }
    c.basic_auth_users[user] = entry.second.Scalar();
  }
}

void read_rate_limit(const WebReader& r, const YAML::Node& n, WebSecurityConfig& c) {
  r.expect_map(n, "rate_limit", {"interval", "burst"});
  YAML::Node v;
  if (WebReader::child(n, "interval", v)) {
    const std::string text = v.IsScalar() ? v.Scalar() : "";
    auto d = text == "0" ? std::optional<Duration>(Duration(0)) : parse_duration(text);
    if (!d) r.fail(v, "rate_limit.interval", "malformed duration (expected e.g. 100ms, 1s, 0s)");
    c.rate_limit_interval = *d;
  }
  if (WebReader::child(n, "burst", v)) {
    const std::string text = v.IsScalar() ? v.Scalar() : "";
    char* end = nullptr;
    errno = 0;
    const long b = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno == ERANGE || b < 0 || b > 1000000) {
      r.fail(v, "rate_limit.burst", "expected an integer in [0, 1000000]");
    }
    c.rate_limit_burst = static_cast<int>(b);
  }
  if (c.rate_limit_interval.count() > 0 && c.rate_limit_burst < 1) {
    // A token bucket of size 0 would refuse every request.
    r.fail(n, "rate_limit.burst", "must be at least 1 when rate_limit.interval is set");
  }
}

WebSecurityConfig parse_document(std::string_view yaml, const std::string& source_name,
                                 const std::string& base_dir) {
  if (yaml.size() > kMaxDocumentBytes) throw ConfigError{source_name + ": file too large"};
  if (!nesting_within_limit(yaml)) throw ConfigError{source_name + ": nesting too deep"};
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    throw ConfigError{source_name + ": invalid YAML at line " + std::to_string(e.mark.line + 1) +
                      ": " + e.msg};
  }
  WebSecurityConfig c;
  WebReader r(source_name);
  if (!root.IsDefined() || root.IsNull()) return c;
  r.expect_map(root, "",
               {"tls_server_config", "http_server_config", "basic_auth_users", "rate_limit",
                "auth_excluded_paths"});
  YAML::Node n;
  if (WebReader::child(root, "tls_server_config", n)) read_tls(r, n, base_dir, c.tls);
  if (WebReader::child(root, "http_server_config", n)) read_http(r, n, c);
  if (WebReader::child(root, "basic_auth_users", n)) read_users(r, n, c);
  if (WebReader::child(root, "rate_limit", n)) read_rate_limit(r, n, c);
  r.string_list(root, "", "auth_excluded_paths", c.auth_excluded_paths);
  for (const auto& path : c.auth_excluded_paths) {
    if (path[0] != '/')
      r.fail(root["auth_excluded_paths"], "auth_excluded_paths", "paths start with '/'");
  }
  return c;
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
  switch (type) {
    case ClientAuthType::no_client_cert:
      return "NoClientCert";
    case ClientAuthType::request_client_cert:
      return "RequestClientCert";
    case ClientAuthType::require_any_client_cert:
      return "RequireAnyClientCert";
    case ClientAuthType::verify_client_cert_if_given:
      return "VerifyClientCertIfGiven";
    case ClientAuthType::require_and_verify_client_cert:
      return "RequireAndVerifyClientCert";
  }
  return "NoClientCert";
}

WebSecurityConfig parse_web_config_text(std::string_view yaml, const std::string& source_name,
                                        const std::string& base_dir) {
  try {
    return parse_document(yaml, source_name, base_dir);
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    // yaml-cpp reports some malformed documents through other exception types.
    throw ConfigError{source_name + ": invalid document: " + e.what()};
  }
}

WebSecurityConfig load_web_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError{"cannot read web config file " + path};
  std::ostringstream text;
  text << in.rdbuf();
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  return parse_web_config_text(text.str(), path, dir);
}

}  // namespace mx
