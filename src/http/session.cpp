// One connection's state machine, plain or TLS (session.h).
#include "http/session.h"

#include <algorithm>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <limits>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "common/log.h"
#include "http/server_state.h"
#include "http/tls.h"

namespace mx {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

bool is_disconnect(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == net::error::operation_aborted ||
         ec == net::error::connection_reset || ec == net::error::eof ||
         ec == net::error::broken_pipe || ec == net::ssl::error::stream_truncated;
}

template <bool kTls>
class Session final : public SessionBase, public std::enable_shared_from_this<Session<kTls>> {
  using Stream = std::conditional_t<kTls, beast::ssl_stream<beast::tcp_stream>, beast::tcp_stream>;

 public:
  Session(tcp::socket socket, std::shared_ptr<HttpServer::State> state,
          std::shared_ptr<const Security> security)
      : stream_(make_stream(std::move(socket), security.get())),
        state_(std::move(state)),
        security_(std::move(security)),
        buffer_(state_->config.max_request_bytes + 1024) {
    ++state_->active;
  }
  ~Session() override {
    // Not closed: its io_context dropped its handlers at teardown (the registry may be gone).
    if (!closed_) state_->connections.forget(*this);
    --state_->active;
  }

  void start() {
    phase_ = Phase::header;
    // One deadline from accept for the TLS handshake and the first request's headers.
    lowest().expires_after(state_->config.header_timeout);
    if constexpr (kTls) {
      stream_.async_handshake(
          net::ssl::stream_base::server,
          [self = this->shared_from_this()](beast::error_code ec) { self->on_handshake(ec); });
    } else {
      read_header();
    }
  }

  void close() override {
    if (closed_) return;
    closed_ = true;
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
    lowest().close();
    // Memory goes back now, not when the last handler runs.
    buffer_.clear();
    buffer_.shrink_to_fit();
    state_->connections.remove(*this);
  }

 private:
  static Stream make_stream(tcp::socket socket, const Security* security) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *security->tls);
    } else {
      (void)security;
      return Stream(std::move(socket));
    }
  }
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void touch(Phase phase) {
    phase_ = phase;
    if (!closed_) state_->connections.touch(*this);
  }

  void fail(beast::error_code ec, TimeoutPhase phase) {
    if (ec == beast::error::timeout) state_->metrics.timed_out[phase]->Increment();
    close();
  }

  void on_handshake(beast::error_code ec) {
    if (ec) {
      if (ec != beast::error::timeout && ec != net::error::operation_aborted) {
        increment(state_->metrics.tls_handshake_failures);
        log::debug("TLS handshake failed", {{"err", ec.message()}});
      }
      return fail(ec, kHeader);
    }
    if constexpr (kTls) {
      const auto& sans = security_->config.tls.client_allowed_sans;
      if (!sans.empty() && !peer_has_allowed_san(stream_.native_handle(), sans)) {
        increment(state_->metrics.tls_handshake_failures);
        log::debug("client certificate has no allowed SAN; connection closed");
        return close();
      }
    }
    read_header();
  }

  // The request line and headers, under the deadline already running.
  void read_header() {
    if (closed_) return;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(state_->config.max_request_bytes));
    parser_->body_limit(state_->config.max_request_bytes);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                              self->on_header(ec);
                            });
  }

  bool reply_to_read_error(beast::error_code ec, TimeoutPhase phase) {
    if (!ec) return false;
    if (ec == beast::error::timeout || is_disconnect(ec) || closed_) {
      fail(ec, phase);
    } else if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      reply_error(431, "request header too large\n");
    } else if (ec == http::error::body_limit) {
      reply_error(413, "request too large\n");
    } else if (ec.category() == net::error::get_ssl_category()) {
      close();
    } else {
      reply_error(400, "bad request: " + ec.message() + "\n");
    }
    return true;
  }

  void on_header(beast::error_code ec) {
    if (reply_to_read_error(ec, kHeader)) return;
    if (parser_->is_done()) return handle();
    phase_ = Phase::body;
    lowest().expires_after(state_->config.read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                       if (self->reply_to_read_error(ec, kBody)) return;
                       self->handle();
                     });
  }

  void handle() {
    phase_ = Phase::handling;
    lowest().expires_never();
    const auto& req = parser_->get();
    auto request = std::make_shared<HttpRequest>();
    request->method = std::string(req.method_string());
    request->target = std::string(req.target());
    request->accept = std::string(req[http::field::accept]);
    request->accept_encoding = std::string(req[http::field::accept_encoding]);
    head_ = req.method() == http::verb::head;
    request_keep_alive_ = req.keep_alive();
    version_ = req.version();
    auto security = state_->security;  // a reload applies to the next request
    if (!state_->bucket.take(std::chrono::steady_clock::now())) {
      increment(state_->metrics.rate_limited);
      return respond(*security, HttpResponse::text(429, "too many requests\n"));
    }
    const std::string path = request->target.substr(0, request->target.find('?'));
    const auto& open = security->config.auth_excluded_paths;
    if (!security->auth || std::find(open.begin(), open.end(), path) != open.end()) {
      return dispatch(*security, *request);
    }
    if (!state_->bcrypt_pool) return respond(*security, HttpResponse::text(503, "stopping\n"));
    security->auth->check(
        req[http::field::authorization], state_->io, *state_->bcrypt_pool,
        [self = this->shared_from_this(), security, request](BasicAuth::Result result) {
          self->on_auth(*security, *request, result);
        });
  }

  void on_auth(const Security& security, const HttpRequest& request, BasicAuth::Result result) {
    if (closed_) return;
    if (result == BasicAuth::Result::ok) return dispatch(security, request);
    if (result == BasicAuth::Result::busy) {
      auto r = HttpResponse::text(503, "authentication busy, retry\n");
      r.headers.emplace_back("Retry-After", "1");
      return respond(security, std::move(r));
    }
    // Counted, never logged with the header: it carries the password.
    increment(result == BasicAuth::Result::missing ? state_->metrics.auth_missing
                                                   : state_->metrics.auth_wrong);
    auto r = HttpResponse::text(401, "unauthorized\n");
    r.headers.emplace_back("WWW-Authenticate", "Basic");
    respond(security, std::move(r));
  }

  void dispatch(const Security& security, const HttpRequest& request) {
    HttpResponse response;
    try {
      response = state_->handler(request);
    } catch (const std::exception& e) {
      log::error("HTTP handler failed", {{"target", request.target}, {"err", e.what()}});
      response = HttpResponse::text(500, "internal error\n");
    }
    respond(security, std::move(response));
  }

  void respond(const Security& security, HttpResponse r) {
    for (const auto& [k, v] : security.config.headers) r.headers.emplace_back(k, v);
    send(std::move(r), head_, request_keep_alive_ && !state_->stopping, version_);
  }

  void reply_error(unsigned status, std::string text) {
    auto r = HttpResponse::text(status, std::move(text));
    for (const auto& [k, v] : state_->security->config.headers) r.headers.emplace_back(k, v);
    send(std::move(r), false, false, 11);
  }

  void send(HttpResponse r, bool head, bool keep_alive, unsigned version) {
    if (closed_) return;
    phase_ = Phase::writing;
    keep_alive_ = keep_alive;
    http::response<http::empty_body> res;
    res.version(version);
    res.result(r.status);
    res.set(http::field::server, "modal-exporter");
    res.set(http::field::content_type, r.content_type);
    for (auto& [k, v] : r.headers) res.set(k, v);
    res.keep_alive(keep_alive);
    res.content_length(r.body_size());
    // The header through Beast, the body as the snapshot's own pieces in one gather write:
    // Beast's serializer re-walks a body of a thousand small buffers on every partial write,
    // asio's consuming buffer sequence does not (and the TLS stream coalesces small buffers into
    // records). The strings stay alive in body_ until the write ends.
    std::ostringstream head_text;
    head_text << res.base();
    header_bytes_ = std::move(head_text).str();
    body_ = head ? decltype(r.body){} : std::move(r.body);
    out_.clear();
    out_.reserve(body_.size() + 1);
    out_.emplace_back(header_bytes_.data(), header_bytes_.size());
    for (const auto& p : body_) {
      if (!p->empty()) out_.emplace_back(p->data(), p->size());
    }
    lowest().expires_after(state_->config.write_timeout);
    if constexpr (kTls) {
      // The TLS stream writes one record at a time whatever it is given; asio's write loop
      // offers it all that is left on each write (its default hands over 64 KiB at most).
      auto everything = [](const beast::error_code& ec, std::size_t) -> std::size_t {
        return ec ? 0 : std::numeric_limits<std::size_t>::max();
      };
      net::async_write(stream_, out_, everything,
                       [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                         self->on_written(ec);
                       });
    } else {
      out_next_ = 0;
      write_rest();
    }
  }

  // Plain TCP: each write offers the socket every piece that is left (up to 64, one sendmsg),
  // where asio's write loop offers 16 at most: a 10k-job gzip body is ~60 pieces, one call
  // instead of four.
  void write_rest() {
    const std::span<const net::const_buffer> rest(out_.data() + out_next_, out_.size() - out_next_);
    lowest().async_write_some(
        rest, [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
          if (ec) return self->on_written(ec);
          auto& out = self->out_;
          std::size_t& next = self->out_next_;
          while (n > 0 && next < out.size()) {
            const std::size_t take = std::min(n, out[next].size());
            out[next] += take;
            n -= take;
            if (out[next].size() == 0) ++next;
          }
          if (next == out.size()) return self->on_written(ec);
          self->write_rest();
        });
  }

  void on_written(beast::error_code ec) {
    body_.clear();
    out_.clear();
    if (ec) return fail(ec, kWrite);
    if (!keep_alive_) return close();
    wait_for_request();
  }

  // Keep-alive: waits for the first byte of the next request under the idle timeout, then reads
  // its headers under the header deadline.
  void wait_for_request() {
    parser_.reset();
    if (state_->stopping) return close();
    touch(Phase::idle);
    if (buffer_.size() > 0) {  // pipelined
      touch(Phase::header);
      lowest().expires_after(state_->config.header_timeout);
      return read_header();
    }
    buffer_.shrink_to_fit();  // an idle connection holds no buffer
    lowest().expires_after(state_->config.idle_timeout);
    stream_.async_read_some(buffer_.prepare(512),
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
                              if (ec) return self->fail(ec, kIdle);
                              self->buffer_.commit(n);
                              self->touch(Phase::header);
                              self->lowest().expires_after(self->state_->config.header_timeout);
                              self->read_header();
                            });
  }

  Stream stream_;
  std::shared_ptr<HttpServer::State> state_;
  std::shared_ptr<const Security> security_;  // the TLS context this connection was made with
  beast::flat_buffer buffer_;                 // bounded: the request cap plus a little
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string header_bytes_;                              // the response being written: its header,
  std::vector<std::shared_ptr<const std::string>> body_;  // the pieces that own its body
  std::vector<net::const_buffer> out_;                    // and the gather list over both
  std::size_t out_next_ = 0;                              // the first not fully written
  bool head_ = false;
  bool request_keep_alive_ = false;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool closed_ = false;
};

template <bool kTls>
void start(const std::shared_ptr<HttpServer::State>& state, tcp::socket socket) {
  auto session = std::make_shared<Session<kTls>>(std::move(socket), state, state->security);
  state->connections.add(*session);
  session->start();
}

}  // namespace

void start_session(const std::shared_ptr<HttpServer::State>& state, tcp::socket socket) {
  if (state->security->tls) {
    start<true>(state, std::move(socket));
  } else {
    start<false>(state, std::move(socket));
  }
}

}  // namespace mx
