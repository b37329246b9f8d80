// The one HTTP(S) client of the exporter (Boost.Beast + Asio + OpenSSL), used by the Kubernetes,
// telemetry and upstream sources. One request per connection: LIST pages and WATCH streams are
// long or rare, scrapes go to many hosts, so connection reuse buys nothing. Everything runs on
// one io_context thread; no locks.
//
// Two ways to use it:
//  - Exchange: open() sends a GET and reads the response header; then read_some() streams the
//    body (the Kubernetes watch: chunked, endless) or read_body() reads it whole up to a cap.
//  - fetch(): a whole GET with one deadline and one body cap; a non-2xx status is an error.
//    The handler runs exactly once, on the io_context, never inline.
// Errors map to error_type through net/errors.h with the caller's AuthPolicy.
#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "common/duration.h"
#include "net/errors.h"
#include "net/proxy.h"
#include "net/tls.h"
#include "net/url.h"

namespace mx::net {

namespace asio = boost::asio;
namespace beast = boost::beast;

struct ClientOptions {
  ClientOptions() = default;
  // Trust and a ready context, the common case; the proxy comes from the environment.
  ClientOptions(TlsOptions tls_options, std::shared_ptr<asio::ssl::context> context = nullptr)
      : tls(std::move(tls_options)), tls_context(std::move(context)) {}

  // Trust, client certificate, server name, insecure-skip. Used to build the TLS context on the
  // first https:// request unless `tls_context` is given.
  TlsOptions tls;
  // A ready context (built with make_tls_client_context, or a test's private CA). The
  // verification mode and peer name still come from `tls`.
  std::shared_ptr<asio::ssl::context> tls_context;
  // Where requests go: through `proxy_url` (a kubeconfig's proxy-url, for every request) when
  // set, else as `proxy_environment` says (net/proxy.h); unset, the process environment is read
  // when the client is created.
  std::string proxy_url;
  std::optional<ProxyEnvironment> proxy_environment;
};

struct Request {
  HttpUrl url;
  std::string accept = "*/*";
  std::string bearer_token;  // sent as "Authorization: Bearer ..." when set; never logged
  // Replaces the client's TLS context for this request (a client certificate that changes over
  // time, such as one from a kubeconfig exec plugin).
  std::shared_ptr<asio::ssl::context> tls_context;
};

struct FetchRequest {
  std::string url;
  Duration timeout = std::chrono::seconds(5);  // for everything: resolve to the last body byte
  std::size_t max_body_bytes = 16 * 1024 * 1024;
  std::string accept = "text/plain;version=0.0.4";
};

struct FetchResult {
  Error error;     // kind none: a 2xx status and the whole body
  int status = 0;  // HTTP status when a response header arrived
  std::string content_type;
  std::string body;  // only when ok()
  bool ok() const { return !error; }
};

class Exchange;

class HttpClient : public std::enable_shared_from_this<HttpClient> {
 public:
  static std::shared_ptr<HttpClient> create(asio::any_io_executor executor,
                                            ClientOptions options = {});
  HttpClient(asio::any_io_executor executor, ClientOptions options);
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  const asio::any_io_executor& executor() const { return executor_; }

  // A new request on a new connection.
  std::shared_ptr<Exchange> exchange();
  void fetch(const FetchRequest& request, std::function<void(FetchResult)> done);
  // Ends every exchange and fetch of this client in flight (they complete with `cancelled`).
  void cancel_all();

 private:
  friend class Exchange;
  // The TLS context, built on first use; null with `error` set when the options are unusable.
  std::shared_ptr<asio::ssl::context> tls_context(std::string& error);
  // The proxy for `url`; nullopt for a direct connection, or with `error` set when the
  // configured proxy is unusable.
  std::optional<ProxyUrl> proxy_for(const HttpUrl& url, std::string& error) const;

  asio::any_io_executor executor_;
  ClientOptions options_;
  std::optional<ProxyUrl> fixed_proxy_;  // options_.proxy_url parsed
  std::string fixed_proxy_error_;
  ProxyEnvironment proxy_environment_;
  std::vector<std::weak_ptr<Exchange>> exchanges_;
};

class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Exchange(std::shared_ptr<HttpClient> client);
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // Resolves, connects, handshakes, sends `GET request.url` and reads the response header, all
  // by `deadline`. Any status is success here; see status().
  asio::awaitable<Error> open(Request request, Clock::time_point deadline);
  int status() const { return status_; }
  const std::string& content_type() const { return content_type_; }
  // Retry-After in seconds (HTTP dates are not used by the servers we talk to).
  std::optional<Duration> retry_after() const { return retry_after_; }

  // Appends the next body bytes to `out`; done() once the body ended. Times out at `deadline`.
  asio::awaitable<Error> read_some(std::string& out, Clock::time_point deadline);
  // The rest of the body, at most `max_bytes` (too_large beyond).
  asio::awaitable<Error> read_body(std::string& out, std::size_t max_bytes,
                                   Clock::time_point deadline);
  bool done() const { return done_; }

  // Closes the connection: pending and later operations end with ErrorKind::cancelled.
  void cancel();

 private:
  Error map_error(const boost::system::error_code& ec, const std::string& step) const;
  // CONNECT through the proxy the TCP stream is connected to; TLS then runs inside the tunnel.
  asio::awaitable<Error> open_tunnel(const ProxyUrl& proxy, const HttpUrl& url);
  beast::tcp_stream& tcp();

  std::shared_ptr<HttpClient> client_;
  asio::ip::tcp::resolver resolver_;
  asio::steady_timer resolve_deadline_;
  std::shared_ptr<asio::ssl::context> tls_context_;  // outlives tls_, which refers to it
  std::unique_ptr<beast::tcp_stream> plain_;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls_;
  beast::flat_buffer buffer_;
  beast::http::response_parser<beast::http::buffer_body> parser_;
  std::unique_ptr<std::array<char, 64 * 1024>> chunk_;
  std::string authority_;  // host:port, for messages
  int status_ = 0;
  std::string content_type_;
  std::optional<Duration> retry_after_;
  bool done_ = false;
  bool cancelled_ = false;
  bool resolve_timed_out_ = false;
};

}  // namespace mx::net
