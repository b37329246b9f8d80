// The web configuration file (--web.config.file): the format every Prometheus exporter built on
// exporter-toolkit reads, so one file works for node_exporter and for this exporter alike.
// tls_server_config, http_server_config, basic_auth_users and rate_limit; see README.md
// ("Securing /metrics") and docs/design.md. Parsing only: the HTTP server applies it.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/duration.h"
#include "config/config.h"

namespace mx {

// crypto/tls's ClientAuthType names, in exporter-toolkit's spelling.
enum class ClientAuthType {
  no_client_cert,                 // NoClientCert (default)
  request_client_cert,            // RequestClientCert: asked for, not required, not verified
  require_any_client_cert,        // RequireAnyClientCert: required, not verified
  verify_client_cert_if_given,    // VerifyClientCertIfGiven
  require_and_verify_client_cert  // RequireAndVerifyClientCert
};

struct TlsServerConfig {
  bool enabled = false;  // any TLS key set (as exporter-toolkit decides it)
  // Inline PEM or a file; relative file names are relative to the web config file's directory.
  std::string cert, key, client_ca;
  std::string cert_file, key_file, client_ca_file;
  ClientAuthType client_auth = ClientAuthType::no_client_cert;
  std::vector<std::string> client_allowed_sans;  // empty: any SAN
  std::string min_version = "TLS12";             // TLS10..TLS13
  std::string max_version = "TLS13";
  std::vector<std::string> cipher_suites;      // Go/IANA names, TLS 1.2 and below
  std::vector<std::string> curve_preferences;  // CurveP256, CurveP384, CurveP521, X25519
  bool prefer_server_cipher_suites = true;
};

struct WebSecurityConfig {
  TlsServerConfig tls;
  bool http2 = true;  // accepted for compatibility; the server speaks HTTP/1.1
  std::vector<std::pair<std::string, std::string>> headers;  // added to every response
  std::map<std::string, std::string> basic_auth_users;       // user -> bcrypt hash
  Duration rate_limit_interval{0};                           // 0: no rate limit
  int rate_limit_burst = 0;
  // This exporter's one extension: paths served without basic auth (e.g. /healthz, /readyz for
  // kubelet probes). Default: none, everything is protected, as with exporter-toolkit.
  std::vector<std::string> auth_excluded_paths;

  bool auth_enabled() const { return !basic_auth_users.empty(); }
};

// Parses a web config document. Throws ConfigError naming the key (and line) for an unknown key
// or a bad value, and for malformed YAML; never anything else, whatever the input (it is also
// the fuzzing entry point). `base_dir` resolves relative file names; `source_name` prefixes the
// messages.
WebSecurityConfig parse_web_config_text(std::string_view yaml,
                                        const std::string& source_name = "web config",
                                        const std::string& base_dir = "");

// Reads and parses the file. Throws ConfigError.
WebSecurityConfig load_web_config_file(const std::string& path);

// "$2a$", "$2b$" or "$2y$", a two-digit cost 04..31 and 53 characters of salt and hash.
bool is_bcrypt_hash(std::string_view hash);

std::string_view to_string(ClientAuthType type);

}  // namespace mx
