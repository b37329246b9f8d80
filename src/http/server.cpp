#include "http/server.h"

#include <boost/asio/ip/v6_only.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/optional.hpp>

#include "common/log.h"

namespace mx {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

// A response body made of shared, immutable strings (no copy of the snapshot per scrape).
struct SharedBuffersBody {
  using value_type = std::vector<std::shared_ptr<const std::string>>;

  static std::uint64_t size(const value_type& parts) {
    std::uint64_t n = 0;
    for (const auto& p : parts) n += p->size();
    return n;
  }

  class writer {
   public:
    using const_buffers_type = std::vector<net::const_buffer>;

    template <bool isRequest, class Fields>
    writer(const http::header<isRequest, Fields>&, const value_type& parts) : parts_(parts) {}

    void init(beast::error_code& ec) { ec = {}; }

    boost::optional<std::pair<const_buffers_type, bool>> get(beast::error_code& ec) {
      ec = {};
      if (done_) return boost::none;
      done_ = true;
      const_buffers_type buffers;
      for (const auto& p : parts_) {
        if (!p->empty()) buffers.emplace_back(p->data(), p->size());
      }
      return std::make_pair(std::move(buffers), false);
    }

   private:
    const value_type& parts_;
    bool done_ = false;
  };
};

}  // namespace

HttpResponse HttpResponse::text(unsigned status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body.push_back(std::make_shared<const std::string>(std::move(body)));
  return r;
}

std::uint64_t HttpResponse::body_size() const {
  return SharedBuffersBody::size(body);
}

tcp::endpoint parse_listen_address(const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) {
    throw ConfigError{"listen address \"" + address + "\" must be HOST:PORT or :PORT"};
  }
  std::string host = address.substr(0, colon);
  const std::string port_text = address.substr(colon + 1);
  char* end = nullptr;
  const long port = std::strtol(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || port < 0 || port > 65535) {
    throw ConfigError{"listen address \"" + address + "\": bad port \"" + port_text + "\""};
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) return tcp::endpoint(tcp::v6(), static_cast<unsigned short>(port));
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code ec;
  auto ip = net::ip::make_address(host, ec);
  if (ec) {
    throw ConfigError{"listen address \"" + address + "\": \"" + host + "\" is not an IP address"};
  }
  return tcp::endpoint(ip, static_cast<unsigned short>(port));
}

class Session;

struct HttpServer::State {
  WebConfig config;
  HttpHandler handler;
  tcp::acceptor acceptor;
  bool stopping = false;
  std::list<std::weak_ptr<Session>> sessions;
  std::size_t active = 0;

  State(net::io_context& io, WebConfig c, HttpHandler h)
      : config(std::move(c)), handler(std::move(h)), acceptor(io) {}
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<HttpServer::State> state)
      : stream_(std::move(socket)), state_(std::move(state)) {
    ++state_->active;
  }
  ~Session() { --state_->active; }

  void start(std::list<std::weak_ptr<Session>>::iterator self_entry) {
    self_entry_ = self_entry;
    wait_for_request();
  }

  // Called when the server stops: an idle connection closes now; a busy one after its response.
  void drain() {
    if (phase_ == Phase::idle) {
      beast::error_code ec;
      stream_.socket().cancel(ec);
    }
  }

 private:
  enum class Phase { idle, reading, writing };

  // Waits for the first byte of the next request under the idle timeout (the read timeout for a
  // new connection), then reads the whole request under the read timeout.
  void wait_for_request() {
    if (state_->stopping) return close();
    phase_ = Phase::idle;
    if (buffer_.size() > 0) return read_request();
    stream_.expires_after(first_request_ ? state_->config.read_timeout
                                         : state_->config.idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->buffer_.commit(n);
                              if (ec) return self->close();
                              self->read_request();
                            });
  }

  void read_request() {
    phase_ = Phase::reading;
    first_request_ = false;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(state_->config.max_request_bytes));
    parser_->body_limit(state_->config.max_request_bytes);
    stream_.expires_after(state_->config.read_timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset ||
        ec == net::error::eof) {
      return close();
    }
    if (ec == http::error::header_limit) {
      return reply_error(431, "request header too large\n");
    }
    if (ec == http::error::body_limit) return reply_error(413, "request too large\n");
    if (ec) return reply_error(400, "bad request: " + ec.message() + "\n");

    const auto& req = parser_->get();
    HttpRequest request;
    request.method = std::string(req.method_string());
    request.target = std::string(req.target());
    request.accept = std::string(req[http::field::accept]);
    request.accept_encoding = std::string(req[http::field::accept_encoding]);
    HttpResponse response;
    try {
      response = state_->handler(request);
    } catch (const std::exception& e) {
      log::error("HTTP handler failed", {{"target", request.target}, {"err", e.what()}});
      response = HttpResponse::text(500, "internal error\n");
    }
    const bool head = req.method() == http::verb::head;
    send(std::move(response), head, req.keep_alive() && !state_->stopping, req.version());
  }

  void reply_error(unsigned status, std::string text) {
    send(HttpResponse::text(status, std::move(text)), false, false, 11);
  }

  void send(HttpResponse r, bool head, bool keep_alive, unsigned version) {
    phase_ = Phase::writing;
    keep_alive_ = keep_alive;
    response_.emplace();
    auto& res = *response_;
    res.version(version);
    res.result(r.status);
    res.set(http::field::server, "modal-exporter");
    res.set(http::field::content_type, r.content_type);
    for (auto& [k, v] : r.headers) res.set(k, v);
    res.keep_alive(keep_alive);
    res.content_length(r.body_size());
    if (!head) res.body() = std::move(r.body);
    stream_.expires_after(state_->config.write_timeout);
    http::async_write(stream_, res, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->response_.reset();
      if (ec || !self->keep_alive_) return self->close();
      self->wait_for_request();
    });
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
    if (!closed_) {
      closed_ = true;
      state_->sessions.erase(self_entry_);
    }
  }

  beast::tcp_stream stream_;
  std::shared_ptr<HttpServer::State> state_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<SharedBuffersBody>> response_;
  std::list<std::weak_ptr<Session>>::iterator self_entry_;
  Phase phase_ = Phase::idle;
  bool first_request_ = true;
  bool keep_alive_ = false;
  bool closed_ = false;
};

HttpServer::HttpServer(net::io_context& io, WebConfig config, HttpHandler handler)
    : io_(io), state_(std::make_shared<State>(io, std::move(config), std::move(handler))) {}

HttpServer::~HttpServer() {
  beast::error_code ec;
  state_->acceptor.close(ec);
}

void HttpServer::start() {
  auto endpoint = parse_listen_address(state_->config.listen_address);
  auto& acceptor = state_->acceptor;
  boost::system::error_code open_error;
  acceptor.open(endpoint.protocol(), open_error);
  if (open_error && endpoint.address().is_v6() && endpoint.address().is_unspecified()) {
    // A host without IPv6: ":PORT" falls back to every IPv4 address.
    endpoint = tcp::endpoint(tcp::v4(), endpoint.port());
    acceptor.open(endpoint.protocol());
  } else if (open_error) {
    throw boost::system::system_error(open_error);
  }
  acceptor.set_option(net::socket_base::reuse_address(true));
  if (endpoint.address().is_v6() && endpoint.address().is_unspecified()) {
    // ":PORT" serves IPv4 and IPv6 alike.
    acceptor.set_option(net::ip::v6_only(false));
  }
  acceptor.bind(endpoint);
  acceptor.listen(net::socket_base::max_listen_connections);
  accept();
}

void HttpServer::accept() {
  auto state = state_;
  state->acceptor.async_accept([this, state](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !state->acceptor.is_open()) return;
    if (!ec) {
      if (state->active >= static_cast<std::size_t>(state->config.max_connections)) {
        // Over the cap: close at once so one client cannot starve the others of fds.
        beast::error_code ignored;
        socket.close(ignored);
        log::debug("connection refused: connection cap reached",
                   {{"max_connections", state->config.max_connections}});
      } else {
        auto session = std::make_shared<Session>(std::move(socket), state);
        state->sessions.push_front(session);
        session->start(state->sessions.begin());
      }
    }
    accept();
  });
}

void HttpServer::stop() {
  state_->stopping = true;
  beast::error_code ec;
  state_->acceptor.close(ec);
  for (auto& weak : state_->sessions) {
    if (auto s = weak.lock()) s->drain();
  }
}

tcp::endpoint HttpServer::local_endpoint() const {
  return state_->acceptor.local_endpoint();
}

std::size_t HttpServer::active_connections() const {
  return state_->active;
}

}  // namespace mx
