#include "net/tls.h"

#include <openssl/x509v3.h>

#include <boost/asio/ip/address.hpp>

namespace mx::net {

namespace asio = boost::asio;

std::shared_ptr<asio::ssl::context> make_tls_client_context(const TlsOptions& options) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  boost::system::error_code ec;
  if (options.insecure_skip_verify) {
    ctx->set_verify_mode(asio::ssl::verify_none);
  } else {
    ctx->set_verify_mode(asio::ssl::verify_peer);
    if (!options.ca_pem.empty()) {
      ctx->add_certificate_authority(asio::buffer(options.ca_pem), ec);
      if (ec) {
        throw TlsError("the certificate authority data is not a PEM certificate (" + ec.message() +
                       ")");
      }
    } else if (!options.ca_file.empty()) {
      ctx->load_verify_file(options.ca_file, ec);
      if (ec) {
        throw TlsError("cannot load the certificate authority file " + options.ca_file + " (" +
                       ec.message() + ")");
      }
    } else {
      ctx->set_default_verify_paths(ec);
      if (ec) {
        throw TlsError("cannot load the system certificate authorities (" + ec.message() + ")");
      }
    }
  }
  if (!options.client_cert_pem.empty()) {
    ctx->use_certificate_chain(asio::buffer(options.client_cert_pem), ec);
    if (ec) throw TlsError("the client certificate is not usable (" + ec.message() + ")");
    ctx->use_private_key(asio::buffer(options.client_key_pem), asio::ssl::context::pem, ec);
    if (ec) throw TlsError("the client key is not usable (" + ec.message() + ")");
  }
  return ctx;
}

bool prepare_tls_connection(SSL* ssl, const std::string& name, bool verify) {
  boost::system::error_code ec;
  asio::ip::make_address(name, ec);
  const bool is_address = !ec;
  if (!is_address && SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) return false;
  if (!verify) {
    SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
    return true;
  }
  SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (is_address) {
    // Certificates for IP addresses carry them as iPAddress SANs.
    return X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) == 1;
  }
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0) == 1;
}

}  // namespace mx::net
