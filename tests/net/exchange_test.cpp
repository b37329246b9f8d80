// Exchange: what a request carries, and reading a response as the Kubernetes informer does
// (chunked streams piece by piece, bodies up to a cap, deadlines, cancel), against a server that
// writes scripted raw bytes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "net/http_client.h"
#include "support/io.h"

namespace mx::net {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
using mx::testing::run_until;

// Answers each connection with `pieces`, written one by one; after piece `hold_after` it waits
// for release(). The connection is closed after the last piece.
class RawServer {
 public:
  RawServer(asio::io_context& io, std::vector<std::string> pieces, std::size_t hold_after = ~0u)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        gate_(io),
        pieces_(std::move(pieces)),
        hold_after_(hold_after) {
    gate_.expires_at(asio::steady_timer::time_point::max());
    asio::co_spawn(io, serve(), asio::detached);
  }
  ~RawServer() { stop(); }

  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + path;
  }
  HttpUrl parsed(const std::string& path) const { return *parse_http_url(url(path), nullptr); }
  void release() { gate_.cancel(); }
  void stop() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    gate_.cancel();
    if (socket_) socket_->close(ec);
  }
  const std::string& request() const { return request_; }

 private:
  asio::awaitable<void> serve() {
    try {
      socket_.emplace(co_await acceptor_.async_accept(asio::use_awaitable));
      asio::streambuf head;
      co_await asio::async_read_until(*socket_, head, "\r\n\r\n", asio::use_awaitable);
      request_.assign(asio::buffers_begin(head.data()), asio::buffers_end(head.data()));
      for (std::size_t i = 0; i < pieces_.size(); ++i) {
        if (i == hold_after_) {
          boost::system::error_code ec;
          co_await gate_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        co_await asio::async_write(*socket_, asio::buffer(pieces_[i]), asio::use_awaitable);
      }
      socket_->shutdown(tcp::socket::shutdown_send);
    } catch (const std::exception&) {
      // stopped
    }
  }

  tcp::acceptor acceptor_;
  asio::steady_timer gate_;
  std::vector<std::string> pieces_;
  std::size_t hold_after_;
  std::optional<tcp::socket> socket_;
  std::string request_;
};

std::string chunk(const std::string& data) {
  char size[16];
  std::snprintf(size, sizeof size, "%zx", data.size());
  return std::string(size) + "\r\n" + data + "\r\n";
}

const std::string kChunkedHead =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";

// Named, not a braced temporary inside co_await: GCC 12 mishandles those in coroutines.
Request make_request(HttpUrl url, std::string accept) {
  Request r;
  r.url = std::move(url);
  r.accept = std::move(accept);
  return r;
}

class ExchangeTest : public ::testing::Test {
 protected:
  // Runs `body` as a coroutine on io_ until it finishes.
  void run(std::function<asio::awaitable<void>()> body) {
    bool finished = false;
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          co_await body();
          finished = true;
        },
        asio::detached);
    ASSERT_TRUE(run_until(io_, [&] { return finished; }));
  }
  static Exchange::Clock::time_point in(Duration d) { return Exchange::Clock::now() + d; }

  asio::io_context io_;
  std::shared_ptr<HttpClient> client_ = HttpClient::create(io_.get_executor());
};

TEST_F(ExchangeTest, RequestCarriesUserAgentHostAcceptAndToken) {
  RawServer server(io_, {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"});
  Error e;
  std::string body;
  run([&]() -> asio::awaitable<void> {
    auto ex = client_->exchange();
    Request request;
    request.url = server.parsed("/api/v1/pods?limit=5");
    request.accept = "application/json";
    request.bearer_token = "s3cret-token";
    e = co_await ex->open(request, in(5s));
    if (!e) e = co_await ex->read_body(body, 100, in(5s));
  });
  EXPECT_FALSE(e) << e.message;
  EXPECT_EQ(body, "{}");
  const std::string& r = server.request();
  EXPECT_THAT(r, HasSubstr("GET /api/v1/pods?limit=5 HTTP/1.1\r\n"));
  EXPECT_THAT(r, HasSubstr("User-Agent: modal-exporter/"));
  EXPECT_THAT(r, HasSubstr("Authorization: Bearer s3cret-token\r\n"));
  EXPECT_THAT(r, HasSubstr("Accept: application/json\r\n"));
  EXPECT_THAT(r, HasSubstr("Host: 127.0.0.1:"));
  EXPECT_EQ(user_agent().rfind("modal-exporter/", 0), 0u);
}

TEST_F(ExchangeTest, NoAuthorizationWithoutAToken) {
  RawServer server(io_, {"HTTP/1.1 204 No Content\r\n\r\n"});
  Error e;
  int status = 0;
  run([&]() -> asio::awaitable<void> {
    auto ex = client_->exchange();
    const Request request = make_request(server.parsed("/"), "*/*");
    e = co_await ex->open(request, in(5s));
    status = ex->status();
  });
  EXPECT_FALSE(e) << e.message;
  EXPECT_EQ(status, 204);
  EXPECT_THAT(server.request(), ::testing::Not(HasSubstr("Authorization")));
}

// A plain http:// request through a proxy names the whole URL and carries the proxy's
// credentials from the proxy URL; the HTTPS_PROXY-style environment applies to non-loopback hosts.
TEST_F(ExchangeTest, PlainRequestThroughAProxyUsesTheAbsoluteForm) {
  RawServer proxy(io_, {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"});
  ClientOptions options;
  options.proxy_environment = ProxyEnvironment{};
  options.proxy_environment->http_proxy =
      "http://us%3Aer:pw@" + proxy.url("").substr(std::string("http://").size());
  auto client = HttpClient::create(io_.get_executor(), options);
  Error e;
  std::string body;
  run([&]() -> asio::awaitable<void> {
    auto ex = client->exchange();
    const Request request =
        make_request(*parse_http_url("http://api.example.invalid:8080/x?y=1", nullptr), "*/*");
    e = co_await ex->open(request, in(5s));
    if (!e) e = co_await ex->read_body(body, 100, in(5s));
  });
  EXPECT_FALSE(e) << e.message;
  EXPECT_EQ(body, "ok");
  EXPECT_THAT(proxy.request(), HasSubstr("GET http://api.example.invalid:8080/x?y=1 HTTP/1.1\r\n"));
  EXPECT_THAT(proxy.request(), HasSubstr("Host: api.example.invalid:8080\r\n"));
  // base64("us:er:pw")
  EXPECT_THAT(proxy.request(), HasSubstr("Proxy-Authorization: Basic dXM6ZXI6cHc=\r\n"));
}

TEST_F(ExchangeTest, AProxyRefusingConnectIsAConnectionErrorWithoutCredentials) {
  RawServer proxy(io_, {"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"});
  ClientOptions options;
  options.proxy_url = "http://user:hunter2@" + proxy.url("").substr(std::string("http://").size());
  auto client = HttpClient::create(io_.get_executor(), options);
  Error e;
  run([&]() -> asio::awaitable<void> {
    auto ex = client->exchange();
    const Request request =
        make_request(*parse_http_url("https://api.example.invalid/x", nullptr), "*/*");
    e = co_await ex->open(request, in(5s));
  });
  EXPECT_EQ(e.kind, ErrorKind::connection);
  EXPECT_THAT(e.message,
              HasSubstr("CONNECT api.example.invalid:443 through proxy http://127.0.0.1:"));
  EXPECT_THAT(e.message, HasSubstr("HTTP 407 (proxy authentication required)"));
  EXPECT_THAT(e.message, ::testing::Not(HasSubstr("hunter2")));
  EXPECT_THAT(proxy.request(), HasSubstr("CONNECT api.example.invalid:443 HTTP/1.1\r\n"));
  EXPECT_THAT(proxy.request(), HasSubstr("Proxy-Authorization: Basic dXNlcjpodW50ZXIy\r\n"));
}

TEST_F(ExchangeTest, AnUnusableProxyUrlFailsEveryRequest) {
  ClientOptions options;
  options.proxy_url = "socks5://127.0.0.1:1080";
  auto client = HttpClient::create(io_.get_executor(), options);
  Error e;
  run([&]() -> asio::awaitable<void> {
    auto ex = client->exchange();
    const Request request = make_request(*parse_http_url("https://127.0.0.1:1/", nullptr), "*/*");
    e = co_await ex->open(request, in(5s));
  });
  EXPECT_EQ(e.kind, ErrorKind::connection);
  EXPECT_THAT(e.message, HasSubstr("SOCKS5"));
}

TEST_F(ExchangeTest, StreamsAChunkedBodyAsItArrives) {
  // The second event is held back until the first has been read: a watch stream.
  RawServer server(io_,
                   {kChunkedHead + chunk("{\"type\":\"ADDED\"}\n"), chunk("{\"type\":\"DEL"),
                    chunk("ETED\"}\n") + "0\r\n\r\n"},
                   1);
  std::string first, all;
  Error e;
  bool done = false;
  run([&]() -> asio::awaitable<void> {
    auto ex = client_->exchange();
    const Request request = make_request(server.parsed("/watch"), "application/json");
    e = co_await ex->open(request, in(5s));
    while (!e && all.find('\n') == std::string::npos) e = co_await ex->read_some(all, in(5s));
    first = all;
    server.release();
    while (!e && !ex->done()) e = co_await ex->read_some(all, in(5s));
    done = ex->done();
  });
  EXPECT_FALSE(e) << e.message;
  EXPECT_EQ(first, "{\"type\":\"ADDED\"}\n");
  EXPECT_EQ(all, "{\"type\":\"ADDED\"}\n{\"type\":\"DELETED\"}\n");
  EXPECT_TRUE(done);
}

TEST_F(ExchangeTest, AnIdleStreamTimesOut) {
  RawServer server(io_, {kChunkedHead + chunk("a"), "0\r\n\r\n"}, 1);
  Error e;
  std::string out;
  run([&]() -> asio::awaitable<void> {
    auto ex = client_->exchange();
    const Request request = make_request(server.parsed("/"), "*/*");
    e = co_await ex->open(request, in(5s));
    while (!e && out.empty()) e = co_await ex->read_some(out, in(5s));
    if (!e) e = co_await ex->read_some(out, in(100ms));
  });
  EXPECT_EQ(e.kind, ErrorKind::timeout) << e.message;
  EXPECT_EQ(error_type(e, AuthPolicy::credentials), "timeout");
  EXPECT_EQ(out, "a");
}

TEST_F(ExchangeTest, CancelEndsAPendingRead) {
  RawServer server(io_, {kChunkedHead, "0\r\n\r\n"}, 1);
  std::shared_ptr<Exchange> ex = client_->exchange();
  std::optional<Error> result;
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        const Request request = make_request(server.parsed("/"), "*/*");
        Error e = co_await ex->open(request, in(5s));
        std::string out;
        while (!e) e = co_await ex->read_some(out, in(20s));
        result = e;
      },
      asio::detached);
  ASSERT_TRUE(run_until(io_, [&] { return !server.request().empty(); }));
  mx::testing::run_for(io_, 50ms);
  ASSERT_FALSE(result);
  client_->cancel_all();
  ASSERT_TRUE(run_until(io_, [&] { return result.has_value(); }));
  EXPECT_EQ(result->kind, ErrorKind::cancelled);
}

TEST_F(ExchangeTest, BodyCapHoldsWithoutContentLength) {
  RawServer server(io_, {kChunkedHead + chunk(std::string(600, 'x')) +
                         chunk(std::string(600, 'y')) + "0\r\n\r\n"});
  Error e;
  std::string body;
  run([&]() -> asio::awaitable<void> {
    auto ex = client_->exchange();
    const Request request = make_request(server.parsed("/"), "*/*");
    e = co_await ex->open(request, in(5s));
    if (!e) e = co_await ex->read_body(body, 1000, in(5s));
  });
  EXPECT_EQ(e.kind, ErrorKind::too_large) << e.message;
  EXPECT_THAT(e.message, HasSubstr("1000 bytes"));
  EXPECT_EQ(error_type(e, AuthPolicy::anonymous), "parse");
}

TEST_F(ExchangeTest, StatusAndRetryAfterOfAnErrorResponse) {
  RawServer server(io_, {"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: "
                         "0\r\n\r\n"});
  Error e;
  int status = 0;
  std::optional<Duration> retry;
  run([&]() -> asio::awaitable<void> {
    auto ex = client_->exchange();
    const Request request = make_request(server.parsed("/"), "*/*");
    e = co_await ex->open(request, in(5s));
    status = ex->status();
    retry = ex->retry_after();
  });
  EXPECT_FALSE(e) << e.message;
  EXPECT_EQ(status, 429);
  ASSERT_TRUE(retry);
  EXPECT_EQ(*retry, Duration(7s));
}

TEST_F(ExchangeTest, ANonHttpAnswerIsAParseError) {
  RawServer server(io_, {"SSH-2.0-OpenSSH_9.2\r\n\r\n"});
  Error e;
  run([&]() -> asio::awaitable<void> {
    auto ex = client_->exchange();
    const Request request = make_request(server.parsed("/"), "*/*");
    e = co_await ex->open(request, in(5s));
  });
  EXPECT_EQ(e.kind, ErrorKind::parse) << e.message;
  EXPECT_EQ(error_type(e, AuthPolicy::anonymous), "parse");
}

TEST_F(ExchangeTest, ATruncatedChunkedBodyIsAConnectionError) {
  RawServer server(io_, {kChunkedHead + chunk("partial")});
  Error e;
  std::string body;
  run([&]() -> asio::awaitable<void> {
    auto ex = client_->exchange();
    const Request request = make_request(server.parsed("/"), "*/*");
    e = co_await ex->open(request, in(5s));
    if (!e) e = co_await ex->read_body(body, 1000, in(5s));
  });
  EXPECT_EQ(e.kind, ErrorKind::connection) << e.message;
}

}  // namespace
}  // namespace mx::net
