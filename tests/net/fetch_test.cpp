// HttpClient::fetch (whole GETs, as the telemetry and upstream sources use it), URLs, and the
// status -> error_type mapping.
#include "net/http_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>

#include "support/test_http_server.h"

namespace mx::net {
namespace {

using mx::testing::ServedResponse;
using mx::testing::TestHttpServer;
using ::testing::HasSubstr;
using ::testing::Not;
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

Error error_of(ErrorKind kind, int status = 0) {
  Error e;
  e.kind = kind;
  e.status = status;
  return e;
}

TEST(ErrorType, MapsFailuresToTheMetricContract) {
  for (AuthPolicy policy : {AuthPolicy::credentials, AuthPolicy::anonymous}) {
    EXPECT_EQ(error_type(error_of(ErrorKind::timeout), policy), "timeout");
    EXPECT_EQ(error_type(error_of(ErrorKind::connection), policy), "connection");
    EXPECT_EQ(error_type(error_of(ErrorKind::bad_url), policy), "connection");
    EXPECT_EQ(error_type(error_of(ErrorKind::parse), policy), "parse");
    EXPECT_EQ(error_type(error_of(ErrorKind::too_large), policy), "parse");
    EXPECT_EQ(error_type(error_of(ErrorKind::http, 404), policy), "http_4xx");
    EXPECT_EQ(error_type(error_of(ErrorKind::http, 410), policy), "http_4xx");
    EXPECT_EQ(error_type(error_of(ErrorKind::http, 301), policy), "http_4xx");
    EXPECT_EQ(error_type(error_of(ErrorKind::http, 500), policy), "http_5xx");
    EXPECT_EQ(error_type(error_of(ErrorKind::http, 503), policy), "http_5xx");
  }
}

TEST(ErrorType, AuthStatusesFollowThePolicy) {
  // The Kubernetes API: the request carried a token or client certificate.
  EXPECT_EQ(error_type(error_of(ErrorKind::http, 401), AuthPolicy::credentials), "auth");
  EXPECT_EQ(error_type(error_of(ErrorKind::http, 403), AuthPolicy::credentials), "auth");
  // Telemetry and upstream scrapes carry none: a 401/403 is a wrong URL.
  EXPECT_EQ(error_type(error_of(ErrorKind::http, 401), AuthPolicy::anonymous), "http_4xx");
  EXPECT_EQ(error_type(error_of(ErrorKind::http, 403), AuthPolicy::anonymous), "http_4xx");
}

std::string type_of(const Error& e) {
  return std::string(error_type(e, AuthPolicy::anonymous));
}

class HttpFetchTest : public ::testing::Test {
 protected:
  std::optional<FetchResult> fetch(HttpClient& fetcher, const std::string& url,
                                   std::size_t max_body = 1 << 20,
                                   Duration timeout = std::chrono::seconds(5)) {
    std::optional<FetchResult> result;
    FetchRequest request;
    request.url = url;
    request.max_body_bytes = max_body;
    request.timeout = timeout;
    fetcher.fetch(request, [&](FetchResult r) { result = std::move(r); });
    EXPECT_TRUE(mx::testing::run_until(io_, [&] { return result.has_value(); }));
    return result;
  }

  boost::asio::io_context io_;
  std::string last_accept_;
  TestHttpServer server_{io_, [this](const std::string& target) {
                           ServedResponse r;
                           if (target == "/ok") r.body = "up 1\n";
                           if (target == "/404") r.status = 404;
                           if (target == "/503") r.status = 503;
                           if (target == "/401") r.status = 401;
                           if (target == "/301") r.status = 301;
                           if (target == "/big") r.body.assign(10000, 'x');
                           if (target == "/slow") r.delay = 10s;
                           return r;
                         }};
};

TEST_F(HttpFetchTest, OkBodyAndContentType) {
  auto client = HttpClient::create(io_.get_executor());
  HttpClient& fetcher = *client;
  auto r = fetch(fetcher, server_.url("/ok"));
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->ok()) << r->error.message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "up 1\n");
  EXPECT_THAT(r->content_type, HasSubstr("text/plain"));
}

TEST_F(HttpFetchTest, StatusClasses) {
  auto client = HttpClient::create(io_.get_executor());
  HttpClient& fetcher = *client;
  auto r = fetch(fetcher, server_.url("/404"));
  EXPECT_EQ(type_of(r->error), "http_4xx");
  EXPECT_EQ(r->status, 404);
  r = fetch(fetcher, server_.url("/503"));
  EXPECT_EQ(type_of(r->error), "http_5xx");
  r = fetch(fetcher, server_.url("/301"));
  EXPECT_EQ(type_of(r->error), "http_4xx");
  EXPECT_THAT(r->error.message, HasSubstr("redirect"));
  // The scrape carried no credentials: a 401 says the URL is wrong.
  r = fetch(fetcher, server_.url("/401"));
  EXPECT_EQ(r->error.status, 401);
  EXPECT_EQ(type_of(r->error), "http_4xx");
}

TEST_F(HttpFetchTest, BodyOverTheCap) {
  auto client = HttpClient::create(io_.get_executor());
  HttpClient& fetcher = *client;
  auto r = fetch(fetcher, server_.url("/big"), 1000);
  EXPECT_EQ(r->error.kind, ErrorKind::too_large);
  EXPECT_THAT(r->error.message, HasSubstr("1000 bytes"));
  r = fetch(fetcher, server_.url("/big"), 10000);
  EXPECT_TRUE(r->ok());
}

TEST_F(HttpFetchTest, Timeout) {
  auto client = HttpClient::create(io_.get_executor());
  HttpClient& fetcher = *client;
  auto r = fetch(fetcher, server_.url("/slow"), 1000, std::chrono::milliseconds(200));
  EXPECT_EQ(r->error.kind, ErrorKind::timeout);
  EXPECT_THAT(r->error.message, HasSubstr("200ms"));
  server_.stop();
}

TEST_F(HttpFetchTest, ConnectionRefused) {
  auto client = HttpClient::create(io_.get_executor());
  HttpClient& fetcher = *client;
  auto r = fetch(fetcher, "http://127.0.0.1:" + std::to_string(mx::testing::closed_port()) + "/");
  EXPECT_EQ(r->error.kind, ErrorKind::connection);
  EXPECT_THAT(r->error.message, HasSubstr("connect"));
}

TEST_F(HttpFetchTest, BadUrlCompletesAsynchronously) {
  auto client = HttpClient::create(io_.get_executor());
  HttpClient& fetcher = *client;
  bool called = false;
  FetchRequest request;
  request.url = "gopher://x";
  fetcher.fetch(request, [&](FetchResult r) {
    called = true;
    EXPECT_EQ(r.error.kind, ErrorKind::bad_url);
  });
  EXPECT_FALSE(called);
  EXPECT_TRUE(mx::testing::run_until(io_, [&] { return called; }));
}

TEST_F(HttpFetchTest, CancelAllCompletesInFlightFetches) {
  auto client = HttpClient::create(io_.get_executor());
  HttpClient& fetcher = *client;
  std::optional<FetchResult> result;
  FetchRequest request;
  request.url = server_.url("/slow");
  fetcher.fetch(request, [&](FetchResult r) { result = std::move(r); });
  io_.poll();
  fetcher.cancel_all();
  ASSERT_TRUE(mx::testing::run_until(io_, [&] { return result.has_value(); }));
  EXPECT_EQ(result->error.kind, ErrorKind::cancelled);
  server_.stop();
}

std::shared_ptr<HttpClient> keeping_client(boost::asio::io_context& io, std::size_t max_idle) {
  ClientOptions options;
  options.max_idle_connections = max_idle;
  return HttpClient::create(io.get_executor(), options);
}

TEST_F(HttpFetchTest, AKeptConnectionCarriesTheNextRequests) {
  server_.set_keep_alive(true);
  auto client = keeping_client(io_, 8);
  for (int i = 0; i < 3; ++i) {
    auto r = fetch(*client, server_.url("/ok"));
    ASSERT_TRUE(r->ok()) << r->error.message;
    EXPECT_EQ(r->body, "up 1\n");
  }
  EXPECT_EQ(server_.connections_accepted(), 1);
  EXPECT_EQ(client->idle_connections(), 1u);
  client->cancel_all();
  EXPECT_EQ(client->idle_connections(), 0u);
  EXPECT_TRUE(fetch(*client, server_.url("/ok"))->ok());
  EXPECT_EQ(server_.connections_accepted(), 2);
}

TEST_F(HttpFetchTest, DroppingAClientFreesItAndItsIdleConnections) {
  server_.set_keep_alive(true);
  auto client = keeping_client(io_, 8);
  ASSERT_TRUE(fetch(*client, server_.url("/ok"))->ok());
  ASSERT_EQ(client->idle_connections(), 1u);
  // An idle connection holds no reference to its client: nothing keeps the two alive.
  const std::weak_ptr<HttpClient> weak = client;
  client.reset();
  EXPECT_TRUE(weak.expired());
}

TEST_F(HttpFetchTest, AKeptConnectionTheServerClosedIsReplaced) {
  server_.set_keep_alive(true);
  auto client = keeping_client(io_, 8);
  ASSERT_TRUE(fetch(*client, server_.url("/ok"))->ok());
  server_.close_connections();
  io_.poll();
  // The request goes out on the closed connection, no answer comes, and a new connection
  // carries it: the caller sees a success.
  auto r = fetch(*client, server_.url("/ok"));
  ASSERT_TRUE(r->ok()) << r->error.message;
  EXPECT_EQ(r->body, "up 1\n");
  EXPECT_EQ(server_.connections_accepted(), 2);
  EXPECT_TRUE(fetch(*client, server_.url("/ok"))->ok());
  EXPECT_EQ(server_.connections_accepted(), 2);
}

TEST_F(HttpFetchTest, NoConnectionIsKeptAfterAnErrorOrWhenTheServerCloses) {
  auto client = keeping_client(io_, 8);
  // The server answers "Connection: close".
  EXPECT_TRUE(fetch(*client, server_.url("/ok"))->ok());
  EXPECT_TRUE(fetch(*client, server_.url("/ok"))->ok());
  EXPECT_EQ(server_.connections_accepted(), 2);
  EXPECT_EQ(client->idle_connections(), 0u);
  // A 404's body is not read: its connection is closed.
  server_.set_keep_alive(true);
  EXPECT_EQ(fetch(*client, server_.url("/404"))->status, 404);
  EXPECT_EQ(client->idle_connections(), 0u);
  EXPECT_TRUE(fetch(*client, server_.url("/ok"))->ok());
  EXPECT_EQ(server_.connections_accepted(), 4);
  EXPECT_EQ(client->idle_connections(), 1u);
}

TEST_F(HttpFetchTest, WithoutIdleConnectionsEachRequestAsksToClose) {
  server_.set_keep_alive(true);
  auto client = HttpClient::create(io_.get_executor());
  EXPECT_TRUE(fetch(*client, server_.url("/ok"))->ok());
  EXPECT_TRUE(fetch(*client, server_.url("/ok"))->ok());
  EXPECT_EQ(server_.connections_accepted(), 2);
  EXPECT_EQ(client->idle_connections(), 0u);
}

TEST_F(HttpFetchTest, IdleConnectionsStayWithinTheLimit) {
  server_.set_keep_alive(true);
  TestHttpServer other(io_, [](const std::string&) {
    return ServedResponse{200, "text/plain", "b 1\n"};
  });
  other.set_keep_alive(true);
  auto client = keeping_client(io_, 1);
  EXPECT_TRUE(fetch(*client, server_.url("/ok"))->ok());
  EXPECT_TRUE(fetch(*client, other.url("/"))->ok());
  EXPECT_EQ(client->idle_connections(), 1u);
  // The first host's connection was kept; the second's was closed when the pool was full.
  EXPECT_TRUE(fetch(*client, server_.url("/ok"))->ok());
  EXPECT_TRUE(fetch(*client, other.url("/"))->ok());
  EXPECT_EQ(server_.connections_accepted(), 1);
  EXPECT_EQ(other.connections_accepted(), 2);
}

// The host of "[::1]" is the bare literal; the connection goes to it (whether the resolver was
// skipped is not visible from here).
TEST_F(HttpFetchTest, AnIpv6LiteralHostIsConnectedTo) {
  auto client = HttpClient::create(io_.get_executor());
  const std::string port = std::to_string(mx::testing::closed_port());
  auto r = fetch(*client, "http://[::1]:" + port + "/");
  EXPECT_EQ(r->error.kind, ErrorKind::connection);
  EXPECT_THAT(r->error.message, HasSubstr("connect to [::1]:" + port));
}

class HttpsFetchTest : public ::testing::Test {
 protected:
  HttpsFetchTest()
      : cert_(mx::testing::make_test_certificate()),
        server_(
            io_,
            [](const std::string&) {
              return ServedResponse{200, "text/plain", "up 1\n"};
            },
            mx::testing::make_server_tls(cert_)) {}

  FetchResult fetch(HttpClient& fetcher, const std::string& url) {
    std::optional<FetchResult> result;
    FetchRequest request;
    request.url = url;
    fetcher.fetch(request, [&](FetchResult r) { result = std::move(r); });
    EXPECT_TRUE(mx::testing::run_until(io_, [&] { return result.has_value(); }));
    return result.value_or(FetchResult{});
  }

  boost::asio::io_context io_;
  mx::testing::TestCertificate cert_;
  TestHttpServer server_;
};

TEST_F(HttpsFetchTest, TrustedCertificate) {
  auto client =
      HttpClient::create(io_.get_executor(), {{}, mx::testing::make_client_tls_trusting(cert_)});
  HttpClient& fetcher = *client;
  const auto r = fetch(fetcher, server_.url("/metrics"));
  EXPECT_TRUE(r.ok()) << r.error.message;
  EXPECT_EQ(r.body, "up 1\n");
}

TEST_F(HttpsFetchTest, AKeptTlsConnectionCarriesTheNextRequests) {
  server_.set_keep_alive(true);
  ClientOptions options({}, mx::testing::make_client_tls_trusting(cert_));
  options.max_idle_connections = 4;
  auto client = HttpClient::create(io_.get_executor(), options);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(fetch(*client, server_.url("/metrics")).ok());
  EXPECT_EQ(server_.connections_accepted(), 1);
  server_.close_connections();
  io_.poll();
  const auto r = fetch(*client, server_.url("/metrics"));
  EXPECT_TRUE(r.ok()) << r.error.message;
  EXPECT_EQ(server_.connections_accepted(), 2);
}

TEST_F(HttpsFetchTest, UnknownCertificateIsRefusedWithSystemCas) {
  auto client = HttpClient::create(io_.get_executor());
  HttpClient& fetcher = *client;
  const auto r = fetch(fetcher, server_.url("/metrics"));
  EXPECT_EQ(r.error.kind, ErrorKind::connection);
  EXPECT_THAT(r.error.message, HasSubstr("TLS handshake"));
}

TEST_F(HttpsFetchTest, HostNameMustMatchTheCertificate) {
  // The certificate names IP 127.0.0.1 only; "localhost" reaches the same server but must fail.
  auto client =
      HttpClient::create(io_.get_executor(), {{}, mx::testing::make_client_tls_trusting(cert_)});
  HttpClient& fetcher = *client;
  const auto r = fetch(fetcher, "https://localhost:" + std::to_string(server_.port()) + "/");
  EXPECT_EQ(r.error.kind, ErrorKind::connection);
}

}  // namespace
}  // namespace mx::net
