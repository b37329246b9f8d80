#include "sources/telemetry/http_fetch.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>

#include "test_http_server.h"

namespace mx {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::TestHttpServer;
using testing::TestResponse;
using namespace std::chrono_literals;

TEST(ParseHttpUrl, AcceptsHttpAndHttps) {
  std::string why;
  auto u = parse_http_url("http://10.0.0.5:9400/metrics?x=1#frag", &why);
  ASSERT_TRUE(u) << why;
  EXPECT_FALSE(u->tls);
  EXPECT_EQ(u->host, "10.0.0.5");
  EXPECT_EQ(u->port, "9400");
  EXPECT_EQ(u->target, "/metrics?x=1");
  EXPECT_EQ(u->host_header, "10.0.0.5:9400");

  u = parse_http_url("HTTPS://example.com", &why);
  ASSERT_TRUE(u) << why;
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->port, "443");
  EXPECT_EQ(u->target, "/");

  u = parse_http_url("http://[::1]:8080/m", &why);
  ASSERT_TRUE(u) << why;
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->host_header, "[::1]:8080");

  u = parse_http_url("http://host?q", &why);
  ASSERT_TRUE(u) << why;
  EXPECT_EQ(u->target, "/?q");
}

TEST(ParseHttpUrl, RejectsWithAReason) {
  std::string why;
  EXPECT_FALSE(parse_http_url("ftp://x/", &why));
  EXPECT_THAT(why, HasSubstr("http://"));
  EXPECT_FALSE(parse_http_url("http://user:secret@host/", &why));
  EXPECT_THAT(why, HasSubstr("credentials"));
  EXPECT_THAT(why, Not(HasSubstr("secret")));
  EXPECT_FALSE(parse_http_url("http:///metrics", &why));
  EXPECT_THAT(why, HasSubstr("no host"));
  EXPECT_FALSE(parse_http_url("http://host:99999/", &why));
  EXPECT_THAT(why, HasSubstr("port"));
  EXPECT_FALSE(parse_http_url("http://host:/", &why));
  EXPECT_FALSE(parse_http_url("http://host/a b", &why));
  EXPECT_FALSE(parse_http_url("http://host/a\r\nX-Injected: 1", &why));
  EXPECT_FALSE(parse_http_url("http://[::1/", &why));
}

TEST(RedactUrl, DropsUserInfoAndQuery) {
  EXPECT_EQ(redact_url("https://u:p@host:1/metrics?token=abc"), "https://host:1/metrics");
  EXPECT_EQ(redact_url("http://host/m#x"), "http://host/m");
  EXPECT_EQ(redact_url("http://host/p@th"), "http://host/p@th");
}

TEST(ErrorType, MapsOutcomesToTheMetricContract) {
  EXPECT_EQ(error_type(FetchOutcome::timeout), "timeout");
  EXPECT_EQ(error_type(FetchOutcome::connection), "connection");
  EXPECT_EQ(error_type(FetchOutcome::bad_url), "connection");
  EXPECT_EQ(error_type(FetchOutcome::http_4xx), "http_4xx");
  EXPECT_EQ(error_type(FetchOutcome::http_5xx), "http_5xx");
  EXPECT_EQ(error_type(FetchOutcome::too_large), "parse");
}

class HttpFetchTest : public ::testing::Test {
 protected:
  std::optional<FetchResult> fetch(HttpFetcher& fetcher, const std::string& url,
                                   std::size_t max_body = 1 << 20,
                                   Duration timeout = std::chrono::seconds(5)) {
    std::optional<FetchResult> result;
    FetchRequest request;
    request.url = url;
    request.max_body_bytes = max_body;
    request.timeout = timeout;
    fetcher.fetch(request, [&](FetchResult r) { result = std::move(r); });
    EXPECT_TRUE(testing::run_until(io_, [&] { return result.has_value(); }));
    return result;
  }

  boost::asio::io_context io_;
  std::string last_accept_;
  TestHttpServer server_{io_, [this](const std::string& target) {
                           TestResponse r;
                           if (target == "/ok") r.body = "up 1\n";
                           if (target == "/404") r.status = 404;
                           if (target == "/503") r.status = 503;
                           if (target == "/301") r.status = 301;
                           if (target == "/big") r.body.assign(10000, 'x');
                           if (target == "/slow") r.delay = 10s;
                           return r;
                         }};
};

TEST_F(HttpFetchTest, OkBodyAndContentType) {
  HttpFetcher fetcher(io_);
  auto r = fetch(fetcher, server_.url("/ok"));
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->ok()) << r->detail;
  EXPECT_EQ(r->status, 200u);
  EXPECT_EQ(r->body, "up 1\n");
  EXPECT_THAT(r->content_type, HasSubstr("text/plain"));
}

TEST_F(HttpFetchTest, StatusClasses) {
  HttpFetcher fetcher(io_);
  auto r = fetch(fetcher, server_.url("/404"));
  EXPECT_EQ(r->outcome, FetchOutcome::http_4xx);
  EXPECT_EQ(r->status, 404u);
  r = fetch(fetcher, server_.url("/503"));
  EXPECT_EQ(r->outcome, FetchOutcome::http_5xx);
  r = fetch(fetcher, server_.url("/301"));
  EXPECT_EQ(r->outcome, FetchOutcome::http_4xx);
  EXPECT_THAT(r->detail, HasSubstr("redirect"));
}

TEST_F(HttpFetchTest, BodyOverTheCap) {
  HttpFetcher fetcher(io_);
  auto r = fetch(fetcher, server_.url("/big"), 1000);
  EXPECT_EQ(r->outcome, FetchOutcome::too_large);
  EXPECT_THAT(r->detail, HasSubstr("1000 bytes"));
  r = fetch(fetcher, server_.url("/big"), 10000);
  EXPECT_TRUE(r->ok());
}

TEST_F(HttpFetchTest, Timeout) {
  HttpFetcher fetcher(io_);
  auto r = fetch(fetcher, server_.url("/slow"), 1000, std::chrono::milliseconds(200));
  EXPECT_EQ(r->outcome, FetchOutcome::timeout);
  EXPECT_THAT(r->detail, HasSubstr("200ms"));
  server_.stop();
}

TEST_F(HttpFetchTest, ConnectionRefused) {
  HttpFetcher fetcher(io_);
  auto r = fetch(fetcher, "http://127.0.0.1:" + std::to_string(testing::closed_port()) + "/");
  EXPECT_EQ(r->outcome, FetchOutcome::connection);
  EXPECT_THAT(r->detail, HasSubstr("connect"));
}

TEST_F(HttpFetchTest, BadUrlCompletesAsynchronously) {
  HttpFetcher fetcher(io_);
  bool called = false;
  FetchRequest request;
  request.url = "gopher://x";
  fetcher.fetch(request, [&](FetchResult r) {
    called = true;
    EXPECT_EQ(r.outcome, FetchOutcome::bad_url);
  });
  EXPECT_FALSE(called);
  EXPECT_TRUE(testing::run_until(io_, [&] { return called; }));
}

TEST_F(HttpFetchTest, CancelAllCompletesInFlightFetches) {
  HttpFetcher fetcher(io_);
  std::optional<FetchResult> result;
  FetchRequest request;
  request.url = server_.url("/slow");
  fetcher.fetch(request, [&](FetchResult r) { result = std::move(r); });
  io_.poll();
  fetcher.cancel_all();
  ASSERT_TRUE(testing::run_until(io_, [&] { return result.has_value(); }));
  EXPECT_EQ(result->outcome, FetchOutcome::cancelled);
  server_.stop();
}

class HttpsFetchTest : public ::testing::Test {
 protected:
  HttpsFetchTest()
      : cert_(testing::make_test_certificate()),
        server_(
            io_,
            [](const std::string&) {
              return TestResponse{200, "text/plain", "up 1\n"};
            },
            testing::make_server_tls(cert_)) {}

  FetchResult fetch(HttpFetcher& fetcher, const std::string& url) {
    std::optional<FetchResult> result;
    FetchRequest request;
    request.url = url;
    fetcher.fetch(request, [&](FetchResult r) { result = std::move(r); });
    EXPECT_TRUE(testing::run_until(io_, [&] { return result.has_value(); }));
    return result.value_or(FetchResult{});
  }

  boost::asio::io_context io_;
  testing::TestCertificate cert_;
  TestHttpServer server_;
};

TEST_F(HttpsFetchTest, TrustedCertificate) {
  HttpFetcher fetcher(io_, testing::make_client_tls_trusting(cert_));
  const auto r = fetch(fetcher, server_.url("/metrics"));
  EXPECT_TRUE(r.ok()) << r.detail;
  EXPECT_EQ(r.body, "up 1\n");
}

TEST_F(HttpsFetchTest, UnknownCertificateIsRefusedWithSystemCas) {
  HttpFetcher fetcher(io_);
  const auto r = fetch(fetcher, server_.url("/metrics"));
  EXPECT_EQ(r.outcome, FetchOutcome::connection);
  EXPECT_THAT(r.detail, HasSubstr("TLS handshake"));
}

TEST_F(HttpsFetchTest, HostNameMustMatchTheCertificate) {
  // The certificate names IP 127.0.0.1 only; "localhost" reaches the same server but must fail.
  HttpFetcher fetcher(io_, testing::make_client_tls_trusting(cert_));
  const auto r = fetch(fetcher, "https://localhost:" + std::to_string(server_.port()) + "/");
  EXPECT_EQ(r.outcome, FetchOutcome::connection);
}

}  // namespace
}  // namespace mx
