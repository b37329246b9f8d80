#include "sources/kubernetes/api_client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "common/log.h"

#ifndef MX_VERSION
#define MX_VERSION "dev"
#endif

namespace mx::kube {
namespace http = beast::http;
using asio::redirect_error;
using asio::use_awaitable;

std::string_view ApiError::error_type() const {
  switch (kind) {
    case ErrorKind::timeout:
      return "timeout";
    case ErrorKind::connection:
      return "connection";
    case ErrorKind::parse:
      return "parse";
    case ErrorKind::http:
      if (status == 401 || status == 403) return "auth";
      if (status >= 500) return "http_5xx";
      return "http_4xx";
    case ErrorKind::none:
    case ErrorKind::cancelled:
      break;
  }
  return "connection";
}

// --- TokenSource -------------------------------------------------------------------------------

TokenSource::TokenSource(std::string static_token, std::string file, Duration reload_interval)
    : token_(std::move(static_token)), file_(std::move(file)), reload_interval_(reload_interval) {
  if (!file_.empty()) reload();
}

const std::string& TokenSource::current() {
  if (!file_.empty() && std::chrono::steady_clock::now() - loaded_at_ >= reload_interval_) reload();
  return token_;
}

bool TokenSource::reload() {
  if (file_.empty()) return false;
  loaded_at_ = std::chrono::steady_clock::now();
  auto text = read_file(file_, 64 * 1024);
  if (!text) {
    // Keep the last good token: a rotation briefly replaces the file's symlink target.
    if (!warned_)
      log::warn("cannot read the Kubernetes token file; keeping the last token", {{"file", file_}});
    warned_ = true;
    return false;
  }
  warned_ = false;
  std::string token = *text;
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) {
    token.pop_back();
  }
  if (token == token_) return false;
  token_ = std::move(token);
  return true;
}

// --- ApiClient ---------------------------------------------------------------------------------

namespace {

std::string ssl_error_text(const boost::system::error_code& ec) {
  return ec.message();
}

bool is_ip_address(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

ApiClient::ApiClient(asio::any_io_executor executor, ClusterAccess access,
                     Duration token_reload_interval)
    : executor_(std::move(executor)),
      access_(std::move(access)),
      tokens_(access_.token, access_.token_file, token_reload_interval) {
  const auto& server = access_.server;
  const bool default_port =
      (server.tls && server.port == "443") || (!server.tls && server.port == "80");
  const bool ipv6 = server.host.find(':') != std::string::npos;
  host_header_ = ipv6 ? "[" + server.host + "]" : server.host;
  if (!default_port) host_header_ += ":" + server.port;

  if (!server.tls) return;
  ssl_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ssl_->native_handle(), TLS1_2_VERSION);
  boost::system::error_code ec;
  if (access_.insecure_skip_tls_verify) {
    ssl_->set_verify_mode(asio::ssl::verify_none);
  } else {
    ssl_->set_verify_mode(asio::ssl::verify_peer);
    if (!access_.ca_pem.empty()) {
      ssl_->add_certificate_authority(asio::buffer(access_.ca_pem), ec);
      if (ec)
        throw AccessError(access_.origin +
                          ": the certificate authority data is not a PEM certificate (" +
                          ssl_error_text(ec) + ")");
    } else if (!access_.ca_file.empty()) {
      ssl_->load_verify_file(access_.ca_file, ec);
      if (ec)
        throw AccessError(access_.origin + ": cannot load the certificate authority file " +
                          access_.ca_file + " (" + ssl_error_text(ec) + ")");
    } else {
      ssl_->set_default_verify_paths(ec);
      if (ec)
        throw AccessError(access_.origin + ": cannot load the system certificate authorities (" +
                          ssl_error_text(ec) + ")");
    }
  }
  if (!access_.client_cert_pem.empty()) {
    ssl_->use_certificate_chain(asio::buffer(access_.client_cert_pem), ec);
    if (ec)
      throw AccessError(access_.origin + ": the client certificate is not usable (" +
                        ssl_error_text(ec) + ")");
    ssl_->use_private_key(asio::buffer(access_.client_key_pem), asio::ssl::context::pem, ec);
    if (ec)
      throw AccessError(access_.origin + ": the client key is not usable (" + ssl_error_text(ec) +
                        ")");
  }
}

std::shared_ptr<HttpExchange> ApiClient::exchange() {
  return std::make_shared<HttpExchange>(shared_from_this());
}

// --- HttpExchange ------------------------------------------------------------------------------

HttpExchange::HttpExchange(std::shared_ptr<ApiClient> client)
    : client_(std::move(client)), resolver_(client_->executor_) {
  if (client_->ssl_) {
    tls_ =
        std::make_unique<beast::ssl_stream<beast::tcp_stream>>(client_->executor_, *client_->ssl_);
  } else {
    plain_ = std::make_unique<beast::tcp_stream>(client_->executor_);
  }
  parser_.header_limit(64 * 1024);
  parser_.body_limit(boost::none);  // callers bound what they keep
}

beast::tcp_stream& HttpExchange::tcp() {
  return tls_ ? beast::get_lowest_layer(*tls_) : *plain_;
}

void HttpExchange::cancel() {
  cancelled_ = true;
  resolver_.cancel();
  boost::system::error_code ignored;
  tcp().socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  tcp().socket().close(ignored);
}

ApiError HttpExchange::map_error(const boost::system::error_code& ec, std::string_view step) const {
  ApiError e;
  if (cancelled_ || ec == asio::error::operation_aborted) {
    e.kind = ErrorKind::cancelled;
    e.message = "cancelled";
    return e;
  }
  if (ec == beast::error::timeout) {
    e.kind = ErrorKind::timeout;
    e.message = std::string(step) + " timed out";
    return e;
  }
  const boost::system::error_code http_end = http::error::end_of_stream;
  if (ec.category() == http_end.category() && ec != http::error::end_of_stream &&
      ec != http::error::partial_message && ec != http::error::body_limit) {
    e.kind = ErrorKind::parse;
    e.message = std::string(step) + ": malformed HTTP response (" + ec.message() + ")";
    return e;
  }
  e.kind = ErrorKind::connection;
  e.message = std::string(step) + " failed: " + ec.message();
  return e;
}

asio::awaitable<ApiError> HttpExchange::open(std::string target, Duration timeout) {
  const auto& server = client_->access_.server;
  boost::system::error_code ec;
  const auto deadline = Clock::now() + timeout;

  // Resolution has no built-in timeout; the connect deadline below bounds the rest.
  auto endpoints =
      co_await resolver_.async_resolve(server.host, server.port, redirect_error(use_awaitable, ec));
  if (ec || cancelled_) co_return map_error(ec, "resolve " + server.host);

  tcp().expires_at(deadline);
  co_await tcp().async_connect(endpoints, redirect_error(use_awaitable, ec));
  if (ec || cancelled_) co_return map_error(ec, "connect to " + client_->host_header_);

  if (tls_) {
    const std::string& name =
        client_->access_.tls_server_name.empty() ? server.host : client_->access_.tls_server_name;
    SSL* ssl = tls_->native_handle();
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (is_ip_address(name)) {
      // Certificates for IP addresses carry them as iPAddress SANs; SNI must not be an IP.
      X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, name.c_str());
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
    }
    co_await tls_->async_handshake(asio::ssl::stream_base::client,
                                   redirect_error(use_awaitable, ec));
    if (ec || cancelled_) co_return map_error(ec, "TLS handshake with " + client_->host_header_);
  }

  http::request<http::empty_body> request{http::verb::get, server.base_path + target, 11};
  request.set(http::field::host, client_->host_header_);
  request.set(http::field::user_agent, "modal-exporter/" MX_VERSION);
  request.set(http::field::accept, "application/json");
  const std::string& token = client_->tokens_.current();
  token_used_ = token;
  if (!token.empty()) request.set(http::field::authorization, "Bearer " + token);

  if (tls_) {
    co_await http::async_write(*tls_, request, redirect_error(use_awaitable, ec));
  } else {
    co_await http::async_write(*plain_, request, redirect_error(use_awaitable, ec));
  }
  if (ec || cancelled_) co_return map_error(ec, "send request");

  if (tls_) {
    co_await http::async_read_header(*tls_, buffer_, parser_, redirect_error(use_awaitable, ec));
  } else {
    co_await http::async_read_header(*plain_, buffer_, parser_, redirect_error(use_awaitable, ec));
  }
  if (ec || cancelled_) co_return map_error(ec, "read response header");

  status_ = static_cast<int>(parser_.get().result_int());
  const auto retry = parser_.get()[http::field::retry_after];
  if (!retry.empty() && retry.size() < 10) {
    int seconds = 0;
    bool digits = true;
    for (char c : retry) {
      if (c < '0' || c > '9')
        digits = false;
      else
        seconds = seconds * 10 + (c - '0');
    }
    if (digits) retry_after_ = std::chrono::seconds(seconds);
  }
  done_ = parser_.is_done();
  co_return ApiError{};
}

asio::awaitable<ApiError> HttpExchange::read_some(std::string& out, Clock::time_point deadline) {
  if (done_) co_return ApiError{};
  if (!chunk_) chunk_ = std::make_unique<std::array<char, 64 * 1024>>();
  parser_.get().body().data = chunk_->data();
  parser_.get().body().size = chunk_->size();
  boost::system::error_code ec;
  tcp().expires_at(deadline);
  if (tls_) {
    co_await http::async_read_some(*tls_, buffer_, parser_, redirect_error(use_awaitable, ec));
  } else {
    co_await http::async_read_some(*plain_, buffer_, parser_, redirect_error(use_awaitable, ec));
  }
  if (ec == http::error::need_buffer) ec = {};
  if (cancelled_) co_return map_error(asio::error::operation_aborted, "read");
  const std::size_t n = chunk_->size() - parser_.get().body().size;
  out.append(chunk_->data(), n);
  if (ec) co_return map_error(ec, "read response body");
  done_ = parser_.is_done();
  co_return ApiError{};
}

asio::awaitable<ApiError> HttpExchange::read_body(std::string& out, std::size_t max_bytes,
                                                  Duration timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!done_) {
    ApiError e = co_await read_some(out, deadline);
    if (e) co_return e;
    if (out.size() > max_bytes) {
      ApiError too_big;
      too_big.kind = ErrorKind::parse;
      too_big.message = "response body exceeds " + std::to_string(max_bytes) + " bytes";
      co_return too_big;
    }
  }
  co_return ApiError{};
}

}  // namespace mx::kube
