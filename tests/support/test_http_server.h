// A tiny HTTP(S) server for the HTTP client and scrape source tests: 127.0.0.1 on an ephemeral
// port, on the test's io_context, answering each request from a handler (status, body, optional
// delay).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "support/io.h"

namespace mx::testing {

struct ServedResponse {
  unsigned status = 200;
  std::string content_type = "text/plain; version=0.0.4; charset=utf-8";
  std::string body;
  std::chrono::milliseconds delay{0};  // wait this long before answering
};

class TestHttpServer {
 public:
  using Handler = std::function<ServedResponse(const std::string& target)>;

  // With `tls`, the server speaks HTTPS using that (server) context.
  TestHttpServer(boost::asio::io_context& io, Handler handler,
                 std::shared_ptr<boost::asio::ssl::context> tls = nullptr);
  ~TestHttpServer();

  unsigned short port() const;
  // "http://127.0.0.1:<port><path>" (https:// with TLS).
  std::string url(std::string_view path) const;
  // The most requests this server held unanswered at once.
  int max_in_flight() const;
  // With keep-alive, a connection stays open for the next request when the client asks for it
  // (HTTP/1.1's default); without (the default), every answer says "Connection: close".
  void set_keep_alive(bool keep_alive);
  int connections_accepted() const;
  // Closes the open connections (as a server does with idle ones), and keeps listening.
  void close_connections();
  // Stops accepting and drops delayed answers, so the io_context can run dry.
  void stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// A self-signed certificate for IP 127.0.0.1 (PEM) and its key, made fresh for each test run.
struct TestCertificate {
  std::string cert_pem;
  std::string key_pem;
};
TestCertificate make_test_certificate();

// A server TLS context using `cert`, and a client context trusting only `cert`.
std::shared_ptr<boost::asio::ssl::context> make_server_tls(const TestCertificate& cert);
std::shared_ptr<boost::asio::ssl::context> make_client_tls_trusting(const TestCertificate& cert);

}  // namespace mx::testing
