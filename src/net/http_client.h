// The one HTTP(S) client of the exporter (Boost.Beast + Asio + OpenSSL), used by the Kubernetes,
// telemetry and upstream sources. Everything runs on one io_context thread; no locks.
//
// Two ways to use it:
//  - Exchange: open() sends a GET and reads the response header; then read_some() streams the
//    body (the Kubernetes watch: chunked, endless) or read_body() reads it whole up to a cap.
//    One request per connection: LIST pages and WATCH streams are long or rare.
//  - fetch(): a whole GET with one deadline and one body cap; a non-2xx status is an error.
//    The handler runs exactly once, on the io_context, never inline. With
//    `max_idle_connections`, fetch() keeps the connection open after a whole 2xx answer and
//    sends the next request to the same scheme://host:port on it, as Prometheus does with its
//    targets: a scrape every few seconds of each of a thousand endpoints would otherwise pay a
//    connect (and a TLS handshake) each time. A kept connection the server has closed meanwhile
//    is replaced by a new one within the same deadline (GET is idempotent, and nothing of an
//    answer had arrived).
// A host that is an IP address (telemetry URLs name pod IPs) is connected to without the
// resolver, which would run getaddrinfo on a thread of its own.
// Errors map to error_type through net/errors.h with the caller's AuthPolicy.
#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
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
  // fetch() keeps up to this many idle connections, one per scheme://host:port; 0 closes each
  // after its answer ("Connection: close").
  std::size_t max_idle_connections = 0;
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
  // Ends every exchange and fetch of this client in flight (they complete with `cancelled`) and
  // closes the idle connections.
  void cancel_all();
  std::size_t idle_connections() const { return idle_count_; }

  // An idle connection is closed after this long unused (and is not reused later than that).
  static constexpr std::chrono::seconds kIdleTimeout{90};
  // Two requests to one host at once leave two connections to keep, as Go's client does.
  static constexpr std::size_t kMaxIdlePerHost = 2;

 private:
  friend class Exchange;
  static asio::awaitable<void> run_fetch(std::shared_ptr<HttpClient> self,
                                         std::shared_ptr<Exchange> ex, std::string key,
                                         Request request, FetchRequest options,
                                         std::function<void(FetchResult)> done);
  // The idle connection to `key` (scheme://host:port), taken out of the pool, or a new exchange.
  std::shared_ptr<Exchange> exchange_for(const std::string& key);
  void keep_idle(const std::string& key, std::shared_ptr<Exchange> ex);
  void close_expired_idle(std::chrono::steady_clock::time_point now);
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
  std::size_t exchanges_compacted_ = 0;  // exchanges_.size() after the last clean-up
  // Per scheme://host:port, oldest first.
  std::unordered_map<std::string, std::vector<std::shared_ptr<Exchange>>> idle_;
  std::size_t idle_count_ = 0;
  std::chrono::steady_clock::time_point next_idle_check_{};
};

class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Exchange(std::shared_ptr<HttpClient> client);
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // Resolves, connects, handshakes, sends `GET request.url` and reads the response header, all
  // by `deadline`. Any status is success here; see status(). On an exchange that answered
  // before and is reusable(), the request goes on the same connection (a new one when the
  // server has closed it).
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
  friend class HttpClient;  // its pool of idle connections uses the four below
  // Whether the connection can carry another request: the last answer was read whole, neither
  // side asked to close it, and it was not cancelled.
  bool reusable() const;
  // Gives back what an idle connection does not need (the body chunk, the parser, buffers) and
  // its client: the client's pool holds it, and a reference back would keep both alive forever.
  void idle(Clock::time_point now);
  // Out of the pool, for the next request of `client`.
  void resume(std::shared_ptr<HttpClient> client) { client_ = std::move(client); }
  Clock::time_point idle_since() const { return idle_since_; }

  // Writes the request on the open connection and reads the response header. `nothing_back`
  // says whether the failure came before any byte of an answer (a closed idle connection).
  asio::awaitable<Error> send(const Request& request, const std::optional<ProxyUrl>& proxy,
                              bool& nothing_back);
  void reset_parser();
  void drop_connection();
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
  std::optional<beast::http::response_parser<beast::http::buffer_body>> parser_;
  std::unique_ptr<std::array<char, 64 * 1024>> chunk_;
  std::string authority_;  // host:port, for messages
  int status_ = 0;
  std::string content_type_;
  std::optional<Duration> retry_after_;
  bool done_ = false;
  bool cancelled_ = false;
  bool resolve_timed_out_ = false;
  Clock::time_point idle_since_{};
};

}  // namespace mx::net
