// Boost.Beast HTTP/1.1 server on the shared io_context: keep-alive, a short header deadline
// separate from the body/idle/write timeouts, a connection cap bounded by the fd limit that evicts
// the connection idle or incomplete the longest instead of refusing a newcomer, and a request-size
// cap. With a web config file (config/web_config.h): TLS (re-read when the files change), basic
// auth, rate limit and security headers. Routing lives in routes.h; this file only speaks HTTP.
// Connections are accepted on a thread of the server's own and served on the io_context.
//
// The parts: session.h (one connection), admission.h (accepting, the cap and eviction),
// web_config_watcher.h (loading and re-loading the web config file), listen_address.h and
// server_metrics.h (the self metrics, in the exporter's prometheus-cpp registry).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "config/config.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace mx {

struct HttpRequest {
  std::string method;  // as sent ("GET", "HEAD", ...)
  std::string target;  // path + query
  std::string accept;
  std::string accept_encoding;
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  // The body as shared pieces: a scrape sends the snapshot's bytes without copying them.
  std::vector<std::shared_ptr<const std::string>> body;

  static HttpResponse text(unsigned status, std::string body);
  std::uint64_t body_size() const;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

class HttpServer {
 public:
  // The server's self metrics are registered in `registry`, which outlives the server and the
  // io_context's handlers.
  HttpServer(boost::asio::io_context& io, WebConfig config, HttpHandler handler,
             prometheus::Registry& registry);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Loads the web config file (if any; ConfigError when invalid), binds and starts accepting.
  // Throws boost::system::system_error when the address is taken.
  void start();
  // Re-reads the web config file (SIGHUP). An invalid file is logged and the running one kept.
  // The listener stays open; new connections use the new settings. No-op without a file.
  void reload_web_config();
  // The connection cap after the fd limit is applied (known after start()).
  std::size_t max_connections() const;
  // Closes the listener; idle keep-alive connections close now, requests in flight finish.
  void stop();
  boost::asio::ip::tcp::endpoint local_endpoint() const;
  std::size_t active_connections() const;

  struct State;  // http/server_state.h

 private:
  std::shared_ptr<State> state_;
  std::unique_ptr<boost::asio::thread_pool> bcrypt_pool_;  // bcrypt off the io_context thread
  std::thread accept_thread_;  // accepts connections (State::accept_io says why)
};

}  // namespace mx
