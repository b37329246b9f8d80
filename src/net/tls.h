// The one client-side TLS set-up: trust (CA data, CA file or the system store), an optional
// client certificate, TLS 1.2 at least, SNI and the peer name check. Verification is skipped
// only when the configuration says so (kubeconfig insecure-skip-tls-verify).
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <stdexcept>
#include <string>

#include <boost/asio/ssl/context.hpp>

namespace mx::net {

struct TlsOptions {
  std::string ca_pem;           // trusted CA certificates (PEM); first choice
  std::string ca_file;          // else a CA file; both empty: the system CA store
  std::string client_cert_pem;  // with client_key_pem: presented to the server
  std::string client_key_pem;
  std::string server_name;  // checked (and sent as SNI) instead of the URL's host when set
  bool insecure_skip_verify = false;
};

// Unusable TLS material. The text names the part (CA data, CA file, client certificate, key) and
// never holds the material itself.
struct TlsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A client context for `options` (server_name aside, which applies per connection). Throws
// TlsError.
std::shared_ptr<boost::asio::ssl::context> make_tls_client_context(const TlsOptions& options);

// Prepares one connection before its handshake: SNI (names only, never addresses: RFC 6066),
// and, unless `verify` is false, the host name or IP address the peer certificate must carry
// (no partial wildcards). Returns false when OpenSSL refuses the name.
bool prepare_tls_connection(SSL* ssl, const std::string& name, bool verify);

}  // namespace mx::net
