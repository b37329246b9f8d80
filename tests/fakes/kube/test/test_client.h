// A deliberately small HTTPS client for the fake's self-tests: it verifies the server against
// the fake's CA like a real client would, and exposes raw chunk boundaries of watch streams.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>

namespace mx::testing::client {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

inline std::shared_ptr<ssl::context> make_client_context(const std::string& ca_pem) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  if (!ca_pem.empty()) ctx->add_certificate_authority(net::buffer(ca_pem));
  ctx->set_verify_mode(ssl::verify_peer);
  return ctx;
}

// Connects and completes a verified TLS handshake, checking the certificate against `host`
// (an IP address or a DNS name). Throws boost::system::system_error when verification fails.
inline void connect_verified(beast::ssl_stream<beast::tcp_stream>& stream, uint16_t port,
                             const std::string& host) {
  X509_VERIFY_PARAM* param = SSL_get0_param(stream.native_handle());
  boost::system::error_code ec;
  net::ip::make_address(host, ec);
  if (!ec) {
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  } else {
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
    SSL_set_tlsext_host_name(stream.native_handle(), host.c_str());
  }
  beast::get_lowest_layer(stream).connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  stream.handshake(ssl::stream_base::client);
}

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;
  std::string body;
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};

// One keep-alive connection; requests are synchronous.
class Connection {
 public:
  Connection(uint16_t port, const std::string& ca_pem, const std::string& host = "127.0.0.1")
      : ctx_(make_client_context(ca_pem)), stream_(ioc_, *ctx_) {
    connect_verified(stream_, port, host);
  }

  Response request(const std::string& target, const std::optional<std::string>& token,
                   http::verb method = http::verb::get) {
    http::request<http::empty_body> req(method, target, 11);
    req.set(http::field::host, "127.0.0.1");
    if (token) req.set(http::field::authorization, "Bearer " + *token);
    req.keep_alive(true);
    http::write(stream_, req);
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    http::read(stream_, buffer_, parser);
    Response out;
    out.status = parser.get().result_int();
    for (const auto& field : parser.get()) {
      out.headers[std::string(field.name_string())] = std::string(field.value());
    }
    out.body = parser.get().body();
    return out;
  }

 private:
  net::io_context ioc_;
  std::shared_ptr<ssl::context> ctx_;
  beast::ssl_stream<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
};

// Reads a watch stream on its own thread, splitting it into lines and recording the size of
// every HTTP chunk as it arrived.
class WatchStream {
 public:
  WatchStream(uint16_t port, const std::string& ca_pem, const std::string& target,
              const std::string& token)
      : ctx_(make_client_context(ca_pem)), stream_(ioc_, *ctx_) {
    connect_verified(stream_, port, "127.0.0.1");
    http::request<http::empty_body> req(http::verb::get, target, 11);
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::authorization, "Bearer " + token);
    http::write(stream_, req);
    parser_.body_limit(boost::none);
    chunk_header_cb_ = [this](std::uint64_t size, beast::string_view, beast::error_code&) {
      std::lock_guard lock(mu_);
      chunk_sizes_.push_back(size);
    };
    chunk_body_cb_ = [this](std::uint64_t, beast::string_view body, beast::error_code&) {
      on_bytes(body);
      return body.size();
    };
    parser_.on_chunk_header(chunk_header_cb_);
    parser_.on_chunk_body(chunk_body_cb_);
    read_more();
    thread_ = std::thread([this] { ioc_.run(); });
  }

  ~WatchStream() {
    net::post(ioc_, [this] { beast::get_lowest_layer(stream_).close(); });
    thread_.join();
  }

  // Waits until `pred(lines)` holds (lines seen so far) or the deadline passes.
  template <typename Pred>
  bool wait(Pred pred, std::chrono::seconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return pred(lines_, finished_); });
  }
  bool wait_lines(std::size_t n) {
    return wait([n](const auto& lines, bool) { return lines.size() >= n; });
  }
  bool wait_finished() {
    return wait([](const auto&, bool finished) { return finished; });
  }

  std::vector<std::string> lines() const {
    std::lock_guard lock(mu_);
    return lines_;
  }
  std::vector<nlohmann::json> events() const {
    std::vector<nlohmann::json> out;
    for (const auto& line : lines()) out.push_back(nlohmann::json::parse(line, nullptr, false));
    return out;
  }
  std::vector<std::uint64_t> chunk_sizes() const {
    std::lock_guard lock(mu_);
    return chunk_sizes_;
  }
  int status() const {
    std::lock_guard lock(mu_);
    return status_;
  }
  // True when the body ended with the terminating chunk (not a dropped connection).
  bool ended_cleanly() const {
    std::lock_guard lock(mu_);
    return clean_end_;
  }
  std::map<std::string, std::string> headers() const {
    std::lock_guard lock(mu_);
    return headers_;
  }

 private:
  void read_more() {
    http::async_read_some(stream_, buffer_, parser_, [this](beast::error_code ec, std::size_t) {
      {
        std::lock_guard lock(mu_);
        if (parser_.is_header_done() && status_ == 0) {
          status_ = parser_.get().result_int();
          for (const auto& field : parser_.get()) {
            headers_[std::string(field.name_string())] = std::string(field.value());
          }
        }
      }
      if (!ec && !parser_.is_done()) return read_more();
      std::lock_guard lock(mu_);
      if (!ec && parser_.is_done()) {
        clean_end_ = true;
        // A non-chunked body (an HTTP error) lands in the string body instead.
        if (!parser_.get().body().empty()) lines_.push_back(parser_.get().body());
      }
      finished_ = true;
      cv_.notify_all();
    });
  }

  void on_bytes(beast::string_view bytes) {
    std::lock_guard lock(mu_);
    partial_.append(bytes.data(), bytes.size());
    std::size_t newline;
    while ((newline = partial_.find('\n')) != std::string::npos) {
      lines_.push_back(partial_.substr(0, newline));
      partial_.erase(0, newline + 1);
    }
    cv_.notify_all();
  }

  net::io_context ioc_;
  std::shared_ptr<ssl::context> ctx_;
  beast::ssl_stream<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  http::response_parser<http::string_body> parser_;
  std::function<void(std::uint64_t, beast::string_view, beast::error_code&)> chunk_header_cb_;
  std::function<std::size_t(std::uint64_t, beast::string_view, beast::error_code&)> chunk_body_cb_;
  std::thread thread_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
  std::vector<std::uint64_t> chunk_sizes_;
  std::string partial_;
  std::map<std::string, std::string> headers_;
  int status_ = 0;
  bool finished_ = false;
  bool clean_end_ = false;
};

// Polls `pred` until it holds or a generous deadline passes (never a bare sleep in a test).
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

}  // namespace mx::testing::client
