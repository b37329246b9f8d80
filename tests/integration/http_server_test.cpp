// The HTTP server and routes over a real socket.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <future>
#include <thread>

#include "exposition/gzip.h"
#include "exposition/snapshot_builder.h"
#include "http/listen_address.h"
#include "http/routes.h"
#include "http/server.h"
#include "metrics/self_metrics.h"
#include "support/http_client.h"

namespace mx {
namespace {

using testing::http_get;
using testing::TestConnection;

class HttpServerTest : public ::testing::Test {
 protected:
  void start(WebConfig web = {}) {
    web.listen_address = "127.0.0.1:0";
    auto c = set_.add_family({"modal_jobs_total", "Jobs.", MetricType::counter});
    set_.set(c, "", "modal_jobs_total{status=\"created\",gpu_type=\"T4\",replicas=\"1\"} 3\n");
    if (jobs_ > 0) {
      auto info = set_.add_family({"modal_job_info", "Jobs.", MetricType::gauge});
      for (int i = 0; i < jobs_; ++i) {
        const std::string uid = "uid-" + std::to_string(i * 7919 % 100003);
        set_.set(info, uid,
                 "modal_job_info{job_uid=\"" + uid + "\",job_name=\"job-" + std::to_string(i) +
                     "\",namespace=\"team-" + std::to_string(i % 13) + "\"} 1\n");
      }
    }
    snapshot_ = set_.publish(6);
    RouteContext routes;
    routes.telemetry_path = "/metrics";
    routes.version = "1.2.3";
    routes.snapshot = [this] { return snapshot_; };
    routes.self_metrics = [](ExpositionFormat) { return std::string("process_open_fds 7\n"); };
    routes.ready = [this](std::string& why) {
      why = ready_ ? "" : "kubernetes, modal";
      return ready_.load();
    };
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
  // The server's self-metrics, rendered on its own thread.
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
  static void set_receive_timeout(TestConnection& c, int seconds) {
    timeval tv{seconds, 0};
    ::setsockopt(c.socket().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }

  prometheus::Registry registry_;  // outlives the io_context
  boost::asio::io_context io_;
  FamilySet set_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  std::uint16_t port_ = 0;
  std::atomic<bool> ready_{false};
  int jobs_ = 0;  // modal_job_info lines added by start()
};

const char* kPlain =
    "# HELP modal_jobs_total Jobs.\n# TYPE modal_jobs_total counter\n"
    "modal_jobs_total{status=\"created\",gpu_type=\"T4\",replicas=\"1\"} 3\nprocess_open_fds 7\n";

TEST_F(HttpServerTest, MetricsPlainText) {
  start();
  auto r = http_get(port_, "/metrics");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(r.body, kPlain);
  EXPECT_EQ(http_get(port_, "/metrics?x=1").status, 200u);
}

TEST_F(HttpServerTest, OpenMetricsWhenAsked) {
  start();
  auto r = http_get(port_, "/metrics",
                    {{"Accept", "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"}});
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.headers["content-type"],
            "application/openmetrics-text; version=1.0.0; charset=utf-8");
  EXPECT_NE(r.body.find("# TYPE modal_jobs counter\n"), std::string::npos) << r.body;
  ASSERT_GE(r.body.size(), 6u);
  EXPECT_EQ(r.body.substr(r.body.size() - 6), "# EOF\n");
}

TEST_F(HttpServerTest, GzipRoundTrip) {
  start();
  auto r = http_get(port_, "/metrics", {{"Accept-Encoding", "gzip, deflate"}});
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.headers["content-encoding"], "gzip");
  EXPECT_EQ(gzip_decompress(r.body), kPlain);
  auto om = http_get(port_, "/metrics",
                     {{"Accept-Encoding", "gzip"}, {"Accept", "application/openmetrics-text"}});
  const auto text = gzip_decompress(om.body);
  EXPECT_EQ(text.substr(text.size() - 6), "# EOF\n");
}

// A body of hundreds of pieces, to a client whose small receive buffer makes the server's writes
// stop part-way through a piece: each write goes on from the byte where the last one stopped, and
// the next response on the connection starts afresh.
TEST_F(HttpServerTest, ABodyOfManyPiecesArrivesWholeThroughPartialWrites) {
  jobs_ = 100000;
  start();
  const auto& pieces = snapshot_->plain(ExpositionFormat::text);
  ASSERT_GT(pieces.size(), 64u);  // more than one gather write takes
  const std::string expected = snapshot_->body(ExpositionFormat::text) + "process_open_fds 7\n";
  // More than the socket can hold (its send buffer grows to net.ipv4.tcp_wmem's 4 MiB at most):
  // the server's writes stop part-way, whenever the client reads.
  ASSERT_GT(expected.size(), 6u << 20);

  TestConnection c(port_);
  const int small = 64 * 1024;
  ::setsockopt(c.socket().native_handle(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  auto plain = c.get("/metrics");
  EXPECT_EQ(plain.status, 200u);
  EXPECT_TRUE(plain.body == expected)
      << plain.body.size() << " bytes, expected " << expected.size();

  auto gz = c.get("/metrics", {{"Accept-Encoding", "gzip"}});
  EXPECT_EQ(gz.headers["content-encoding"], "gzip");
  EXPECT_TRUE(gzip_decompress(gz.body) == expected);
  auto again = c.get("/metrics");
  EXPECT_TRUE(again.body == expected);
}

TEST_F(HttpServerTest, HealthReadyAndLanding) {
  start();
  EXPECT_EQ(http_get(port_, "/healthz").status, 200u);
  auto r = http_get(port_, "/readyz");
  EXPECT_EQ(r.status, 503u);
  EXPECT_NE(r.body.find("kubernetes, modal"), std::string::npos);
  ready_ = true;
  EXPECT_EQ(http_get(port_, "/readyz").status, 200u);
  r = http_get(port_, "/");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.headers["content-type"], "text/html; charset=utf-8");
  EXPECT_NE(r.body.find("href=\"/metrics\""), std::string::npos);
  EXPECT_NE(r.body.find("1.2.3"), std::string::npos);
}

TEST_F(HttpServerTest, HeadMethodNotAllowedAndNotFound) {
  start();
  auto head = http_get(port_, "/metrics", {}, "HEAD");
  EXPECT_EQ(head.status, 200u);
  EXPECT_EQ(head.body, "");
  EXPECT_EQ(head.headers["content-length"], std::to_string(std::string(kPlain).size()));
  auto post = http_get(port_, "/metrics", {{"Content-Length", "0"}}, "POST");
  EXPECT_EQ(post.status, 405u);
  EXPECT_EQ(post.headers["allow"], "GET, HEAD");
  EXPECT_EQ(http_get(port_, "/nope").status, 404u);
}

TEST_F(HttpServerTest, KeepAliveServesSeveralRequests) {
  start();
  TestConnection c(port_);
  for (int i = 0; i < 3; ++i) {
    auto r = c.get("/healthz");
    EXPECT_EQ(r.status, 200u);
    EXPECT_TRUE(r.keep_alive);
  }
}

TEST_F(HttpServerTest, MalformedRequestGets400AndOthersAreServed) {
  start();
  TestConnection bad(port_);
  bad.send_raw("GARBAGE\x01 NOT HTTP\r\n\r\n");
  EXPECT_EQ(bad.read_response().status, 400u);
  EXPECT_EQ(http_get(port_, "/healthz").status, 200u);
}

TEST_F(HttpServerTest, OversizedHeaderAndBody) {
  WebConfig web;
  web.max_request_bytes = 1024;
  start(web);
  TestConnection big(port_);
  big.send_raw("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n");
  EXPECT_EQ(big.read_response().status, 431u);
  TestConnection body(port_);
  body.send_raw("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" +
                std::string(5000, 'b'));
  EXPECT_EQ(body.read_response().status, 413u);
  EXPECT_EQ(http_get(port_, "/healthz").status, 200u);
}

TEST_F(HttpServerTest, SilentClientIsDroppedWhileOthersAreServed) {
  WebConfig web;
  web.header_timeout = std::chrono::milliseconds(300);
  start(web);
  TestConnection silent(port_);
  set_receive_timeout(silent, 20);  // a guard against hanging, far above the server's timeout
  EXPECT_EQ(http_get(port_, "/healthz").status, 200u);  // served while the silent one waits
  EXPECT_TRUE(silent.closed_by_peer());
  // A client that sends half a request is dropped too.
  TestConnection partial(port_);
  set_receive_timeout(partial, 20);
  partial.send_raw("GET /metrics HTTP/1.1\r\nHost:");
  EXPECT_TRUE(partial.closed_by_peer());
  const std::string m = server_metrics();
  EXPECT_NE(m.find("modal_exporter_http_connections_timed_out_total{phase=\"header\"} 2"),
            std::string::npos)
      << m;
}

TEST_F(HttpServerTest, HeaderDeadlineIsSeparateFromTheBodyTimeout) {
  WebConfig web;
  web.header_timeout = std::chrono::milliseconds(300);
  web.read_timeout = std::chrono::seconds(30);
  start(web);
  // Headers within the deadline, body later: served (the body has its own, longer timeout).
  TestConnection c(port_);
  set_receive_timeout(c, 20);
  c.send_raw("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  c.send_raw("body");
  EXPECT_EQ(c.read_response().status, 200u);
}

TEST_F(HttpServerTest, AtTheCapTheLongestIdleConnectionMakesRoomForANewcomer) {
  WebConfig web;
  web.max_connections = 2;
  start(web);
  TestConnection a(port_), b(port_);
  set_receive_timeout(a, 20);
  EXPECT_EQ(a.get("/healthz").status, 200u);
  EXPECT_EQ(b.get("/healthz").status, 200u);
  EXPECT_EQ(b.get("/healthz").status, 200u);  // b was active after a: a is idle the longest
  TestConnection c(port_);
  EXPECT_EQ(c.get("/healthz").status, 200u);  // the newcomer is served...
  EXPECT_TRUE(a.closed_by_peer());            // ...and the longest idle one made room
  EXPECT_EQ(b.get("/healthz").status, 200u);
  const std::string m = server_metrics();
  EXPECT_NE(m.find("modal_exporter_http_connections_evicted_total 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("modal_exporter_http_connections_accepted_total 3\n"), std::string::npos) << m;
  EXPECT_NE(m.find("modal_exporter_http_connections_max 2\n"), std::string::npos) << m;
}

// The auth, rate limit, TLS and reload families exist only with a web config file (see
// web_security_test.cpp for them with one).
TEST_F(HttpServerTest, WithoutAWebConfigFileOnlyTheConnectionFamiliesAreDeclared) {
  start();
  EXPECT_EQ(http_get(port_, "/healthz").status, 200u);
  const std::string m = server_metrics();
  EXPECT_NE(m.find("modal_exporter_http_connections_accepted_total 1\n"), std::string::npos) << m;
  for (const char* absent :
       {"modal_exporter_http_auth_failures_total", "modal_exporter_http_rate_limited_total",
        "modal_exporter_http_tls_handshake_failures_total",
        "modal_exporter_web_config_last_reload_successful"}) {
    EXPECT_EQ(m.find(absent), std::string::npos) << absent;
  }
}

TEST(ListenAddress, Parses) {
  EXPECT_EQ(parse_listen_address(":8081").port(), 8081);
  EXPECT_TRUE(parse_listen_address(":8081").address().is_unspecified());
  EXPECT_EQ(parse_listen_address("127.0.0.1:9").address().to_string(), "127.0.0.1");
  EXPECT_EQ(parse_listen_address("[::1]:9").address().to_string(), "::1");
  EXPECT_THROW(parse_listen_address("8081"), ConfigError);
  EXPECT_THROW(parse_listen_address("host.example:80"), ConfigError);
  EXPECT_THROW(parse_listen_address(":99999"), ConfigError);
}

}  // namespace
}  // namespace mx
