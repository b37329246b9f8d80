// Boost.Beast HTTP/1.1 server on the shared io_context: keep-alive, header/body read timeout,
// idle timeout, write timeout, connection cap and request-size cap. Routing lives in routes.h;
// this file only speaks HTTP.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"

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

// "HOST:PORT", ":PORT" (all addresses), "[v6]:PORT". Throws ConfigError when malformed.
boost::asio::ip::tcp::endpoint parse_listen_address(const std::string& address);

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, WebConfig config, HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts accepting. Throws boost::system::system_error when the address is taken.
  void start();
  // Closes the listener; idle keep-alive connections close now, requests in flight finish.
  void stop();
  boost::asio::ip::tcp::endpoint local_endpoint() const;
  std::size_t active_connections() const;

  struct State;  // shared with sessions, which may outlive a stopped server briefly

 private:
  void accept();
  boost::asio::io_context& io_;
  std::shared_ptr<State> state_;
};

}  // namespace mx
