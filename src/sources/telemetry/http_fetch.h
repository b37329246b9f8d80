// One small asynchronous HTTP(S) GET client (Boost.Beast), shared by the telemetry and upstream
// sources. Each fetch is one connection with one overall deadline and a body size cap; the
// completion handler runs exactly once, on the io_context, never inline.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/duration.h"

namespace mx {

struct HttpUrl {
  bool tls = false;
  std::string host;         // without IPv6 brackets
  std::string port;         // "80"/"443" when the URL names none
  std::string target;       // path + query, "/" when empty
  std::string host_header;  // as it goes into Host:
};

// Parses an http:// or https:// URL. nullopt with `error` set when it is anything else.
// User info (user:pass@) is refused: credentials do not belong in annotations.
std::optional<HttpUrl> parse_http_url(std::string_view url, std::string* error);

// The URL without user info and query string, safe to log (tokens travel in queries).
std::string redact_url(std::string_view url);

enum class FetchOutcome {
  ok,          // 2xx, whole body read
  timeout,     // the deadline passed before the body was complete
  connection,  // resolve, connect, TLS (incl. certificate verification), or a broken stream
  http_4xx,    // also redirects and other non-2xx/5xx statuses: the URL needs fixing
  http_5xx,
  too_large,  // body (or header) over the cap
  bad_url,
  cancelled,  // cancel_all() or the fetcher went away
};

// The error_type of modal_operator_errors_total for an outcome (METRICS.md): timeout,
// connection, http_4xx, http_5xx, parse. A body over the cap cannot be parsed: "parse".
std::string_view error_type(FetchOutcome outcome);

struct FetchRequest {
  std::string url;
  Duration timeout = std::chrono::seconds(5);
  std::size_t max_body_bytes = 16 * 1024 * 1024;
  std::string accept = "text/plain;version=0.0.4";
};

struct FetchResult {
  FetchOutcome outcome = FetchOutcome::connection;
  unsigned status = 0;  // HTTP status when a response header arrived
  std::string content_type;
  std::string body;    // only for ok
  std::string detail;  // why it failed, for logs; never contains the URL's query
  bool ok() const { return outcome == FetchOutcome::ok; }
};

class FetchSession;

class HttpFetcher {
 public:
  // https:// verifies the peer against the system's CA store and the URL's host name.
  explicit HttpFetcher(boost::asio::io_context& io);
  // Tests (and callers with a private CA) bring their own TLS context.
  HttpFetcher(boost::asio::io_context& io, std::shared_ptr<boost::asio::ssl::context> tls);
  ~HttpFetcher();
  HttpFetcher(const HttpFetcher&) = delete;
  HttpFetcher& operator=(const HttpFetcher&) = delete;

  void fetch(const FetchRequest& request, std::function<void(FetchResult)> done);
  // Ends every fetch in flight; their handlers run with `cancelled`.
  void cancel_all();

 private:
  boost::asio::io_context& io_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  std::vector<std::weak_ptr<FetchSession>> sessions_;
};

// The system CA store, verify_peer. Throws boost::system::system_error if OpenSSL fails.
std::shared_ptr<boost::asio::ssl::context> make_client_tls_context();

}  // namespace mx
