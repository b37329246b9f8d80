// TLS for the metrics server: an OpenSSL context built from the web config's tls_server_config
// (exporter-toolkit semantics mapped onto OpenSSL), and the client_allowed_sans check.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>
#include <vector>

#include "config/web_config.h"

namespace mx {

// Loads the certificate, key and client CAs (inline or from files) into a new server context.
// Throws ConfigError naming the key whose value cannot be used.
std::shared_ptr<boost::asio::ssl::context> make_tls_context(const TlsServerConfig& config);

// True when the peer's certificate has a DNS, e-mail, IP or URI subject alternative name equal
// to one of `allowed`. False without a peer certificate.
bool peer_has_allowed_san(SSL* ssl, const std::vector<std::string>& allowed);

}  // namespace mx
