#include "test_ca.h"

#include <memory>
#include <stdexcept>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace mx::testing::kube {
namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
};
template <typename T>
using Ptr = std::unique_ptr<T, Free>;

[[noreturn]] void fail(const char* step) {
  unsigned long code = ERR_get_error();
  char reason[256] = "unknown error";
  if (code != 0) ERR_error_string_n(code, reason, sizeof reason);
  ERR_clear_error();
  throw std::runtime_error(std::string("test CA: ") + step + ": " + reason);
}

void check(int ok, const char* step) {
  if (ok != 1) fail(step);
}

Ptr<EVP_PKEY> make_key() {
  Ptr<EVP_PKEY> key(EVP_EC_gen("P-256"));
  if (!key) fail("generating EC key");
  return key;
}

void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  Ptr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext) fail("building certificate extension");
  check(X509_add_ext(cert, ext.get(), -1), "adding certificate extension");
}

Ptr<X509> make_cert(EVP_PKEY* key, const char* common_name, X509* issuer, EVP_PKEY* issuer_key,
                    bool client = false) {
  Ptr<X509> cert(X509_new());
  if (!cert) fail("allocating certificate");
  check(X509_set_version(cert.get(), 2), "setting version");
  // Random 64-bit serial: a client caching certificates by issuer+serial never confuses two
  // fake servers of one test run.
  Ptr<BIGNUM> serial(BN_new());
  if (!serial) fail("allocating serial");
  check(BN_rand(serial.get(), 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY), "making serial");
  if (BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    fail("setting serial");
  }
  // Valid from an hour ago so small clock differences between threads/tools never matter.
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr) fail("notBefore");
  if (X509_gmtime_adj(X509_getm_notAfter(cert.get()), 365L * 24 * 3600) == nullptr) {
    fail("notAfter");
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  check(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("modal-exporter tests"),
                                   -1, -1, 0),
        "setting subject O");
  check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(common_name), -1, -1, 0),
        "setting subject CN");
  X509* signer = issuer != nullptr ? issuer : cert.get();
  check(X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)), "setting issuer");
  check(X509_set_pubkey(cert.get(), key), "setting public key");

  if (issuer == nullptr) {
    add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    add_extension(cert.get(), signer, NID_subject_key_identifier, "hash");
  } else {
    add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), signer, NID_key_usage, "critical,digitalSignature,keyEncipherment");
    add_extension(cert.get(), signer, NID_ext_key_usage, client ? "clientAuth" : "serverAuth");
    if (!client) {
      add_extension(cert.get(), signer, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
    }
    add_extension(cert.get(), signer, NID_subject_key_identifier, "hash");
    add_extension(cert.get(), signer, NID_authority_key_identifier, "keyid:always");
  }
  if (X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) <= 0) {
    fail("signing certificate");
  }
  return cert;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::string cert_pem(X509* cert) {
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio) fail("allocating BIO");
  check(PEM_write_bio_X509(bio.get(), cert), "writing certificate PEM");
  return bio_text(bio.get());
}

std::string key_pem(EVP_PKEY* key) {
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio) fail("allocating BIO");
  check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr),
        "writing key PEM");
  return bio_text(bio.get());
}

}  // namespace

TlsMaterial make_test_tls() {
  Ptr<EVP_PKEY> ca_key = make_key();
  Ptr<X509> ca = make_cert(ca_key.get(), "modal-exporter fake kube CA", nullptr, nullptr);
  Ptr<EVP_PKEY> server_key = make_key();
  Ptr<X509> server = make_cert(server_key.get(), "localhost", ca.get(), ca_key.get());
  Ptr<EVP_PKEY> client_key = make_key();
  Ptr<X509> client =
      make_cert(client_key.get(), "exec-plugin-user", ca.get(), ca_key.get(), /*client=*/true);
  return TlsMaterial{cert_pem(ca.get()), cert_pem(server.get()), key_pem(server_key.get()),
                     cert_pem(client.get()), key_pem(client_key.get())};
}

}  // namespace mx::testing::kube
