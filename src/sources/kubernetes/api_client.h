// A small asynchronous HTTP(S) client for the Kubernetes API on Boost.Beast + Asio + OpenSSL.
// One request per connection (LIST pages and WATCH streams are long or rare enough that
// connection reuse buys nothing). Everything runs on one io_context thread; no locks.
#pragma once

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "common/duration.h"
#include "sources/kubernetes/cluster_access.h"

namespace mx::kube {

namespace asio = boost::asio;
namespace beast = boost::beast;

enum class ErrorKind { none, timeout, connection, http, parse, cancelled };

// The outcome of one step of a request. `status` is the HTTP status (or the Status code of a
// watch ERROR event); `message` is safe to log (it never holds a credential).
struct ApiError {
  ErrorKind kind = ErrorKind::none;
  int status = 0;
  std::string message;
  std::optional<Duration> retry_after;

  explicit operator bool() const { return kind != ErrorKind::none; }
  // The error_type label of modal_operator_errors_total (METRICS.md).
  std::string_view error_type() const;
};

// The bearer token: static, or a file re-read every `reload_interval` (and on demand after a 401).
class TokenSource {
 public:
  TokenSource(std::string static_token, std::string file, Duration reload_interval);
  const std::string& current();
  // Re-reads the file now; true when the token changed.
  bool reload();
  bool from_file() const { return !file_.empty(); }

 private:
  std::string token_;
  std::string file_;
  Duration reload_interval_;
  std::chrono::steady_clock::time_point loaded_at_{};
  bool warned_ = false;
};

class HttpExchange;

class ApiClient : public std::enable_shared_from_this<ApiClient> {
 public:
  // Throws AccessError when the TLS material (CA, client certificate or key) is unusable.
  ApiClient(asio::any_io_executor executor, ClusterAccess access, Duration token_reload_interval);

  const ClusterAccess& access() const { return access_; }
  const asio::any_io_executor& executor() const { return executor_; }
  TokenSource& tokens() { return tokens_; }
  // A new request on a new connection.
  std::shared_ptr<HttpExchange> exchange();

 private:
  friend class HttpExchange;
  asio::any_io_executor executor_;
  ClusterAccess access_;
  TokenSource tokens_;
  std::unique_ptr<asio::ssl::context> ssl_;  // null for http:// servers
  std::string host_header_;
};

class HttpExchange {
 public:
  using Clock = std::chrono::steady_clock;

  explicit HttpExchange(std::shared_ptr<ApiClient> client);
  HttpExchange(const HttpExchange&) = delete;
  HttpExchange& operator=(const HttpExchange&) = delete;

  // Resolves, connects, handshakes, sends `GET target` and reads the response header, all
  // within `timeout`.
  asio::awaitable<ApiError> open(std::string target, Duration timeout);
  int status() const { return status_; }
  // Retry-After in seconds (HTTP dates are not used by the API server).
  std::optional<Duration> retry_after() const { return retry_after_; }

  // Appends the next body bytes to `out`; `done()` once the body ended. Times out at `deadline`.
  asio::awaitable<ApiError> read_some(std::string& out, Clock::time_point deadline);
  // The whole body, at most `max_bytes`.
  asio::awaitable<ApiError> read_body(std::string& out, std::size_t max_bytes, Duration timeout);
  bool done() const { return done_; }
  // Whether this request carried `token` (after a 401: has the token changed since?).
  bool sent_with(const std::string& token) const { return token == token_used_; }

  // Closes the connection: pending operations end with ErrorKind::cancelled.
  void cancel();

 private:
  ApiError map_error(const boost::system::error_code& ec, std::string_view step) const;
  beast::tcp_stream& tcp();

  std::shared_ptr<ApiClient> client_;
  asio::ip::tcp::resolver resolver_;
  std::unique_ptr<beast::tcp_stream> plain_;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls_;
  beast::flat_buffer buffer_;
  beast::http::response_parser<beast::http::buffer_body> parser_;
  std::unique_ptr<std::array<char, 64 * 1024>> chunk_;
  std::string token_used_;
  int status_ = 0;
  std::optional<Duration> retry_after_;
  bool done_ = false;
  bool cancelled_ = false;
};

}  // namespace mx::kube
