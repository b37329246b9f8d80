// Over ~450 lines on purpose: the session state machine (read with header/body deadlines,
// write, keep-alive) for plain and TLS streams and the connection table (cap, eviction of the
// longest idle or slowest) share the server's state; TLS set-up (tls.cpp), basic auth
// (basic_auth.cpp) and the web config (config/web_config.cpp) already stand alone.
#include "http/server.h"

#include <malloc.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <atomic>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/optional.hpp>
#include <limits>
#include <list>
#include <optional>
#include <span>
#include <sstream>
#include <thread>

#include "common/log.h"
#include "config/web_config.h"
#include "http/basic_auth.h"
#include "http/tls.h"

namespace mx {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

HttpResponse HttpResponse::text(unsigned status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body.push_back(std::make_shared<const std::string>(std::move(body)));
  return r;
}

std::uint64_t HttpResponse::body_size() const {
  std::uint64_t n = 0;
  for (const auto& p : body) n += p->size();
  return n;
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

namespace {

constexpr auto kWatchInterval = std::chrono::seconds(1);
constexpr rlim_t kFdReserve = 128;  // for the sources' connections, files and gRPC

// What one version of the web config file yields; immutable once built.
struct Security {
  WebSecurityConfig config;
  std::shared_ptr<net::ssl::context> tls;  // null: plain HTTP
  std::shared_ptr<BasicAuth> auth;         // null: no basic auth
};

struct FileStamp {
  std::string path;
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  long mtime_sec = 0, mtime_nsec = 0;

  bool operator==(const FileStamp& o) const {
    return exists == o.exists && dev == o.dev && ino == o.ino && size == o.size &&
           mtime_sec == o.mtime_sec && mtime_nsec == o.mtime_nsec;
  }
};

FileStamp stamp_of(const std::string& path) {
  FileStamp s;
  s.path = path;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {  // follows the symlinks Kubernetes Secret volumes use
    s.exists = true;
    s.dev = st.st_dev;
    s.ino = st.st_ino;
    s.size = st.st_size;
    s.mtime_sec = st.st_mtim.tv_sec;
    s.mtime_nsec = st.st_mtim.tv_nsec;
  }
  return s;
}

struct Counters {
  std::atomic<std::uint64_t> accepted{0}, evicted{0}, refused{0}, rate_limited{0}, tls_failures{0},
      auth_missing{0}, auth_wrong{0}, reloads_ok{0}, reloads_failed{0};
  std::atomic<std::uint64_t> timed_out[4] = {};  // header, body, idle, write
};
enum TimeoutPhase { kHeader = 0, kBody = 1, kIdle = 2, kWrite = 3 };

bool is_disconnect(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == net::error::operation_aborted ||
         ec == net::error::connection_reset || ec == net::error::eof ||
         ec == net::error::broken_pipe || ec == net::ssl::error::stream_truncated;
}

}  // namespace

class SessionBase {
 public:
  enum class Phase { header, body, handling, writing, idle };
  virtual ~SessionBase() = default;
  virtual void close() = 0;
  // Idle or incomplete: may be closed to admit a newcomer, or at shutdown.
  bool evictable() const { return phase_ != Phase::handling && phase_ != Phase::writing; }

  std::list<SessionBase*>::iterator entry_;

 protected:
  Phase phase_ = Phase::header;
};

struct HttpServer::State {
  net::io_context& io;
  WebConfig config;
  HttpHandler handler;
  // Connections are accepted on a thread of their own (HttpServer::accept_thread_) and handed to
  // `io` at once. Why: accepting registers the new descriptor with Asio's reactor, whose
  // per-descriptor records are pooled and never freed; made on the io_context thread they sit
  // every few KiB between the sessions' buffers, so after a flood of connections no whole page
  // of the freed session memory could go back to the kernel (5,000 connections: 14 MiB kept).
  // Made on the accept thread, they live in that thread's malloc arena instead.
  net::io_context accept_io{1};
  // Keeps the accept thread running while eviction on the io_context thread decides how to go on.
  net::executor_work_guard<net::io_context::executor_type> accept_work{accept_io.get_executor()};
  // The io_context no longer waits on the listening socket: it is kept running by this until
  // the server stops, for the connections that are still to arrive.
  std::optional<net::executor_work_guard<net::io_context::executor_type>> io_work;
  tcp::acceptor acceptor;          // used on the accept thread only
  net::steady_timer accept_retry;  // likewise
  tcp::endpoint bound;             // the listening address, set before the accept thread starts
  bool accepting = false;          // the accept thread runs (set and read on the io_context thread)
  net::steady_timer watch_timer;
  net::steady_timer trim_timer;  // cancelled by ~HttpServer; `this` outlives it
  bool trim_scheduled = false;
  bool stopping = false;
  // Open sessions, the most recently active first: the back is idle or incomplete the longest.
  std::list<SessionBase*> sessions;
  std::size_t active = 0;  // session objects alive, including closed ones finishing a handler
  std::size_t cap = 0;
  std::size_t high_water = 0;  // most sessions open since memory was last given back
  std::shared_ptr<const Security> security = std::make_shared<Security>();
  TokenBucket bucket;
  std::vector<FileStamp> stamps;  // the web config file, then its certificate/key/CA files
  bool last_reload_ok = true;
  net::thread_pool* bcrypt_pool = nullptr;  // owned by HttpServer; null once it is gone
  Counters counters;

  State(net::io_context& i, WebConfig c, HttpHandler h)
      : io(i),
        config(std::move(c)),
        handler(std::move(h)),
        acceptor(accept_io),
        accept_retry(accept_io),
        watch_timer(i),
        trim_timer(i) {}

  // After a flood of connections has gone, gives the freed session memory back to the kernel
  // (main() raises glibc's trim threshold for the snapshots' sake, so it would not on its own).
  // Deferred a little, so that the flood's last connections are gone too.
  void after_close() {
    if (trim_scheduled || high_water < 256 || sessions.size() >= high_water / 8) return;
    trim_scheduled = true;
    trim_timer.expires_after(std::chrono::seconds(1));
    trim_timer.async_wait([this](beast::error_code ec) {
      if (ec) return;
      trim_scheduled = false;
      high_water = sessions.size();
      ::malloc_trim(0);
    });
  }

  // Closes the session idle or incomplete for the longest time. False when none is.
  bool evict_oldest() {
    for (auto it = sessions.rbegin(); it != sessions.rend(); ++it) {
      if ((*it)->evictable()) {
        ++counters.evicted;
        (*it)->close();  // erases it from `sessions`
        return true;
      }
    }
    return false;
  }
};

namespace {

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
    if (!closed_) state_->sessions.erase(entry_);
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
    state_->sessions.erase(entry_);
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
    lowest().close();
    // Memory goes back now, not when the last handler runs.
    buffer_.clear();
    buffer_.shrink_to_fit();
    state_->after_close();
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
    if (!closed_) state_->sessions.splice(state_->sessions.begin(), state_->sessions, entry_);
  }

  void fail(beast::error_code ec, TimeoutPhase phase) {
    if (ec == beast::error::timeout) ++state_->counters.timed_out[phase];
    close();
  }

  void on_handshake(beast::error_code ec) {
    if (ec) {
      if (ec != beast::error::timeout && ec != net::error::operation_aborted) {
        ++state_->counters.tls_failures;
        log::debug("TLS handshake failed", {{"err", ec.message()}});
      }
      return fail(ec, kHeader);
    }
    if constexpr (kTls) {
      const auto& sans = security_->config.tls.client_allowed_sans;
      if (!sans.empty() && !peer_has_allowed_san(stream_.native_handle(), sans)) {
        ++state_->counters.tls_failures;
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
      ++state_->counters.rate_limited;
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
    ++(result == BasicAuth::Result::missing ? state_->counters.auth_missing
                                            : state_->counters.auth_wrong);
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
void start_session(const std::shared_ptr<HttpServer::State>& state, tcp::socket socket) {
  auto session = std::make_shared<Session<kTls>>(std::move(socket), state, state->security);
  state->sessions.push_front(session.get());
  session->entry_ = state->sessions.begin();
  state->high_water = std::max(state->high_water, state->sessions.size());
  session->start();
}

void admit(const std::shared_ptr<HttpServer::State>& state, tcp::socket socket) {
  ++state->counters.accepted;
  if (state->sessions.size() >= state->cap && !state->evict_oldest()) {
    // Every connection is busy with a request: nothing can make room.
    ++state->counters.refused;
    beast::error_code ignored;
    socket.close(ignored);
    log::debug("connection refused: every connection is busy", {{"max", state->cap}});
    return;
  }
  if (state->security->tls) {
    start_session<true>(state, std::move(socket));
  } else {
    start_session<false>(state, std::move(socket));
  }
}

// Runs on the accept thread; each accepted connection goes to the io_context thread.
void accept_next(const std::shared_ptr<HttpServer::State>& state) {
  state->acceptor.async_accept(state->io, [state](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !state->acceptor.is_open()) return;
    if (ec == net::error::no_descriptors || ec.value() == ENFILE) {
      // Out of fds: the io_context thread frees one from the oldest idle or incomplete
      // connection; if none can go, accepting waits a little.
      net::post(state->io, [state] {
        if (state->stopping) return;
        const bool freed = state->evict_oldest();
        net::post(state->accept_io, [state, freed] {
          if (!state->acceptor.is_open()) return;
          if (freed) return accept_next(state);
          state->accept_retry.expires_after(std::chrono::milliseconds(100));
          state->accept_retry.async_wait([state](beast::error_code wait_ec) {
            if (!wait_ec) accept_next(state);
          });
        });
      });
      return;
    }
    if (!ec) {
      // A response leaves in one gather write; without TCP_NODELAY its last, partial segment
      // waits for the client's delayed ACK (~40 ms per keep-alive scrape of a small body).
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      net::post(state->io, [state, socket = std::move(socket)]() mutable {
        if (state->stopping) return;  // the socket closes with the handler
        admit(state, std::move(socket));
      });
    }
    accept_next(state);
  });
}

// Closes the listening socket on the accept thread, which then runs out of work; once only, so
// that nothing is left queued for a thread that has ended (it would hold `state` for ever).
void close_acceptor(const std::shared_ptr<HttpServer::State>& state) {
  auto close = [state] {
    beast::error_code ignored;
    state->acceptor.close(ignored);
    state->accept_retry.cancel();
    state->accept_work.reset();
  };
  if (!state->accepting) {
    close();  // no accept thread: nothing else uses the acceptor
    return;
  }
  state->accepting = false;
  net::post(state->accept_io, std::move(close));
}

std::vector<std::string> tls_files(const TlsServerConfig& tls) {
  std::vector<std::string> out;
  for (const auto* f : {&tls.cert_file, &tls.key_file, &tls.client_ca_file}) {
    if (!f->empty()) out.push_back(*f);
  }
  return out;
}

// Reads the web config file and everything it names. On success it becomes the running config;
// on failure `initial` throws the ConfigError, a reload logs it and keeps the running config.
void load_web_config(HttpServer::State& st, std::string_view trigger, bool initial) {
  const std::string& path = st.config.config_file;
  std::vector<FileStamp> stamps{stamp_of(path)};  // before reading: a later change is seen
  try {
    auto next = std::make_shared<Security>();
    next->config = load_web_config_file(path);
    for (const auto& f : tls_files(next->config.tls)) stamps.push_back(stamp_of(f));
    st.stamps = stamps;
    if (next->config.tls.enabled) next->tls = make_tls_context(next->config.tls);
    if (next->config.auth_enabled()) {
      next->auth = std::make_shared<BasicAuth>(next->config.basic_auth_users);
    }
    if (!initial && static_cast<bool>(next->tls) != static_cast<bool>(st.security->tls)) {
      log::warn("Web config reload turns TLS " + std::string(next->tls ? "on" : "off") +
                "; new connections use it");
    }
    st.bucket.configure(next->config.rate_limit_interval, next->config.rate_limit_burst);
    st.security = std::move(next);
    st.last_reload_ok = true;
    if (!initial) {
      ++st.counters.reloads_ok;
      log::info("Web config reloaded", {{"file", path}, {"trigger", trigger}});
    }
  } catch (const ConfigError& e) {
    if (initial) throw;
    if (st.stamps.empty()) st.stamps = stamps;
    st.stamps[0] = stamps[0];
    st.last_reload_ok = false;
    ++st.counters.reloads_failed;
    log::error("Web config reload failed; keeping the running config",
               {{"file", path}, {"trigger", trigger}, {"err", e.message}});
  }
}

void watch_files(const std::shared_ptr<HttpServer::State>& state) {
  state->watch_timer.expires_after(kWatchInterval);
  state->watch_timer.async_wait([state](beast::error_code ec) {
    if (ec || state->stopping) return;
    for (const auto& s : state->stamps) {
      if (!(stamp_of(s.path) == s)) {
        load_web_config(*state, "file change", false);
        break;
      }
    }
    watch_files(state);
  });
}

std::size_t connection_cap(int configured) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return static_cast<std::size_t>(configured);
  if (rl.rlim_cur < rl.rlim_max) {  // as Go programs do: the soft limit up to the hard one
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  const rlim_t usable = rl.rlim_cur > 2 * kFdReserve ? rl.rlim_cur - kFdReserve : rl.rlim_cur / 2;
  return static_cast<std::size_t>(
      std::max<rlim_t>(1, std::min<rlim_t>(usable, static_cast<rlim_t>(configured))));
}

}  // namespace

HttpServer::HttpServer(net::io_context& io, WebConfig config, HttpHandler handler)
    : state_(std::make_shared<State>(io, std::move(config), std::move(handler))),
      bcrypt_pool_(std::make_unique<net::thread_pool>(1)) {
  state_->bcrypt_pool = bcrypt_pool_.get();
}

HttpServer::~HttpServer() {
  state_->stopping = true;
  state_->io_work.reset();
  close_acceptor(state_);
  if (accept_thread_.joinable()) accept_thread_.join();
  state_->watch_timer.cancel();
  state_->trim_timer.cancel();
  state_->bcrypt_pool = nullptr;
  bcrypt_pool_->join();
}

void HttpServer::start() {
  if (!state_->config.config_file.empty()) {
    load_web_config(*state_, "start", true);
    const auto& sec = *state_->security;
    if (sec.tls) {
      log::info("TLS is enabled", {{"client_auth_type", to_string(sec.config.tls.client_auth)},
                                   {"min_version", sec.config.tls.min_version}});
    } else {
      log::info("TLS is disabled");
    }
    if (sec.config.http2) {
      log::info("http_server_config.http2 is accepted; this exporter serves HTTP/1.1 only");
    }
    log::info(sec.auth ? "Basic auth is enabled" : "Basic auth is disabled",
              {{"users", sec.config.basic_auth_users.size()},
               {"open_paths", static_cast<std::uint64_t>(sec.config.auth_excluded_paths.size())}});
    if (state_->bucket.enabled()) {
      log::info("Rate limit is enabled",
                {{"interval", format_duration(sec.config.rate_limit_interval)},
                 {"burst", sec.config.rate_limit_burst}});
    }
  } else {
    log::info("No --web.config.file: plain HTTP, no authentication");
  }
  state_->cap = connection_cap(state_->config.max_connections);
  if (state_->cap < static_cast<std::size_t>(state_->config.max_connections)) {
    log::info("web.max_connections lowered to fit the open-file limit",
              {{"max_connections", state_->cap}});
  }

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
  state_->bound = acceptor.local_endpoint();
  accept_next(state_);
  state_->io_work.emplace(state_->io.get_executor());
  state_->accepting = true;
  accept_thread_ = std::thread([state = state_] { state->accept_io.run(); });
  if (!state_->config.config_file.empty()) watch_files(state_);
}

void HttpServer::reload_web_config() {
  if (state_->config.config_file.empty()) return;
  load_web_config(*state_, "SIGHUP", false);
}

void HttpServer::stop() {
  state_->stopping = true;
  state_->io_work.reset();
  close_acceptor(state_);
  state_->watch_timer.cancel();
  // Idle and incomplete connections close now; a request being answered finishes first.
  std::vector<SessionBase*> idle;
  for (auto* s : state_->sessions) {
    if (s->evictable()) idle.push_back(s);
  }
  for (auto* s : idle) s->close();
}

tcp::endpoint HttpServer::local_endpoint() const {
  return state_->bound;
}

std::size_t HttpServer::active_connections() const {
  return state_->active;
}

std::size_t HttpServer::max_connections() const {
  return state_->cap;
}

void HttpServer::render_metrics(std::string& out, ExpositionFormat format) const {
  const auto& c = state_->counters;
  auto counter = [&](std::string_view name, std::string_view help, double value) {
    append_family_header(out, format, name, help, MetricType::counter);
    append_sample(out, name, {}, value);
  };
  auto gauge = [&](std::string_view name, std::string_view help, double value) {
    append_family_header(out, format, name, help, MetricType::gauge);
    append_sample(out, name, {}, value);
  };
  auto n = [](const std::atomic<std::uint64_t>& v) { return static_cast<double>(v.load()); };
  counter("modal_exporter_http_connections_accepted_total",
          "Connections accepted by the metrics server.", n(c.accepted));
  counter("modal_exporter_http_connections_evicted_total",
          "Connections closed to admit a newcomer while at the cap (the one idle or incomplete "
          "the longest).",
          n(c.evicted));
  counter("modal_exporter_http_connections_refused_total",
          "Connections closed on accept: at the cap with every connection busy.", n(c.refused));
  append_family_header(out, format, "modal_exporter_http_connections_timed_out_total",
                       "Connections closed by a deadline, by phase: header (TLS handshake and "
                       "request headers), body, idle (keep-alive) or write.",
                       MetricType::counter);
  static const char* kPhases[] = {"header", "body", "idle", "write"};
  for (int i = 0; i < 4; ++i) {
    append_sample(out, "modal_exporter_http_connections_timed_out_total", {{"phase", kPhases[i]}},
                  n(c.timed_out[i]));
  }
  gauge("modal_exporter_http_connections_open", "Connections open now.",
        static_cast<double>(state_->sessions.size()));
  gauge("modal_exporter_http_connections_max",
        "The connection cap: web.max_connections, bounded by the open-file limit.",
        static_cast<double>(state_->cap));
  if (state_->config.config_file.empty()) return;
  append_family_header(out, format, "modal_exporter_http_auth_failures_total",
                       "Requests refused with 401: no or malformed credentials (missing), wrong "
                       "user or password (wrong).",
                       MetricType::counter);
  append_sample(out, "modal_exporter_http_auth_failures_total", {{"reason", "missing"}},
                n(c.auth_missing));
  append_sample(out, "modal_exporter_http_auth_failures_total", {{"reason", "wrong"}},
                n(c.auth_wrong));
  counter("modal_exporter_http_rate_limited_total",
          "Requests refused with 429 by the web config's rate_limit.", n(c.rate_limited));
  counter("modal_exporter_http_tls_handshake_failures_total",
          "TLS handshakes that failed (bad client certificate, no shared version or cipher, "
          "plain HTTP on the TLS port, SAN not allowed).",
          n(c.tls_failures));
  gauge("modal_exporter_web_config_last_reload_successful",
        "1 when the last load of --web.config.file (start, SIGHUP or file change) succeeded.",
        state_->last_reload_ok ? 1 : 0);
}

}  // namespace mx
