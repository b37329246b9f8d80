// The TLS set-up: unusable material is refused with a clear reason, the peer's certificate must
// name the host (or the configured server name), and verification is skipped only when asked.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>

#include "net/http_client.h"
#include "net/tls.h"
#include "support/test_http_server.h"

namespace mx::net {
namespace {

using mx::testing::run_until;
using ::testing::HasSubstr;

std::string tls_error(const TlsOptions& options) {
  try {
    make_tls_client_context(options);
  } catch (const TlsError& e) {
    return e.what();
  }
  return "";
}

TEST(TlsContext, RefusesUnusableMaterialNamingThePart) {
  const auto cert = mx::testing::make_test_certificate();
  TlsOptions options;
  EXPECT_EQ(tls_error(options), "");  // the system CA store
  options.ca_pem = "not a certificate";
  EXPECT_THAT(tls_error(options), HasSubstr("certificate authority data"));
  options.ca_pem.clear();
  options.ca_file = "/nonexistent/ca.crt";
  EXPECT_THAT(tls_error(options), HasSubstr("/nonexistent/ca.crt"));
  options.ca_file.clear();
  options.ca_pem = cert.cert_pem;
  options.client_cert_pem = cert.cert_pem;
  options.client_key_pem = cert.key_pem;
  EXPECT_EQ(tls_error(options), "");
  options.client_key_pem =
      "-----BEGIN PRIVATE KEY-----\nsecret-material\n-----END PRIVATE KEY-----\n";
  const std::string why = tls_error(options);
  EXPECT_THAT(why, HasSubstr("client key"));
  EXPECT_THAT(why, ::testing::Not(HasSubstr("secret-material")));
  options.client_cert_pem = "garbage";
  EXPECT_THAT(tls_error(options), HasSubstr("client certificate"));
}

// An HTTPS server whose certificate names only IP 127.0.0.1.
class TlsClientTest : public ::testing::Test {
 protected:
  TlsClientTest()
      : cert_(mx::testing::make_test_certificate()),
        server_(
            io_,
            [](const std::string&) {
              return mx::testing::ServedResponse{200, "text/plain", "up 1\n"};
            },
            mx::testing::make_server_tls(cert_)) {}

  FetchResult fetch(const TlsOptions& tls, const std::string& url) {
    auto client = HttpClient::create(io_.get_executor(), {tls, nullptr});
    std::optional<FetchResult> result;
    FetchRequest request;
    request.url = url;
    client->fetch(request, [&](FetchResult r) { result = std::move(r); });
    EXPECT_TRUE(run_until(io_, [&] { return result.has_value(); }));
    return result.value_or(FetchResult{});
  }
  std::string localhost_url() const {
    return "https://localhost:" + std::to_string(server_.port()) + "/";
  }

  boost::asio::io_context io_;
  mx::testing::TestCertificate cert_;
  mx::testing::TestHttpServer server_;
};

TEST_F(TlsClientTest, TrustsTheConfiguredCa) {
  TlsOptions tls;
  tls.ca_pem = cert_.cert_pem;
  const auto r = fetch(tls, server_.url("/"));
  EXPECT_TRUE(r.ok()) << r.error.message;
  EXPECT_EQ(r.body, "up 1\n");
}

TEST_F(TlsClientTest, UnknownCaIsRefused) {
  const auto r = fetch(TlsOptions{}, server_.url("/"));
  EXPECT_EQ(r.error.kind, ErrorKind::connection);
  EXPECT_THAT(r.error.message, HasSubstr("TLS handshake"));
}

TEST_F(TlsClientTest, TheCertificateMustNameTheHost) {
  TlsOptions tls;
  tls.ca_pem = cert_.cert_pem;
  auto r = fetch(tls, localhost_url());
  EXPECT_EQ(r.error.kind, ErrorKind::connection) << "localhost is not in the certificate";
  // tls-server-name: check the name the certificate does carry.
  tls.server_name = "127.0.0.1";
  r = fetch(tls, localhost_url());
  EXPECT_TRUE(r.ok()) << r.error.message;
}

TEST_F(TlsClientTest, InsecureSkipVerifyOnlyWhenConfigured) {
  TlsOptions tls;
  tls.insecure_skip_verify = true;
  auto r = fetch(tls, localhost_url());
  EXPECT_TRUE(r.ok()) << r.error.message;
  tls.insecure_skip_verify = false;
  r = fetch(tls, localhost_url());
  EXPECT_EQ(r.error.kind, ErrorKind::connection);
}

}  // namespace
}  // namespace mx::net
