// A blocking HTTP/1.1 client for tests: sends raw bytes, parses the response with Beast.
#pragma once

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <map>
#include <string>

namespace mx::testing {

struct TestResponse {
  unsigned status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  bool keep_alive = false;
};

// One connection; several requests may be sent on it (keep-alive).
class TestConnection {
 public:
  explicit TestConnection(std::uint16_t port) : socket_(io_) {
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  }

  void send_raw(const std::string& bytes) {
    boost::asio::write(socket_, boost::asio::buffer(bytes));
  }

  TestResponse read_response(bool head = false) {
    namespace http = boost::beast::http;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1ULL << 30);
    parser.skip(head);
    http::read(socket_, buffer_, parser);
    TestResponse r;
    const auto& res = parser.get();
    r.status = res.result_int();
    for (const auto& field : res) {
      std::string name(field.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = std::string(field.value());
    }
    r.body = res.body();
    r.keep_alive = res.keep_alive();
    return r;
  }

  TestResponse get(const std::string& target,
                   const std::map<std::string, std::string>& headers = {},
                   const std::string& method = "GET") {
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
    req += "\r\n";
    send_raw(req);
    return read_response(method == "HEAD");
  }

  // True when the server closed the connection (read returns EOF or reset).
  bool closed_by_peer() {
    char c;
    boost::system::error_code ec;
    socket_.read_some(boost::asio::buffer(&c, 1), ec);
    return ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset;
  }

  boost::asio::ip::tcp::socket& socket() { return socket_; }

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
};

inline TestResponse http_get(std::uint16_t port, const std::string& target,
                             const std::map<std::string, std::string>& headers = {},
                             const std::string& method = "GET") {
  TestConnection c(port);
  return c.get(target, headers, method);
}

}  // namespace mx::testing
