// --web.config.file over real sockets: TLS, client certificates, basic auth, rate limit,
// headers, reload on SIGHUP and on file change, certificate rotation without a restart.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <fstream>
#include <future>
#include <thread>

#include "common/base64.h"
#include "config/web_config.h"
#include "exposition/snapshot_builder.h"
#include "http/basic_auth.h"
#include "http/routes.h"
#include "http/server.h"
#include "metrics/self_metrics.h"
#include "support/http_client.h"
#include "support/tls.h"

namespace mx {
namespace {

using testing::https_get;
using testing::TestPki;
using testing::TlsClientOptions;
using testing::TlsConnection;
using testing::wait_until;

std::string basic(const std::string& user, const std::string& password) {
  return "Basic " + base64::encode(user + ":" + password);
}

void write_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << text;
  }
  ::rename(tmp.c_str(), path.c_str());  // atomic, as a Secret volume update is
}

// One PKI for every test: two CAs, server certificates from the first, clients from both.
class Pki {
 public:
  static TestPki& get() {
    static TestPki* pki = [] {
      auto* p = new TestPki(::testing::TempDir() + "/web-pki-" + std::to_string(::getpid()));
      p->make_ca("ca1");
      p->make_ca("ca2");
      p->make_leaf("server", "ca1", "IP:127.0.0.1,DNS:localhost", "serverAuth");
      p->make_leaf("server2", "ca1", "IP:127.0.0.1,DNS:localhost", "serverAuth");
      p->make_leaf("client", "ca1", "DNS:scraper.example", "clientAuth");
      p->make_leaf("stranger", "ca1", "DNS:stranger.example", "clientAuth");
      p->make_leaf("other", "ca2", "DNS:scraper.example", "clientAuth");
      return p;
    }();
    return *pki;
  }
};

class WebSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/web-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    TestPki::sh("rm -rf '" + dir_ + "' && mkdir -p '" + dir_ + "'");
    TestPki::sh("cp '" + pki().path("server.crt") + "' '" + pki().path("server.key") + "' '" +
                dir_ + "/'");
  }
  static TestPki& pki() { return Pki::get(); }
  std::string config_path() const { return dir_ + "/web.yml"; }

  void start(const std::string& web_config_yaml) {
    write_file(config_path(), web_config_yaml);
    WebConfig web;
    web.listen_address = "127.0.0.1:0";
    web.config_file = config_path();
    auto c = set_.add_family({"modal_jobs_total", "Jobs.", MetricType::counter});
    set_.set(c, "", "modal_jobs_total{status=\"created\"} 3\n");
    snapshot_ = set_.publish(6);
    RouteContext routes;
    routes.snapshot = [this] { return snapshot_; };
    routes.self_metrics = [](ExpositionFormat) { return std::string(); };
    routes.ready = [](std::string&) { return true; };
    server_ = std::make_unique<HttpServer>(io_, web, make_exporter_handler(routes), registry_);
    server_->start();
    port_ = server_->local_endpoint().port();
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    if (thread_.joinable()) {
      boost::asio::post(io_, [this] { server_->stop(); });
      io_.stop();
      thread_.join();
    }
  }
  // Runs on the server's thread, like SIGHUP does.
  void reload() {
    std::promise<void> done;
    boost::asio::post(io_, [&] {
      server_->reload_web_config();
      done.set_value();
    });
    done.get_future().wait();
  }
  // The server's self metrics as the exporter renders its registry, on the server's thread: a
  // deadline closes the socket before its handler counts it, and the handler runs first.
  std::string server_metrics() {
    std::promise<std::string> out;
    boost::asio::post(io_, [&] {
      std::string m;
      append_prometheus_families(m, ExpositionFormat::text, registry_.Collect());
      out.set_value(std::move(m));
    });
    return out.get_future().get();
  }
  TlsClientOptions trusted() const {
    TlsClientOptions o;
    o.ca_file = pki().path("ca1.crt");
    return o;
  }
  TlsClientOptions with_client(const std::string& name) const {
    auto o = trusted();
    o.cert_file = pki().path(name + ".crt");
    o.key_file = pki().path(name + ".key");
    return o;
  }
  static bool handshake_fails(std::uint16_t port, const TlsClientOptions& o) {
    try {
      TlsConnection c(port, o);
      // TLS 1.3: a rejected client certificate shows on the first read, not in the handshake.
      return c.get("/metrics").status != 200;
    } catch (const std::exception&) {
      return true;
    }
  }

  std::string dir_;
  prometheus::Registry registry_;  // outlives the io_context
  boost::asio::io_context io_;
  FamilySet set_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

const char* kTls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

TEST_F(WebSecurityTest, PlainHttpToTlsListenerFailsAndTlsWithTheRightCaWorks) {
  start(kTls);
  bool plain_ok = false;
  try {
    plain_ok = testing::http_get(port_, "/metrics").status == 200;
  } catch (const std::exception&) {
  }
  EXPECT_FALSE(plain_ok);
  auto r = https_get(port_, trusted(), "/metrics");
  EXPECT_EQ(r.status, 200u);
  EXPECT_NE(r.body.find("modal_jobs_total{status=\"created\"} 3"), std::string::npos) << r.body;
  // A client trusting another CA refuses the server.
  TlsClientOptions wrong_ca;
  wrong_ca.ca_file = pki().path("ca2.crt");
  EXPECT_ANY_THROW(TlsConnection(port_, wrong_ca));
  const auto m = server_metrics();
  EXPECT_NE(m.find("modal_exporter_http_tls_handshake_failures_total "), std::string::npos) << m;
  EXPECT_EQ(m.find("modal_exporter_http_tls_handshake_failures_total 0\n"), std::string::npos) << m;
}

TEST_F(WebSecurityTest, RequireAndVerifyClientCertRejectsMissingAndForeignCertificates) {
  start(std::string(kTls) + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: " +
        pki().path("ca1.crt") + "\n");
  EXPECT_TRUE(handshake_fails(port_, trusted()));             // no certificate
  EXPECT_TRUE(handshake_fails(port_, with_client("other")));  // from another CA
  EXPECT_EQ(https_get(port_, with_client("client"), "/metrics").status, 200u);
}

TEST_F(WebSecurityTest, ClientAllowedSans) {
  start(std::string(kTls) + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: " +
        pki().path("ca1.crt") + "\n  client_allowed_sans: [scraper.example]\n");
  EXPECT_EQ(https_get(port_, with_client("client"), "/metrics").status, 200u);
  EXPECT_TRUE(handshake_fails(port_, with_client("stranger")));
}

TEST_F(WebSecurityTest, BasicAuthOverTls) {
  const std::string hash = testing::bcrypt_hash("s3cret pass");
  start(std::string(kTls) + "basic_auth_users:\n  prometheus: " + hash +
        "\nauth_excluded_paths: [/healthz]\n");
  auto missing = https_get(port_, trusted(), "/metrics");
  EXPECT_EQ(missing.status, 401u);
  EXPECT_EQ(missing.headers["www-authenticate"], "Basic");
  auto wrong =
      https_get(port_, trusted(), "/metrics", {{"Authorization", basic("prometheus", "wrong")}});
  EXPECT_EQ(wrong.status, 401u);
  EXPECT_EQ(
      https_get(port_, trusted(), "/metrics", {{"Authorization", basic("nobody", "s3cret pass")}})
          .status,
      401u);
  TlsConnection c(port_, trusted());
  for (int i = 0; i < 3; ++i) {  // the second and third are answered from the cache
    auto ok = c.get("/metrics", {{"Authorization", basic("prometheus", "s3cret pass")}});
    EXPECT_EQ(ok.status, 200u);
    EXPECT_NE(ok.body.find("modal_jobs_total"), std::string::npos);
  }
  EXPECT_EQ(c.get("/readyz").status, 401u);   // protected like everything else
  EXPECT_EQ(c.get("/healthz").status, 200u);  // opened by auth_excluded_paths
  const auto m = server_metrics();
  EXPECT_NE(m.find("modal_exporter_http_auth_failures_total{reason=\"missing\"} 2"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("modal_exporter_http_auth_failures_total{reason=\"wrong\"} 2"),
            std::string::npos)
      << m;
}

TEST_F(WebSecurityTest, BasicAuthOnPlainHttpHeadersAndRateLimit) {
  const std::string hash = testing::bcrypt_hash("pw");
  start("basic_auth_users:\n  alice: " + hash +
        "\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n"
        "    Strict-Transport-Security: max-age=31536000\n"
        "rate_limit:\n  interval: 1h\n  burst: 3\n");
  auto r = testing::http_get(port_, "/metrics", {{"Authorization", basic("alice", "pw")}});
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.headers["x-frame-options"], "deny");
  EXPECT_EQ(r.headers["strict-transport-security"], "max-age=31536000");
  auto denied = testing::http_get(port_, "/metrics");
  EXPECT_EQ(denied.status, 401u);
  EXPECT_EQ(denied.headers["x-frame-options"], "deny");
  EXPECT_EQ(testing::http_get(port_, "/metrics", {{"Authorization", basic("alice", "pw")}}).status,
            200u);
  EXPECT_EQ(testing::http_get(port_, "/metrics", {{"Authorization", basic("alice", "pw")}}).status,
            429u);  // burst of 3 used up; one token per hour
  EXPECT_NE(server_metrics().find("modal_exporter_http_rate_limited_total 1"), std::string::npos);
}

TEST_F(WebSecurityTest, ReloadOnSighupAndOnFileChangeKeepsTheRunningConfigWhenInvalid) {
  start("basic_auth_users:\n  alice: " + testing::bcrypt_hash("one") + "\n");
  auto as = [&](const std::string& pw) {
    return testing::http_get(port_, "/metrics", {{"Authorization", basic("alice", pw)}}).status;
  };
  EXPECT_EQ(as("one"), 200u);
  write_file(config_path(), "basic_auth_users:\n  alice: " + testing::bcrypt_hash("two") + "\n");
  reload();
  EXPECT_EQ(as("two"), 200u);
  EXPECT_EQ(as("one"), 401u);
  // An invalid file is logged and ignored.
  write_file(config_path(), "basic_auth_users:\n  alice: plaintext\n");
  reload();
  EXPECT_EQ(as("two"), 200u);
  EXPECT_NE(server_metrics().find("modal_exporter_web_config_last_reload_successful 0"),
            std::string::npos);
  // A change to the file is picked up without a signal.
  write_file(config_path(), "basic_auth_users:\n  alice: " + testing::bcrypt_hash("three") + "\n");
  EXPECT_TRUE(wait_until([&] { return as("three") == 200u; }));
  EXPECT_NE(server_metrics().find("modal_exporter_web_config_last_reload_successful 1"),
            std::string::npos);
}

TEST_F(WebSecurityTest, CertificateRotationWithoutRestart) {
  start(kTls);
  TlsConnection kept(port_, trusted());
  EXPECT_EQ(kept.get("/metrics").status, 200u);
  EXPECT_NE(kept.peer_subject().find("CN=server"), std::string::npos);
  // cert-manager writes the renewed pair; the same listener serves it to new connections.
  TestPki::sh("cp '" + pki().path("server2.key") + "' '" + dir_ + "/server.key.new' && cp '" +
              pki().path("server2.crt") + "' '" + dir_ + "/server.crt.new' && mv '" + dir_ +
              "/server.key.new' '" + dir_ + "/server.key' && mv '" + dir_ + "/server.crt.new' '" +
              dir_ + "/server.crt'");
  EXPECT_TRUE(wait_until([&] {
    try {
      TlsConnection c(port_, trusted());
      return c.peer_subject().find("CN=server2") != std::string::npos &&
             c.get("/metrics").status == 200u;
    } catch (const std::exception&) {
      return false;
    }
  }));
  EXPECT_EQ(kept.get("/metrics").status, 200u);  // open connections are not dropped
}

TEST_F(WebSecurityTest, InvalidFileAtStartIsAConfigError) {
  write_file(config_path(), "basic_auth_users:\n  alice: notbcrypt\n");
  WebConfig web;
  web.listen_address = "127.0.0.1:0";
  web.config_file = config_path();
  HttpServer server(
      io_, web, [](const HttpRequest&) { return HttpResponse::text(200, ""); }, registry_);
  try {
    server.start();
    FAIL() << "started with an invalid web config";
  } catch (const ConfigError& e) {
    EXPECT_NE(e.message.find("basic_auth_users.alice"), std::string::npos) << e.message;
    EXPECT_EQ(e.message.find("notbcrypt"), std::string::npos) << "the hash is not echoed";
  }
  write_file(config_path(), "tls_server_config:\n  cert_file: missing.crt\n  key_file: x.key\n");
  HttpServer missing(
      io_, web, [](const HttpRequest&) { return HttpResponse::text(200, ""); }, registry_);
  EXPECT_THROW(missing.start(), ConfigError);
}

TEST(BcryptViaLibcrypt, MatchesHtpasswdHashes) {
  const std::string hash = testing::bcrypt_hash("correct horse", 4);
  ASSERT_TRUE(is_bcrypt_hash(hash)) << hash;
  EXPECT_TRUE(bcrypt_matches("correct horse", hash));
  EXPECT_FALSE(bcrypt_matches("correct horsE", hash));
  EXPECT_FALSE(bcrypt_matches("", hash));
}

}  // namespace
}  // namespace mx
