#include "http/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <sstream>

namespace mx {
namespace {

namespace ssl = boost::asio::ssl;

std::string openssl_error() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

// A tls_server_config item given inline (`cert`) or as a file (`cert_file`).
struct Pem {
  std::string key;  // the one given, for messages: "tls_server_config.cert_file"
  std::string text;

  std::unique_ptr<BIO, BioDeleter> bio() const {
    return std::unique_ptr<BIO, BioDeleter>(
        BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  }
};

Pem read_pem(const std::string& file, const std::string& inline_pem, const std::string& name) {
  if (file.empty()) return {"tls_server_config." + name, inline_pem};
  Pem pem{"tls_server_config." + name + "_file", {}};
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ConfigError{pem.key + ": cannot read " + file};
  std::ostringstream s;
  s << in.rdbuf();
  pem.text = s.str();
  return pem;
}

// The first PEM block is the leaf, the rest are intermediates.
void use_certificate_chain(SSL_CTX* h, const Pem& cert) {
  auto bio = cert.bio();
  std::unique_ptr<X509, X509Deleter> leaf(
      PEM_read_bio_X509_AUX(bio.get(), nullptr, nullptr, nullptr));
  if (!leaf || SSL_CTX_use_certificate(h, leaf.get()) != 1) {
    throw ConfigError{cert.key + ": not a PEM certificate: " + openssl_error()};
  }
  SSL_CTX_clear_chain_certs(h);
  while (X509* extra = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    SSL_CTX_add0_chain_cert(h, extra);  // takes ownership
  }
  ERR_clear_error();  // the loop ends on "no start line"
}

// The messages never quote the key material.
void use_private_key(SSL_CTX* h, const Pem& key, const Pem& cert) {
  std::unique_ptr<EVP_PKEY, KeyDeleter> pkey(
      PEM_read_bio_PrivateKey(key.bio().get(), nullptr, nullptr, nullptr));
  if (!pkey || SSL_CTX_use_PrivateKey(h, pkey.get()) != 1) {
    throw ConfigError{key.key + ": not a usable PEM private key"};
  }
  if (SSL_CTX_check_private_key(h) != 1) {
    throw ConfigError{key.key + ": does not match the certificate in " + cert.key};
  }
}

int version_number(const std::string& name) {
  if (name == "TLS10") return TLS1_VERSION;
  if (name == "TLS11") return TLS1_1_VERSION;
  if (name == "TLS12") return TLS1_2_VERSION;
  return TLS1_3_VERSION;
}

const char* group_name(const std::string& curve) {
  if (curve == "CurveP256") return "P-256";
  if (curve == "CurveP384") return "P-384";
  if (curve == "CurveP521") return "P-521";
  return "X25519";
}

// Offers HTTP/1.1 to a client that negotiates ALPN (Prometheus offers h2 and http/1.1).
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kHttp11, sizeof kHttp11, in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

int accept_any_certificate(int, X509_STORE_CTX*) {
  return 1;
}

}  // namespace

std::shared_ptr<ssl::context> make_tls_context(const TlsServerConfig& c) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* h = ctx->native_handle();
  ERR_clear_error();
  SSL_CTX_set_min_proto_version(h, version_number(c.min_version));
  SSL_CTX_set_max_proto_version(h, version_number(c.max_version));
  SSL_CTX_set_options(h, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (c.prefer_server_cipher_suites) SSL_CTX_set_options(h, SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Idle keep-alive connections give their read/write buffers back (bounded memory).
  SSL_CTX_set_mode(h, SSL_MODE_RELEASE_BUFFERS);
  static const unsigned char kContext[] = "modal-exporter";
  SSL_CTX_set_session_id_context(h, kContext, sizeof kContext - 1);
  SSL_CTX_set_alpn_select_cb(h, select_alpn, nullptr);

  const Pem cert = read_pem(c.cert_file, c.cert, "cert");
  use_certificate_chain(h, cert);
  use_private_key(h, read_pem(c.key_file, c.key, "key"), cert);

  if (!c.cipher_suites.empty()) {
    std::string list;
    for (const auto& name : c.cipher_suites) {
      if (name.rfind("TLS_AES_", 0) == 0 || name.rfind("TLS_CHACHA20_", 0) == 0) continue;
      const char* openssl_name = OPENSSL_cipher_name(name.c_str());
      if (!openssl_name || std::string_view(openssl_name) == "(NONE)") {
        throw ConfigError{"tls_server_config.cipher_suites: \"" + name +
                          "\" is not available in this OpenSSL"};
      }
      list += (list.empty() ? "" : ":") + std::string(openssl_name);
    }
    if (!list.empty() && SSL_CTX_set_cipher_list(h, list.c_str()) != 1) {
      throw ConfigError{"tls_server_config.cipher_suites: " + openssl_error()};
    }
  }
  if (!c.curve_preferences.empty()) {
    std::string list;
    for (const auto& curve : c.curve_preferences) {
      list += (list.empty() ? "" : ":") + std::string(group_name(curve));
    }
    if (SSL_CTX_set1_groups_list(h, list.c_str()) != 1) {
      throw ConfigError{"tls_server_config.curve_preferences: " + openssl_error()};
    }
  }

  const bool has_ca = !c.client_ca.empty() || !c.client_ca_file.empty();
  if (has_ca) {
    const Pem pem = read_pem(c.client_ca_file, c.client_ca, "client_ca");
    auto bio = pem.bio();
    X509_STORE* store = SSL_CTX_get_cert_store(h);
    STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
    int added = 0;
    while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      if (X509_STORE_add_cert(store, ca) == 1) ++added;
      if (X509_NAME* n = X509_NAME_dup(X509_get_subject_name(ca))) sk_X509_NAME_push(names, n);
      X509_free(ca);
    }
    ERR_clear_error();
    if (added == 0) {
      sk_X509_NAME_pop_free(names, X509_NAME_free);
      throw ConfigError{pem.key + ": no PEM certificate found"};
    }
    SSL_CTX_set_client_CA_list(h, names);  // takes ownership
  }
  switch (c.client_auth) {
    case ClientAuthType::no_client_cert:
      SSL_CTX_set_verify(h, SSL_VERIFY_NONE, nullptr);
      break;
    case ClientAuthType::request_client_cert:
      SSL_CTX_set_verify(h, SSL_VERIFY_PEER, accept_any_certificate);
      break;
    case ClientAuthType::require_any_client_cert:
      SSL_CTX_set_verify(h, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                         accept_any_certificate);
      break;
    case ClientAuthType::verify_client_cert_if_given:
      SSL_CTX_set_verify(h, SSL_VERIFY_PEER, nullptr);
      break;
    case ClientAuthType::require_and_verify_client_cert:
      SSL_CTX_set_verify(h, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
      break;
  }
  return ctx;
}

bool peer_has_allowed_san(SSL* ssl, const std::vector<std::string>& allowed) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (!cert) return false;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (!names) return false;
  bool found = false;
  for (int i = 0; i < sk_GENERAL_NAME_num(names) && !found; ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    std::string value;
    if (name->type == GEN_DNS || name->type == GEN_EMAIL || name->type == GEN_URI) {
      const ASN1_IA5STRING* s = name->d.ia5;
      value.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                   static_cast<std::size_t>(ASN1_STRING_length(s)));
    } else if (name->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = name->d.iPAddress;
      char text[INET6_ADDRSTRLEN] = {};
      const int len = ASN1_STRING_length(ip);
      const int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
      if (family && inet_ntop(family, ASN1_STRING_get0_data(ip), text, sizeof text)) value = text;
    }
    for (const auto& a : allowed) found = found || (!value.empty() && a == value);
  }
  GENERAL_NAMES_free(names);
  return found;
}

}  // namespace mx
