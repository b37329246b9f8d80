// A throwaway CA and a server certificate signed by it, made in memory at runtime so no key
// material is ever checked in.
#pragma once

#include <string>

namespace mx::testing::kube {

struct TlsMaterial {
  std::string ca_pem;           // CA certificate
  std::string server_cert_pem;  // leaf, SAN IP:127.0.0.1 and DNS:localhost, serverAuth
  std::string server_key_pem;   // PKCS#8 private key of the leaf
  std::string client_cert_pem;  // leaf, CN "exec-plugin-user", clientAuth
  std::string client_key_pem;
};

// EC P-256 keys, SHA-256 signatures, valid from one hour ago for a year. Throws
// std::runtime_error with OpenSSL's reason when a step fails.
TlsMaterial make_test_tls();

}  // namespace mx::testing::kube
