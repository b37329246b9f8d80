#include "sources/telemetry/http_fetch.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <type_traits>

namespace mx {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

bool has_control_or_space(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

}  // namespace

std::optional<HttpUrl> parse_http_url(std::string_view url, std::string* error) {
  auto fail = [&](std::string why) -> std::optional<HttpUrl> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  HttpUrl out;
  std::string_view rest;
  if (iequals_prefix(url, "http://")) {
    rest = url.substr(7);
  } else if (iequals_prefix(url, "https://")) {
    out.tls = true;
    rest = url.substr(8);
  } else {
    return fail("URL must start with http:// or https://");
  }
  const std::size_t authority_end = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, authority_end);
  std::string_view target =
      authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);
  if (const auto hash = target.find('#'); hash != std::string_view::npos) {
    target = target.substr(0, hash);  // a fragment is never sent
  }
  if (authority.find('@') != std::string_view::npos) {
    return fail("credentials in the URL are not supported");
  }
  if (has_control_or_space(authority) || has_control_or_space(target)) {
    return fail("URL contains spaces or control characters");
  }
  std::string_view host;
  std::string_view port;
  if (!authority.empty() && authority[0] == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return fail("unterminated IPv6 address in URL");
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return fail("unexpected text after the IPv6 address in URL");
      port = after.substr(1);
    }
  } else {
    const auto colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (host.empty()) return fail("URL has no host");
  if (port.empty() && authority.find(':') != std::string_view::npos && authority[0] != '[') {
    return fail("URL has an empty port");
  }
  if (!port.empty()) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || end != port.data() + port.size() || value == 0 || value > 65535) {
      return fail("invalid port in URL");
    }
  }
  out.host.assign(host);
  out.port = port.empty() ? (out.tls ? "443" : "80") : std::string(port);
  out.host_header.assign(authority);
  if (target.empty() || target[0] != '/') {
    out.target = "/";
    out.target.append(target);  // "?q" without a path
  } else {
    out.target.assign(target);
  }
  return out;
}

std::string redact_url(std::string_view url) {
  const auto scheme_end = url.find("://");
  const std::size_t authority_start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  std::string_view head = url.substr(0, authority_start);
  std::string_view rest = url.substr(authority_start);
  rest = rest.substr(0, rest.find_first_of("?#"));
  const std::size_t authority_end = rest.find('/');
  const std::string_view authority = rest.substr(0, authority_end);
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    rest = rest.substr(at + 1);
  }
  std::string out(head);
  out.append(rest);
  return out;
}

std::string_view error_type(FetchOutcome outcome) {
  switch (outcome) {
    case FetchOutcome::timeout:
      return "timeout";
    case FetchOutcome::http_4xx:
      return "http_4xx";
    case FetchOutcome::http_5xx:
      return "http_5xx";
    case FetchOutcome::too_large:
      return "parse";
    case FetchOutcome::ok:
    case FetchOutcome::connection:
    case FetchOutcome::bad_url:
    case FetchOutcome::cancelled:
      break;
  }
  return "connection";
}

std::shared_ptr<asio::ssl::context> make_client_tls_context() {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_default_verify_paths();
  ctx->set_verify_mode(asio::ssl::verify_peer);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  return ctx;
}

class FetchSession {
 public:
  virtual ~FetchSession() = default;
  virtual void cancel() = 0;
};

namespace {

template <bool Tls>
class Session final : public FetchSession, public std::enable_shared_from_this<Session<Tls>> {
  using Stream = std::conditional_t<Tls, beast::ssl_stream<beast::tcp_stream>, beast::tcp_stream>;

 public:
  Session(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls, HttpUrl url,
          const FetchRequest& request, std::function<void(FetchResult)> done)
      : io_(io),
        tls_(std::move(tls)),
        resolver_(io),
        deadline_(io),
        url_(std::move(url)),
        timeout_(request.timeout),
        max_body_(request.max_body_bytes),
        done_(std::move(done)) {
    if constexpr (Tls) {
      stream_.emplace(io, *tls_);
    } else {
      stream_.emplace(io);
    }
    request_.method(http::verb::get);
    request_.target(url_.target);
    request_.version(11);
    request_.set(http::field::host, url_.host_header);
    request_.set(http::field::user_agent, "modal-exporter");
    request_.set(http::field::accept, request.accept);
    request_.set(http::field::connection, "close");
  }

  void start() {
    auto self = this->shared_from_this();
    deadline_.expires_after(timeout_);
    deadline_.async_wait([self](beast::error_code ec) {
      if (!ec) {
        self->fail(FetchOutcome::timeout,
                   "no complete response within " + format_duration(self->timeout_));
      }
    });
    resolver_.async_resolve(url_.host, url_.port,
                            [self](beast::error_code ec, tcp::resolver::results_type results) {
                              self->on_resolve(ec, std::move(results));
                            });
  }

  void cancel() override { fail(FetchOutcome::cancelled, "cancelled"); }

 private:
  void on_resolve(beast::error_code ec, tcp::resolver::results_type results) {
    if (finished_) return;
    if (ec) return fail(FetchOutcome::connection, "resolve " + url_.host + ": " + ec.message());
    auto self = this->shared_from_this();
    beast::get_lowest_layer(*stream_).async_connect(
        results, [self](beast::error_code ec, const tcp::endpoint&) { self->on_connect(ec); });
  }

  void on_connect(beast::error_code ec) {
    if (finished_) return;
    if (ec) return fail(FetchOutcome::connection, "connect: " + ec.message());
    auto self = this->shared_from_this();
    if constexpr (Tls) {
      beast::error_code addr_ec;
      asio::ip::make_address(url_.host, addr_ec);
      // SNI carries names only, never addresses (RFC 6066).
      if (addr_ec && !SSL_set_tlsext_host_name(stream_->native_handle(), url_.host.c_str())) {
        return fail(FetchOutcome::connection, "TLS: cannot set server name");
      }
      stream_->set_verify_mode(asio::ssl::verify_peer);
      stream_->set_verify_callback(asio::ssl::host_name_verification(url_.host));
      stream_->async_handshake(asio::ssl::stream_base::client,
                               [self](beast::error_code ec) { self->on_handshake(ec); });
    } else {
      send();
    }
  }

  void on_handshake(beast::error_code ec) {
    if (finished_) return;
    if (ec) return fail(FetchOutcome::connection, "TLS handshake: " + ec.message());
    send();
  }

  void send() {
    auto self = this->shared_from_this();
    http::async_write(*stream_, request_,
                      [self](beast::error_code ec, std::size_t) { self->on_write(ec); });
  }

  void on_write(beast::error_code ec) {
    if (finished_) return;
    if (ec) return fail(FetchOutcome::connection, "send request: " + ec.message());
    parser_.emplace();
    parser_->header_limit(64 * 1024);
    parser_->body_limit(max_body_);
    auto self = this->shared_from_this();
    http::async_read(*stream_, buffer_, *parser_,
                     [self](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (finished_) return;
    if (ec == asio::ssl::error::stream_truncated && parser_->is_header_done()) {
      // A TLS peer that closes without close_notify ends a body delimited by EOF this way.
      beast::error_code eof_ec;
      parser_->put_eof(eof_ec);
      if (!eof_ec && parser_->is_done()) ec = {};
    }
    if (ec == http::error::body_limit) {
      return fail(FetchOutcome::too_large,
                  "response body larger than " + std::to_string(max_body_) + " bytes");
    }
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      return fail(FetchOutcome::too_large, "response header too large");
    }
    if (ec) return fail(FetchOutcome::connection, "read response: " + ec.message());

    auto response = parser_->release();
    FetchResult result;
    result.status = response.result_int();
    result.content_type = std::string(response[http::field::content_type]);
    if (result.status >= 200 && result.status < 300) {
      result.outcome = FetchOutcome::ok;
      result.body = std::move(response.body());
    } else if (result.status >= 500 && result.status < 600) {
      result.outcome = FetchOutcome::http_5xx;
      result.detail = "HTTP status " + std::to_string(result.status);
    } else {
      result.outcome = FetchOutcome::http_4xx;
      result.detail = "HTTP status " + std::to_string(result.status);
      if (result.status >= 300 && result.status < 400)
        result.detail += " (redirects are not followed)";
    }
    finish(std::move(result));
  }

  void fail(FetchOutcome outcome, std::string detail) {
    FetchResult result;
    result.outcome = outcome;
    result.detail = std::move(detail);
    if (parser_ && parser_->is_header_done()) result.status = parser_->get().result_int();
    finish(std::move(result));
  }

  void finish(FetchResult result) {
    if (finished_) return;
    finished_ = true;
    deadline_.cancel();
    resolver_.cancel();
    beast::get_lowest_layer(*stream_).close();
    // Never inline: the caller may be inside cancel_all() or its own handler.
    asio::post(io_, [done = std::move(done_), result = std::move(result)]() mutable {
      done(std::move(result));
    });
  }

  asio::io_context& io_;
  std::shared_ptr<asio::ssl::context> tls_;  // outlives the stream that refers to it
  tcp::resolver resolver_;
  asio::steady_timer deadline_;
  std::optional<Stream> stream_;
  HttpUrl url_;
  Duration timeout_;
  std::size_t max_body_;
  std::function<void(FetchResult)> done_;
  http::request<http::empty_body> request_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
  bool finished_ = false;
};

}  // namespace

HttpFetcher::HttpFetcher(asio::io_context& io) : io_(io) {}

HttpFetcher::HttpFetcher(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls)
    : io_(io), tls_(std::move(tls)) {}

HttpFetcher::~HttpFetcher() {
  cancel_all();
}

void HttpFetcher::fetch(const FetchRequest& request, std::function<void(FetchResult)> done) {
  auto fail_now = [&](FetchOutcome outcome, std::string detail) {
    FetchResult result;
    result.outcome = outcome;
    result.detail = std::move(detail);
    asio::post(io_, [done = std::move(done), result = std::move(result)]() mutable {
      done(std::move(result));
    });
  };
  std::string why;
  auto url = parse_http_url(request.url, &why);
  if (!url) return fail_now(FetchOutcome::bad_url, why);

  std::erase_if(sessions_, [](const auto& weak) { return weak.expired(); });
  if (url->tls) {
    if (!tls_) {
      try {
        tls_ = make_client_tls_context();
      } catch (const std::exception& e) {
        return fail_now(FetchOutcome::connection, std::string("TLS setup: ") + e.what());
      }
    }
    auto session =
        std::make_shared<Session<true>>(io_, tls_, std::move(*url), request, std::move(done));
    sessions_.push_back(session);
    session->start();
  } else {
    auto session =
        std::make_shared<Session<false>>(io_, nullptr, std::move(*url), request, std::move(done));
    sessions_.push_back(session);
    session->start();
  }
}

void HttpFetcher::cancel_all() {
  auto sessions = std::move(sessions_);
  sessions_.clear();
  for (auto& weak : sessions) {
    if (auto session = weak.lock()) session->cancel();
  }
}

}  // namespace mx
