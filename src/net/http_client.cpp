#include "net/http_client.h"

#include <algorithm>
#include <charconv>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

namespace mx::net {

namespace http = beast::http;
using asio::redirect_error;
using asio::use_awaitable;

namespace {

constexpr std::size_t kHeaderLimit = 64 * 1024;
// What one read may take from the connection. Beast reads as much as the buffer has room for,
// and an empty buffer grows by 512 bytes: a 5 KB telemetry page would take ten reads, and a
// LIST page hundreds of TLS record reads. Reserved per request, given back when the connection
// idles.
constexpr std::size_t kReadBufferBytes = 16 * 1024;

std::optional<Duration> parse_retry_after(std::string_view value) {
  if (value.empty() || value.size() >= 10) return std::nullopt;
  int seconds = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    seconds = seconds * 10 + (c - '0');
  }
  return std::chrono::seconds(seconds);
}

Error make_error(ErrorKind kind, std::string message, int status = 0) {
  Error e;
  e.kind = kind;
  e.status = status;
  e.message = std::move(message);
  return e;
}

}  // namespace

// --- HttpClient --------------------------------------------------------------------------------

std::shared_ptr<HttpClient> HttpClient::create(asio::any_io_executor executor,
                                               ClientOptions options) {
  return std::make_shared<HttpClient>(std::move(executor), std::move(options));
}

HttpClient::HttpClient(asio::any_io_executor executor, ClientOptions options)
    : executor_(std::move(executor)), options_(std::move(options)) {
  if (!options_.proxy_url.empty()) {
    fixed_proxy_ = parse_proxy_url(options_.proxy_url, &fixed_proxy_error_);
  } else {
    proxy_environment_ = options_.proxy_environment.value_or(ProxyEnvironment::from_environment());
  }
}

std::optional<ProxyUrl> HttpClient::proxy_for(const HttpUrl& url, std::string& error) const {
  if (!options_.proxy_url.empty()) {
    error = fixed_proxy_error_;
    return fixed_proxy_;
  }
  return net::proxy_for(proxy_environment_, url, &error);
}

std::shared_ptr<asio::ssl::context> HttpClient::tls_context(std::string& error) {
  if (!options_.tls_context) {
    try {
      options_.tls_context = make_tls_client_context(options_.tls);
    } catch (const std::exception& e) {
      error = std::string("TLS setup: ") + e.what();
    }
  }
  return options_.tls_context;
}

std::shared_ptr<Exchange> HttpClient::exchange() {
  // Idle connections keep their entries alive: clean up when the list has doubled, not on
  // every request.
  if (exchanges_.size() >= 2 * exchanges_compacted_ + 64) {
    std::erase_if(exchanges_, [](const auto& weak) { return weak.expired(); });
    exchanges_compacted_ = exchanges_.size();
  }
  auto ex = std::make_shared<Exchange>(shared_from_this());
  exchanges_.push_back(ex);
  return ex;
}

void HttpClient::cancel_all() {
  auto idle = std::move(idle_);
  idle_.clear();
  idle_count_ = 0;
  for (auto& [key, connections] : idle) {
    for (auto& ex : connections) ex->cancel();
  }
  auto exchanges = std::move(exchanges_);
  exchanges_.clear();
  exchanges_compacted_ = 0;
  for (auto& weak : exchanges) {
    if (auto ex = weak.lock()) ex->cancel();
  }
}

std::shared_ptr<Exchange> HttpClient::exchange_for(const std::string& key) {
  if (const auto it = idle_.find(key); it != idle_.end()) {
    auto ex = std::move(it->second.back());  // the most recently used
    it->second.pop_back();
    if (it->second.empty()) idle_.erase(it);
    --idle_count_;
    if (Exchange::Clock::now() - ex->idle_since() < kIdleTimeout) {
      ex->resume(shared_from_this());
      return ex;
    }
    ex->cancel();
  }
  return exchange();
}

void HttpClient::keep_idle(const std::string& key, std::shared_ptr<Exchange> ex) {
  const auto now = Exchange::Clock::now();
  close_expired_idle(now);
  auto& connections = idle_[key];
  if (connections.size() >= kMaxIdlePerHost) {
    connections.front()->cancel();
    connections.erase(connections.begin());
    --idle_count_;
  }
  if (idle_count_ >= options_.max_idle_connections) {
    if (connections.empty()) idle_.erase(key);
    ex->cancel();
    return;
  }
  ex->idle(now);
  connections.push_back(std::move(ex));
  ++idle_count_;
}

void HttpClient::close_expired_idle(Exchange::Clock::time_point now) {
  // A sweep every third of the idle timeout: connections to hosts no longer scraped go.
  if (now < next_idle_check_) return;
  next_idle_check_ = now + kIdleTimeout / 3;
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& connections = it->second;
    const auto expired = std::erase_if(connections, [now](const auto& ex) {
      if (now - ex->idle_since() < kIdleTimeout) return false;
      ex->cancel();
      return true;
    });
    idle_count_ -= expired;
    it = connections.empty() ? idle_.erase(it) : std::next(it);
  }
}

namespace {

asio::awaitable<Error> fetch_into(Exchange& ex, Request request, const FetchRequest& options,
                                  FetchResult& result) {
  const auto deadline = Exchange::Clock::now() + options.timeout;
  Error e = co_await ex.open(std::move(request), deadline);
  result.status = ex.status();
  result.content_type = ex.content_type();
  if (!e && (result.status < 200 || result.status >= 300)) {
    // The body of an error page is of no use; the connection is closed unread.
    e = make_error(ErrorKind::http, "HTTP status " + std::to_string(result.status), result.status);
    if (result.status >= 300 && result.status < 400) e.message += " (redirects are not followed)";
  }
  if (!e) e = co_await ex.read_body(result.body, options.max_body_bytes, deadline);
  if (e.kind == ErrorKind::timeout) {
    e.message =
        "no complete response within " + format_duration(options.timeout) + " (" + e.message + ")";
  }
  co_return e;
}

}  // namespace

asio::awaitable<void> HttpClient::run_fetch(std::shared_ptr<HttpClient> self,
                                            std::shared_ptr<Exchange> ex, std::string key,
                                            Request request, FetchRequest options,
                                            std::function<void(FetchResult)> done) {
  FetchResult result;
  Error e;
  try {
    e = co_await fetch_into(*ex, std::move(request), options, result);
  } catch (const std::exception& failure) {
    // Whatever happens, the caller hears back exactly once.
    e = make_error(ErrorKind::connection, std::string("internal error: ") + failure.what());
  }
  if (!e && self->options_.max_idle_connections > 0 && ex->reusable()) {
    self->keep_idle(key, std::move(ex));
  } else {
    ex->cancel();
  }
  if (e) {
    result.error = std::move(e);
    result.body.clear();
  }
  done(std::move(result));
}

void HttpClient::fetch(const FetchRequest& request, std::function<void(FetchResult)> done) {
  std::string why;
  auto url = parse_http_url(request.url, &why);
  if (!url) {
    FetchResult result;
    result.error = make_error(ErrorKind::bad_url, why);
    // Never inline: the caller may be inside its own handler.
    asio::post(executor_, [done = std::move(done), result = std::move(result)]() mutable {
      done(std::move(result));
    });
    return;
  }
  Request r;
  r.url = std::move(*url);
  r.accept = request.accept;
  std::string key = (r.url.tls ? "https://" : "http://") + r.url.host_header;
  auto ex = options_.max_idle_connections > 0 ? exchange_for(key) : exchange();
  asio::co_spawn(executor_,
                 run_fetch(shared_from_this(), std::move(ex), std::move(key), std::move(r), request,
                           std::move(done)),
                 asio::detached);
}

// --- Exchange ----------------------------------------------------------------------------------

Exchange::Exchange(std::shared_ptr<HttpClient> client)
    : client_(std::move(client)),
      resolver_(client_->executor_),
      resolve_deadline_(client_->executor_) {
  reset_parser();
}

void Exchange::reset_parser() {
  parser_.emplace();
  parser_->header_limit(kHeaderLimit);
  parser_->body_limit(boost::none);  // read_body() and the callers of read_some() bound it
}

void Exchange::drop_connection() {
  boost::system::error_code ignored;
  if (tls_ || plain_) tcp().socket().close(ignored);
  tls_.reset();
  plain_.reset();
  tls_context_.reset();
  buffer_.clear();
  done_ = false;
  reset_parser();
}

bool Exchange::reusable() const {
  if (cancelled_ || !done_ || !parser_ || !parser_->keep_alive() || buffer_.size() != 0) {
    return false;
  }
  if (tls_) return beast::get_lowest_layer(*tls_).socket().is_open();
  return plain_ && plain_->socket().is_open();
}

void Exchange::idle(Clock::time_point now) {
  idle_since_ = now;
  client_.reset();
  tcp().expires_never();
  chunk_.reset();
  parser_.reset();
  buffer_.clear();
  buffer_.shrink_to_fit();
}

beast::tcp_stream& Exchange::tcp() {
  return tls_ ? beast::get_lowest_layer(*tls_) : *plain_;
}

void Exchange::cancel() {
  cancelled_ = true;
  resolver_.cancel();
  resolve_deadline_.cancel();
  if (!tls_ && !plain_) return;
  boost::system::error_code ignored;
  tcp().socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  tcp().socket().close(ignored);
}

Error Exchange::map_error(const boost::system::error_code& ec, const std::string& step) const {
  if (cancelled_ || ec == asio::error::operation_aborted) {
    return make_error(ErrorKind::cancelled, "cancelled");
  }
  if (ec == beast::error::timeout) return make_error(ErrorKind::timeout, step + " timed out");
  if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
    return make_error(ErrorKind::too_large, step + ": response header too large");
  }
  const boost::system::error_code http_end = http::error::end_of_stream;
  if (ec.category() == http_end.category() && ec != http::error::end_of_stream &&
      ec != http::error::partial_message) {
    return make_error(ErrorKind::parse, step + ": malformed HTTP response (" + ec.message() + ")");
  }
  return make_error(ErrorKind::connection, step + " failed: " + ec.message());
}

asio::awaitable<Error> Exchange::open(Request request, Clock::time_point deadline) {
  if (cancelled_) co_return map_error(asio::error::operation_aborted, "open");
  const HttpUrl& url = request.url;
  authority_ = url.host_header;
  boost::system::error_code ec;
  std::string proxy_error;
  const std::optional<ProxyUrl> proxy = client_->proxy_for(url, proxy_error);
  if (!proxy_error.empty()) co_return make_error(ErrorKind::connection, proxy_error);

  if (tls_ || plain_) {
    // A kept connection: its server may have closed it while it was idle.
    reset_parser();
    done_ = false;
    tcp().expires_at(deadline);
    bool nothing_back = false;
    Error e = co_await send(request, proxy, nothing_back);
    if (!e || !nothing_back || cancelled_ || e.kind == ErrorKind::timeout) co_return e;
    drop_connection();
  }

  const std::string& connect_host = proxy ? proxy->host : url.host;
  const std::string& connect_port = proxy ? proxy->port : url.port;
  asio::ip::tcp::resolver::results_type endpoints;
  const auto address = asio::ip::make_address(connect_host, ec);
  unsigned short port = 0;
  const auto [port_end, port_ec] =
      std::from_chars(connect_port.data(), connect_port.data() + connect_port.size(), port);
  if (!ec && port_ec == std::errc() && port_end == connect_port.data() + connect_port.size()) {
    endpoints = asio::ip::tcp::resolver::results_type::create(
        asio::ip::tcp::endpoint(address, port), connect_host, connect_port);
  } else {
    // Resolution has no timeout of its own: a timer cancels it at the deadline.
    resolve_deadline_.expires_at(deadline);
    resolve_deadline_.async_wait([weak = weak_from_this()](boost::system::error_code wait_ec) {
      auto self = weak.lock();
      if (wait_ec || !self) return;
      self->resolve_timed_out_ = true;
      self->resolver_.cancel();
    });
    ec = {};
    endpoints = co_await resolver_.async_resolve(connect_host, connect_port,
                                                 redirect_error(use_awaitable, ec));
    resolve_deadline_.cancel();
    if (resolve_timed_out_ && !cancelled_) {
      co_return make_error(ErrorKind::timeout, "resolve " + connect_host + " timed out");
    }
    if (ec || cancelled_) co_return map_error(ec, "resolve " + connect_host);
  }

  const TlsOptions& tls_options = client_->options_.tls;
  if (url.tls) {
    std::string why;
    tls_context_ = request.tls_context ? request.tls_context : client_->tls_context(why);
    if (!tls_context_) co_return make_error(ErrorKind::connection, why);
    tls_ =
        std::make_unique<beast::ssl_stream<beast::tcp_stream>>(client_->executor_, *tls_context_);
  } else {
    plain_ = std::make_unique<beast::tcp_stream>(client_->executor_);
  }
  tcp().expires_at(deadline);
  co_await tcp().async_connect(endpoints, redirect_error(use_awaitable, ec));
  if (ec || cancelled_) {
    co_return map_error(ec, "connect to " + (proxy ? "proxy " + proxy->display : authority_));
  }
  if (proxy && tls_) {
    if (Error e = co_await open_tunnel(*proxy, url); e) co_return e;
  }

  if (tls_) {
    const std::string& name = tls_options.server_name.empty() ? url.host : tls_options.server_name;
    if (!prepare_tls_connection(tls_->native_handle(), name, !tls_options.insecure_skip_verify)) {
      co_return make_error(ErrorKind::connection, "TLS: cannot use the server name " + name);
    }
    co_await tls_->async_handshake(asio::ssl::stream_base::client,
                                   redirect_error(use_awaitable, ec));
    if (ec || cancelled_) co_return map_error(ec, "TLS handshake with " + authority_);
  }
  bool nothing_back = false;
  co_return co_await send(request, proxy, nothing_back);
}

asio::awaitable<Error> Exchange::send(const Request& request, const std::optional<ProxyUrl>& proxy,
                                      bool& nothing_back) {
  const HttpUrl& url = request.url;
  boost::system::error_code ec;
  // Through a proxy, a plain http:// request names its whole URL (absolute form).
  const bool forward = proxy && !tls_;
  http::request<http::empty_body> req{
      http::verb::get, forward ? "http://" + url.host_header + url.target : url.target, 11};
  req.set(http::field::host, url.host_header);
  if (forward && !proxy->authorization.empty()) {
    req.set(http::field::proxy_authorization, proxy->authorization);
  }
  req.set(http::field::user_agent, user_agent());
  req.set(http::field::accept, request.accept);
  if (client_->options_.max_idle_connections == 0) req.set(http::field::connection, "close");
  if (!request.bearer_token.empty()) {
    req.set(http::field::authorization, "Bearer " + request.bearer_token);
  }
  nothing_back = true;
  if (tls_) {
    co_await http::async_write(*tls_, req, redirect_error(use_awaitable, ec));
  } else {
    co_await http::async_write(*plain_, req, redirect_error(use_awaitable, ec));
  }
  if (ec || cancelled_) co_return map_error(ec, "send request");

  buffer_.reserve(kReadBufferBytes);
  if (tls_) {
    co_await http::async_read_header(*tls_, buffer_, *parser_, redirect_error(use_awaitable, ec));
  } else {
    co_await http::async_read_header(*plain_, buffer_, *parser_, redirect_error(use_awaitable, ec));
  }
  nothing_back = buffer_.size() == 0 && !parser_->got_some();
  if (ec || cancelled_) co_return map_error(ec, "read response header");

  const auto& header = parser_->get();
  status_ = static_cast<int>(header.result_int());
  content_type_ = std::string(header[http::field::content_type]);
  retry_after_ = parse_retry_after(header[http::field::retry_after]);
  done_ = parser_->is_done();
  co_return Error{};
}

asio::awaitable<Error> Exchange::open_tunnel(const ProxyUrl& proxy, const HttpUrl& url) {
  const bool ipv6 = url.host.find(':') != std::string::npos;
  const std::string target = (ipv6 ? "[" + url.host + "]" : url.host) + ":" + url.port;
  http::request<http::empty_body> req{http::verb::connect, target, 11};
  req.set(http::field::host, target);
  req.set(http::field::user_agent, user_agent());
  if (!proxy.authorization.empty()) {
    req.set(http::field::proxy_authorization, proxy.authorization);
  }
  boost::system::error_code ec;
  co_await http::async_write(tcp(), req, redirect_error(use_awaitable, ec));
  const std::string step = "CONNECT " + target + " through proxy " + proxy.display;
  if (ec || cancelled_) co_return map_error(ec, step);
  // A buffer of its own: nothing the proxy sends after its header may be taken from TLS.
  beast::flat_buffer buffer;
  http::response_parser<http::empty_body> parser;
  parser.skip(true);  // a 2xx answer to CONNECT has no body: the tunnel follows
  parser.header_limit(kHeaderLimit);
  co_await http::async_read_header(tcp(), buffer, parser, redirect_error(use_awaitable, ec));
  if (ec || cancelled_) co_return map_error(ec, step);
  const int status = static_cast<int>(parser.get().result_int());
  if (status < 200 || status >= 300) {
    // Some proxies (tinyproxy) answer a CONNECT with bad credentials with 401 instead of 407.
    co_return make_error(
        ErrorKind::connection,
        step + " failed: HTTP " + std::to_string(status) +
            (status == 407 || status == 401 ? " (proxy authentication required)" : ""));
  }
  if (buffer.size() != 0) {
    co_return make_error(ErrorKind::connection, step + ": the proxy sent data before TLS");
  }
  co_return Error{};
}

asio::awaitable<Error> Exchange::read_some(std::string& out, Clock::time_point deadline) {
  if (done_) co_return Error{};
  if (cancelled_ || (!tls_ && !plain_) || !parser_) {  // no parser: an idle connection
    co_return map_error(asio::error::operation_aborted, "read");
  }
  // Not zeroed: each read overwrites what it hands over (64 KiB of memset per scrape otherwise).
  if (!chunk_) chunk_ = std::make_unique_for_overwrite<std::array<char, 64 * 1024>>();
  parser_->get().body().data = chunk_->data();
  parser_->get().body().size = chunk_->size();
  boost::system::error_code ec;
  tcp().expires_at(deadline);
  if (tls_) {
    co_await http::async_read_some(*tls_, buffer_, *parser_, redirect_error(use_awaitable, ec));
  } else {
    co_await http::async_read_some(*plain_, buffer_, *parser_, redirect_error(use_awaitable, ec));
  }
  if (ec == http::error::need_buffer) ec = {};
  if (ec == asio::ssl::error::stream_truncated && parser_->is_header_done()) {
    // A TLS peer that closes without close_notify ends a body delimited by EOF this way.
    boost::system::error_code eof_ec;
    parser_->put_eof(eof_ec);
    if (!eof_ec && parser_->is_done()) ec = {};
  }
  if (cancelled_) co_return map_error(asio::error::operation_aborted, "read");
  const std::size_t n = chunk_->size() - parser_->get().body().size;
  out.append(chunk_->data(), n);
  if (ec) co_return map_error(ec, "read response body");
  done_ = parser_->is_done();
  co_return Error{};
}

asio::awaitable<Error> Exchange::read_body(std::string& out, std::size_t max_bytes,
                                           Clock::time_point deadline) {
  const auto too_large = [&] {
    return make_error(ErrorKind::too_large,
                      "response body larger than " + std::to_string(max_bytes) + " bytes");
  };
  if (const auto length = parser_->content_length(); length && *length > max_bytes) {
    co_return too_large();
  }
  while (!done_) {
    Error e = co_await read_some(out, deadline);
    if (e) co_return e;
    if (out.size() > max_bytes) co_return too_large();
  }
  co_return Error{};
}

}  // namespace mx::net
