#include "fake_kube_api.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>
#include <utility>
#include <variant>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "common/base64.h"
#include "selectors.h"
#include "test_ca.h"

namespace mx::testing {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using nlohmann::json;

namespace {

// Real clusters never hand out small resourceVersions; starting well above 0 keeps "0" (which
// means "any version" to the API) from ever being a real one.
constexpr uint64_t kFirstResourceVersion = 100;
constexpr std::size_t kDefaultMaxPageSize = 500;
constexpr std::size_t kDefaultHistoryLimit = 20000;
constexpr std::size_t kMaxRecordedRequests = 200000;
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
constexpr auto kIdleTimeout = std::chrono::minutes(5);
constexpr auto kWriteTimeout = std::chrono::seconds(30);
constexpr auto kLingerTimeout = std::chrono::seconds(5);

using TypeKey = std::pair<std::string, std::string>;  // group_version, plural

struct ResourceType {
  std::string kind;
  bool namespaced = true;
};

// Objects of one resource type by "namespace/name" (namespace empty when cluster-scoped), which
// is also the order LIST pages follow.
using ObjectMap = std::map<std::string, json>;

struct Change {
  uint64_t rv = 0;
  TypeKey type;
  std::string event;  // ADDED, MODIFIED, DELETED
  std::string key;
  std::string namespace_name;
  json object;                   // the state after (DELETED: the last state, with the new rv)
  std::optional<json> previous;  // the state before (MODIFIED, DELETED)
};

struct WatchSpec {
  TypeKey type;
  std::string kind;
  std::string namespace_name;  // empty = all namespaces
  kube::LabelSelector labels;
  kube::FieldSelector fields;
  bool bookmarks = false;
  std::optional<uint64_t> from_rv;  // nullopt: current state as ADDED first
  int timeout_seconds = 0;          // 0 = no timeout

  bool matches(const json& object) const {
    return labels.matches(object) && fields.matches(object);
  }
};

struct Reply {
  http::status status = http::status::ok;
  std::string body;
  std::string content_type = "application/json";
  std::optional<int> retry_after;
};

using Outcome = std::variant<Reply, WatchSpec>;

struct Failure {
  int status;
  int remaining;
  std::string substring;
  std::optional<int> retry_after;
};

std::string dump(const json& value) {
  // Replace rather than throw on invalid UTF-8 a test may have put into an object.
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string reason_for(int code) {
  switch (code) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 409:
      return "Conflict";
    case 410:
      return "Expired";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    case 500:
      return "InternalError";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "Timeout";
    default:
      return "";
  }
}

json status_object(int code, const std::string& message, json details = nullptr) {
  json status = {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
                 {"status", "Failure"}, {"message", message}, {"reason", reason_for(code)},
                 {"code", code}};
  if (!details.is_null()) status["details"] = std::move(details);
  return status;
}

Reply status_reply(int code, const std::string& message, json details = nullptr) {
  Reply reply;
  reply.status = static_cast<http::status>(code);
  reply.body = dump(status_object(code, message, std::move(details)));
  return reply;
}

std::string expired_event_line() {
  return dump(json{{"type", "ERROR"}, {"object", status_object(410, "too old resource version")}}) +
         "\n";
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%' && i + 2 < in.size()) {
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += char(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += (plus_is_space && c == '+') ? ' ' : c;
  }
  return out;
}

std::map<std::string, std::string> parse_query(std::string_view query) {
  std::map<std::string, std::string> params;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    std::string key = percent_decode(pair.substr(0, eq), true);
    std::string value =
        eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1), true);
    params[key] = value;
  }
  return params;
}

template <typename T>
std::optional<T> parse_number(std::string_view text) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::string namespace_of(const json& object) {
  auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return "";
  auto ns = meta->find("namespace");
  return ns != meta->end() && ns->is_string() ? ns->get<std::string>() : "";
}

bool truthy(const std::string& value) {
  return value == "1" || value == "true";
}

std::string now_rfc3339() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string group_of(const std::string& group_version) {
  auto slash = group_version.find('/');
  return slash == std::string::npos ? std::string() : group_version.substr(0, slash);
}

std::string guess_kind(const std::string& plural) {
  std::string kind = plural;
  if (kind.size() > 1 && kind.back() == 's') kind.pop_back();
  if (!kind.empty()) kind[0] = char(std::toupper(static_cast<unsigned char>(kind[0])));
  return kind;
}

void append_chunk(std::string& out, std::string_view data) {
  if (data.empty()) return;  // an empty chunk would terminate the body
  char size[24];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  out += size;
  out += data;
  out += "\r\n";
}

class Session;

}  // namespace

// ---------------------------------------------------------------------------------------------

namespace {

// Everything the server shares between the public methods (any thread) and the io thread.
struct Server {
  struct WatchReg {
    WatchSpec spec;
    std::weak_ptr<Session> session;
    net::any_io_executor executor;
  };

  struct WatchStart {
    std::vector<std::string> lines;
    std::shared_ptr<WatchReg> reg;  // null: the watch ends after the lines
  };

  explicit Server(FakeKubeApi::Options opts);

  // Store helpers; all expect mu to be held.
  ResourceType& ensure_type(const TypeKey& type);
  void record_change(Change change);
  std::optional<std::string> event_line(const WatchSpec& spec, const Change& change) const;
  void post_to_watch(const WatchReg& reg, std::string line, bool end_after);
  std::string new_uid();

  // Request handling (any thread; takes mu itself).
  Outcome handle(const std::string& method, const std::string& target,
                 const std::string& authorization, bool client_certificate = false);
  Outcome route(const std::string& path, const std::map<std::string, std::string>& query);
  Reply list(const TypeKey& type, const ResourceType& info, const std::string& ns,
             const std::map<std::string, std::string>& query);
  Reply injected(int status, const std::optional<int>& retry_after, const std::string& method,
                 const std::string& target);

  WatchStart register_watch(const WatchSpec& spec, const std::shared_ptr<Session>& session);
  void unregister_watch(const WatchReg* reg);

  // Server lifecycle (io thread).
  void do_accept();

  FakeKubeApi::Options options;
  kube::TlsMaterial tls;

  mutable std::mutex mu;
  std::string token;
  uint64_t rv = kFirstResourceVersion;
  uint64_t min_valid_rv = 0;  // watches/continue tokens from an older rv are too old
  std::map<TypeKey, ResourceType> types;
  std::map<TypeKey, ObjectMap> objects;
  std::deque<Change> history;
  std::size_t history_limit = kDefaultHistoryLimit;
  std::vector<std::shared_ptr<WatchReg>> watches;
  bool serving = false;
  std::vector<Failure> failures;
  std::vector<std::string> requests;
  std::size_t max_page_size = kDefaultMaxPageSize;
  std::mt19937_64 rng{std::random_device{}()};

  std::atomic<std::size_t> chunk_size{0};
  std::atomic<uint16_t> bound_port{0};

  std::mutex lifecycle_mu;
  std::optional<ssl::context> ssl_ctx;
  std::unique_ptr<net::io_context> ioc;
  std::optional<tcp::acceptor> acceptor;
  std::thread thread;
  std::vector<std::weak_ptr<Session>> sessions;  // io thread only
};

// One TLS connection: a keep-alive loop of ordinary requests, or, once a watch request arrives,
// a chunked event stream until the watch ends (then the connection closes).
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Server& impl, tcp::socket socket, ssl::context& ctx)
      : impl_(impl),
        stream_(std::move(socket), ctx),
        watch_timer_(stream_.get_executor()),
        linger_timer_(stream_.get_executor()) {}

  // A certificate was presented and the handshake verified it against the test CA.
  bool verified_client_certificate() {
    X509* peer = SSL_get1_peer_certificate(stream_.native_handle());
    if (peer == nullptr) return false;
    X509_free(peer);
    return SSL_get_verify_result(stream_.native_handle()) == X509_V_OK;
  }

  void start() {
    beast::get_lowest_layer(stream_).expires_after(kHandshakeTimeout);
    stream_.async_handshake(ssl::stream_base::server,
                            [self = shared_from_this()](beast::error_code ec) {
                              if (ec) return self->close();
                              self->do_read();
                            });
  }

  net::any_io_executor executor() { return stream_.get_executor(); }

  // Events posted from FakeKubeApi's public methods (any thread) run here on the io thread.
  void watch_line(const std::string& line) {
    add_event(line);
    flush();
  }

  // Ends the stream cleanly: pending events, then the terminating chunk.
  void end_watch() {
    if (ending_ || closed_) return;
    ending_ = true;
    unregister();
    watch_timer_.cancel();
    frame_payload();
    out_ += "0\r\n\r\n";
    flush();
  }

  // Silent from now on, still connected: see FakeKubeApi::stall_open_watches.
  void stall() {
    if (ending_ || closed_) return;
    stalled_ = true;
    unregister();
    watch_timer_.cancel();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    unregister();
    watch_timer_.cancel();
    linger_timer_.cancel();
    beast::get_lowest_layer(stream_).close();
  }

 private:
  void do_read() {
    if (closed_) return;
    parser_.emplace();
    parser_->body_limit(1 << 20);
    parser_->header_limit(64 * 1024);
    beast::get_lowest_layer(stream_).expires_after(kIdleTimeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (closed_) return;
    if (ec == http::error::end_of_stream) return graceful_close();
    if (ec && ec.category() == beast::http::make_error_code(http::error::bad_method).category()) {
      // Malformed HTTP: say so, then hang up, as a real server does.
      Reply reply = status_reply(400, "malformed HTTP request: " + ec.message());
      return send_reply(std::move(reply), false);
    }
    if (ec) return close();
    auto request = parser_->release();
    std::string method(request.method_string());
    std::string target(request.target());
    std::string authorization(request[http::field::authorization]);
    bool keep_alive = request.keep_alive();
    Outcome outcome;
    try {
      outcome = impl_.handle(method, target, authorization, verified_client_certificate());
    } catch (const std::exception& e) {
      outcome = status_reply(500, std::string("fake kube API internal error: ") + e.what());
    }
    if (auto* reply = std::get_if<Reply>(&outcome))
      return send_reply(std::move(*reply), keep_alive);
    start_watch(std::get<WatchSpec>(std::move(outcome)));
  }

  void send_reply(Reply reply, bool keep_alive) {
    auto res = std::make_shared<http::response<http::string_body>>(reply.status, 11);
    res->set(http::field::server, "fake-kube-apiserver");
    res->set(http::field::content_type, reply.content_type);
    res->set(http::field::cache_control, "no-cache, private");
    if (reply.retry_after) res->set(http::field::retry_after, std::to_string(*reply.retry_after));
    res->keep_alive(keep_alive);
    res->body() = std::move(reply.body);
    res->prepare_payload();
    beast::get_lowest_layer(stream_).expires_after(kWriteTimeout);
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
                        if (self->closed_) return;
                        if (ec) return self->close();
                        if (!res->keep_alive()) return self->graceful_close();
                        self->do_read();
                      });
  }

  void graceful_close() {
    if (closed_) return;
    beast::get_lowest_layer(stream_).expires_after(kLingerTimeout);
    stream_.async_shutdown([self = shared_from_this()](beast::error_code) { self->close(); });
  }

  void start_watch(WatchSpec spec) {
    beast::get_lowest_layer(stream_).expires_never();
    out_ =
        "HTTP/1.1 200 OK\r\n"
        "Server: fake-kube-apiserver\r\n"
        "Content-Type: application/json\r\n"
        "Cache-Control: no-cache, private\r\n"
        "Transfer-Encoding: chunked\r\n"
        "Connection: close\r\n"
        "\r\n";
    auto start = impl_.register_watch(spec, shared_from_this());
    reg_ = start.reg;
    for (const auto& line : start.lines) add_event(line);
    if (!reg_) {
      end_watch();
    } else if (spec.timeout_seconds > 0) {
      watch_timer_.expires_after(std::chrono::seconds(spec.timeout_seconds));
      watch_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
        if (!ec && !self->stalled_) self->end_watch();
      });
    }
    flush();
    drain();
  }

  // While streaming we never expect another request, but reading notices a client that hangs
  // up, so its watch stops counting as open at once rather than at the next failed write.
  void drain() {
    stream_.async_read_some(net::buffer(drain_buffer_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (self->closed_) return;
                              if (ec) return self->close();
                              self->drain();
                            });
  }

  void add_event(const std::string& line) {
    if (ending_ || closed_) return;
    if (impl_.chunk_size.load() == 0) {
      append_chunk(out_, line);
    } else {
      payload_ += line;
    }
  }

  void frame_payload() {
    std::size_t size = impl_.chunk_size.load();
    if (size == 0) size = payload_.size();
    for (std::size_t at = 0; at < payload_.size(); at += size) {
      append_chunk(out_, std::string_view(payload_).substr(at, size));
    }
    payload_.clear();
  }

  void flush() {
    if (closed_ || writing_) return;
    // Framing only when no write is in flight lets events queued meanwhile share chunks.
    frame_payload();
    if (out_.empty()) return;
    writing_ = true;
    in_flight_ = std::move(out_);
    out_.clear();
    net::async_write(stream_, net::buffer(in_flight_),
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       self->on_watch_write(ec);
                     });
  }

  void on_watch_write(beast::error_code ec) {
    writing_ = false;
    if (closed_) return;
    if (ec) return close();
    if (!out_.empty() || !payload_.empty()) return flush();
    if (ending_) finish();
  }

  // After the terminating chunk: half-close and wait for the client to hang up (it was told
  // "Connection: close"), so no unread bytes make the kernel reset the connection early.
  void finish() {
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_send, ignored);
    linger_timer_.expires_after(kLingerTimeout);
    linger_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->close();
    });
  }

  void unregister() {
    if (reg_) {
      impl_.unregister_watch(reg_.get());
      reg_.reset();
    }
  }

  Server& impl_;
  beast::ssl_stream<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  net::steady_timer watch_timer_;
  net::steady_timer linger_timer_;
  std::shared_ptr<Server::WatchReg> reg_;
  std::string out_;        // framed bytes waiting for the next write
  std::string payload_;    // event bytes not yet cut into chunks
  std::string in_flight_;  // bytes of the write in progress
  std::array<char, 1024> drain_buffer_{};
  bool writing_ = false;
  bool stalled_ = false;
  bool ending_ = false;
  bool closed_ = false;
};

}  // namespace

// ---------------------------------------------------------------------------------------------

Server::Server(FakeKubeApi::Options opts) : options(std::move(opts)), tls(kube::make_test_tls()) {
  token = options.token;
  types[{"v1", "pods"}] = {"Pod", true};
  types[{"v1", "events"}] = {"Event", true};
  types[{"v1", "namespaces"}] = {"Namespace", false};
  types[{"modal-operator.io/v1alpha1", "modaljobs"}] = {"ModalJob", true};
  types[{"modal-operator.io/v1alpha1", "modalendpoints"}] = {"ModalEndpoint", true};
  types[{"modal-operator.io/v1alpha1", "modalfunctions"}] = {"ModalFunction", true};

  ssl_ctx.emplace(ssl::context::tls_server);
  ssl_ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  ssl_ctx->use_certificate_chain(net::buffer(tls.server_cert_pem));
  ssl_ctx->use_private_key(net::buffer(tls.server_key_pem), ssl::context::pem);
  // Client certificates signed by the test CA authenticate like the token (an API server's
  // --client-ca-file); a client without one still connects.
  ssl_ctx->add_certificate_authority(net::buffer(tls.ca_pem));
  ssl_ctx->set_verify_mode(ssl::verify_peer);
}

ResourceType& Server::ensure_type(const TypeKey& type) {
  auto it = types.find(type);
  if (it == types.end())
    it = types.emplace(type, ResourceType{guess_kind(type.second), true}).first;
  return it->second;
}

std::string Server::new_uid() {
  uint64_t a = rng();
  uint64_t b = rng();
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-%04x-%012llx", uint32_t(a >> 32),
                uint32_t((a >> 16) & 0xffff), uint32_t(a & 0xfff),
                uint32_t(0x8000 | ((b >> 48) & 0x3fff)),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

std::optional<std::string> Server::event_line(const WatchSpec& spec, const Change& change) const {
  if (change.type != spec.type) return std::nullopt;
  if (!spec.namespace_name.empty() && change.namespace_name != spec.namespace_name) {
    return std::nullopt;
  }
  bool now = change.event != "DELETED" && spec.matches(change.object);
  bool before = change.previous && spec.matches(*change.previous);
  std::string type;
  if (change.event == "DELETED") {
    if (before) type = "DELETED";
  } else if (now && before) {
    type = "MODIFIED";
  } else if (now) {
    type = "ADDED";  // new, or changed so that it now matches the selectors
  } else if (before) {
    type = "DELETED";  // changed so that it no longer matches
  }
  if (type.empty()) return std::nullopt;
  return dump(json{{"type", type}, {"object", change.object}}) + "\n";
}

void Server::post_to_watch(const WatchReg& reg, std::string line, bool end_after) {
  auto session = reg.session.lock();
  if (!session) return;
  net::post(reg.executor, [session, line = std::move(line), end_after] {
    if (!line.empty()) session->watch_line(line);
    if (end_after) session->end_watch();
  });
}

void Server::record_change(Change change) {
  for (const auto& reg : watches) {
    if (auto line = event_line(reg->spec, change)) post_to_watch(*reg, std::move(*line), false);
  }
  history.push_back(std::move(change));
  while (history.size() > history_limit) {
    min_valid_rv = std::max(min_valid_rv, history.front().rv);
    history.pop_front();
  }
}

Server::WatchStart Server::register_watch(const WatchSpec& spec,
                                          const std::shared_ptr<Session>& session) {
  std::lock_guard lock(mu);
  WatchStart start;
  if (!serving) return start;
  if (spec.from_rv && *spec.from_rv < min_valid_rv) {
    start.lines.push_back(expired_event_line());
    return start;
  }
  if (!spec.from_rv) {
    auto objects_it = objects.find(spec.type);
    if (objects_it != objects.end()) {
      for (const auto& [key, object] : objects_it->second) {
        if (!spec.namespace_name.empty() && namespace_of(object) != spec.namespace_name) {
          continue;
        }
        if (!spec.matches(object)) continue;
        start.lines.push_back(dump(json{{"type", "ADDED"}, {"object", object}}) + "\n");
      }
    }
  } else {
    auto first = std::upper_bound(history.begin(), history.end(), *spec.from_rv,
                                  [](uint64_t rv, const Change& c) { return rv < c.rv; });
    for (auto it = first; it != history.end(); ++it) {
      if (auto line = event_line(spec, *it)) start.lines.push_back(std::move(*line));
    }
  }
  auto reg = std::make_shared<WatchReg>();
  reg->spec = spec;
  reg->session = session;
  reg->executor = session->executor();
  watches.push_back(reg);
  start.reg = std::move(reg);
  return start;
}

void Server::unregister_watch(const WatchReg* reg) {
  std::lock_guard lock(mu);
  std::erase_if(watches, [reg](const auto& w) { return w.get() == reg; });
}

Reply Server::injected(int status, const std::optional<int>& retry_after, const std::string& method,
                       const std::string& target) {
  std::string message;
  json details = nullptr;
  switch (status) {
    case 401:
      message = "Unauthorized";
      break;
    case 403:
      message = "forbidden: User \"system:serviceaccount:default:modal-exporter\" cannot " +
                method + " " + target.substr(0, target.find('?'));
      break;
    case 410:
      message = "too old resource version";
      break;
    case 429:
      message = "Too many requests, please try again later.";
      if (retry_after) details = json{{"retryAfterSeconds", *retry_after}};
      break;
    default:
      message = "injected failure (HTTP " + std::to_string(status) + ")";
  }
  Reply reply = status_reply(status, message, std::move(details));
  reply.retry_after = retry_after;
  return reply;
}

Outcome Server::handle(const std::string& method, const std::string& target,
                       const std::string& authorization, bool client_certificate) {
  {
    std::lock_guard lock(mu);
    // A long-running simulator must not grow without bound: keep the most recent half.
    if (requests.size() >= kMaxRecordedRequests) {
      requests.erase(requests.begin(), requests.begin() + long(kMaxRecordedRequests / 2));
    }
    requests.push_back(method + " " + target);
    for (auto it = failures.begin(); it != failures.end(); ++it) {
      if (!it->substring.empty() && target.find(it->substring) == std::string::npos) continue;
      int status = it->status;
      auto retry_after = it->retry_after;
      if (--it->remaining <= 0) failures.erase(it);
      return injected(status, retry_after, method, target);
    }
    constexpr std::string_view kBearer = "Bearer ";
    bool authorized = authorization.size() > kBearer.size() &&
                      std::equal(kBearer.begin(), kBearer.end(), authorization.begin(),
                                 [](char a, char b) {
                                   return std::tolower(static_cast<unsigned char>(a)) ==
                                          std::tolower(static_cast<unsigned char>(b));
                                 }) &&
                      authorization.substr(kBearer.size()) == token;
    if (!authorized && !client_certificate) return status_reply(401, "Unauthorized");
  }
  if (method != "GET") {
    return status_reply(405, "the server does not allow this method on the requested resource");
  }
  auto question = target.find('?');
  std::string path = target.substr(0, question);
  auto query =
      parse_query(question == std::string::npos ? std::string_view()
                                                : std::string_view(target).substr(question + 1));
  return route(path, query);
}

Outcome Server::route(const std::string& path, const std::map<std::string, std::string>& query) {
  auto not_found = [] {
    return status_reply(404, "the server could not find the requested resource");
  };
  std::vector<std::string> segments;
  for (std::size_t start = 0; start <= path.size();) {
    auto slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    if (slash > start) segments.push_back(percent_decode(path.substr(start, slash - start), false));
    start = slash + 1;
  }
  if (segments.empty()) return not_found();
  if (segments.size() == 1 && segments[0] == "version") {
    Reply reply;
    reply.body = dump(json{{"major", "1"},
                           {"minor", "29"},
                           {"gitVersion", "v1.29.0-fake"},
                           {"platform", "linux/amd64"}});
    return reply;
  }

  std::string gv;
  std::size_t rest_at;
  if (segments[0] == "api") {
    if (segments.size() == 1) {
      Reply reply;
      reply.body = dump(json{{"kind", "APIVersions"}, {"versions", {"v1"}}});
      return reply;
    }
    gv = segments[1];
    rest_at = 2;
  } else if (segments[0] == "apis" && segments.size() == 1) {
    // Discovery of the groups (legacy APIGroupList), so that kubectl can resolve resources.
    std::lock_guard lock(mu);
    std::map<std::string, std::vector<std::string>> groups;
    for (const auto& [key, info] : types) {
      const auto slash = key.first.find('/');
      if (slash == std::string::npos) continue;  // the core group is served under /api
      groups[key.first.substr(0, slash)].push_back(key.first.substr(slash + 1));
    }
    json list = json::array();
    for (auto& [group, versions] : groups) {
      std::sort(versions.begin(), versions.end());
      versions.erase(std::unique(versions.begin(), versions.end()), versions.end());
      json entries = json::array();
      for (const auto& v : versions)
        entries.push_back({{"groupVersion", group + "/" + v}, {"version", v}});
      list.push_back({{"name", group}, {"versions", entries}, {"preferredVersion", entries[0]}});
    }
    Reply reply;
    reply.body = dump(json{{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", list}});
    return reply;
  } else if (segments[0] == "apis" && segments.size() >= 3) {
    gv = segments[1] + "/" + segments[2];
    rest_at = 3;
  } else {
    return not_found();
  }
  std::vector<std::string> rest(segments.begin() + long(rest_at), segments.end());

  if (rest.empty()) {  // discovery of one group/version
    std::lock_guard lock(mu);
    json resources = json::array();
    for (const auto& [key, info] : types) {
      if (key.first != gv) continue;
      resources.push_back({{"name", key.second},
                           {"singularName", ""},
                           {"namespaced", info.namespaced},
                           {"kind", info.kind},
                           {"verbs", {"get", "list", "watch"}}});
    }
    if (resources.empty()) return not_found();
    Reply reply;
    reply.body = dump(json{{"kind", "APIResourceList"},
                           {"apiVersion", "v1"},
                           {"groupVersion", gv},
                           {"resources", resources}});
    return reply;
  }

  std::string ns, plural, name;
  if (rest[0] == "namespaces" && rest.size() >= 3) {
    ns = rest[1];
    plural = rest[2];
    if (rest.size() == 4) name = rest[3];
    if (rest.size() > 4) return not_found();
  } else {
    plural = rest[0];
    if (rest.size() == 2) name = rest[1];
    if (rest.size() > 2) return not_found();
  }

  TypeKey type{gv, plural};
  ResourceType info;
  {
    std::lock_guard lock(mu);
    auto it = types.find(type);
    if (it == types.end()) return not_found();
    info = it->second;
  }
  if (info.namespaced && !name.empty() && ns.empty()) return not_found();
  if (!info.namespaced && !ns.empty()) return not_found();

  if (!name.empty()) {
    std::lock_guard lock(mu);
    auto& map = objects[type];
    auto it = map.find(ns + "/" + name);
    if (it == map.end()) {
      json details = {{"name", name}, {"kind", plural}};
      if (!group_of(gv).empty()) details["group"] = group_of(gv);
      return status_reply(404, plural + " \"" + name + "\" not found", std::move(details));
    }
    Reply reply;
    reply.body = dump(it->second);
    return reply;
  }

  auto param = [&](const char* key) {
    auto it = query.find(key);
    return it == query.end() ? std::string() : it->second;
  };
  if (!truthy(param("watch"))) return list(type, info, ns, query);

  WatchSpec spec;
  spec.type = type;
  spec.kind = info.kind;
  spec.namespace_name = ns;
  try {
    spec.labels = kube::LabelSelector::parse(param("labelSelector"));
    spec.fields = kube::FieldSelector::parse(param("fieldSelector"));
  } catch (const std::invalid_argument& e) {
    return status_reply(400, e.what());
  }
  spec.bookmarks = truthy(param("allowWatchBookmarks"));
  std::string rv_text = param("resourceVersion");
  if (!rv_text.empty() && rv_text != "0") {
    spec.from_rv = parse_number<uint64_t>(rv_text);
    if (!spec.from_rv) return status_reply(400, "invalid resourceVersion: \"" + rv_text + "\"");
  }
  std::string timeout_text = param("timeoutSeconds");
  if (!timeout_text.empty()) {
    auto timeout = parse_number<int>(timeout_text);
    if (!timeout || *timeout < 0) {
      return status_reply(400, "invalid timeoutSeconds: \"" + timeout_text + "\"");
    }
    spec.timeout_seconds = *timeout;
  }
  return spec;
}

Reply Server::list(const TypeKey& type, const ResourceType& info, const std::string& ns,
                   const std::map<std::string, std::string>& query) {
  auto param = [&](const char* key) {
    auto it = query.find(key);
    return it == query.end() ? std::string() : it->second;
  };
  kube::LabelSelector labels;
  kube::FieldSelector fields;
  try {
    labels = kube::LabelSelector::parse(param("labelSelector"));
    fields = kube::FieldSelector::parse(param("fieldSelector"));
  } catch (const std::invalid_argument& e) {
    return status_reply(400, e.what());
  }
  std::size_t limit = 0;
  if (std::string text = param("limit"); !text.empty()) {
    auto parsed = parse_number<std::size_t>(text);
    if (!parsed) return status_reply(400, "invalid limit: \"" + text + "\"");
    limit = *parsed;
  }

  std::lock_guard lock(mu);
  if (max_page_size > 0 && limit > 0) limit = std::min(limit, max_page_size);

  uint64_t snapshot_rv = rv;
  std::optional<std::string> after_key;
  if (std::string token_text = param("continue"); !token_text.empty()) {
    json token_json;
    auto decoded = base64::decode(token_text);
    if (decoded) token_json = json::parse(*decoded, nullptr, false);
    if (!token_json.is_object() || !token_json.contains("rv") ||
        !token_json["rv"].is_number_unsigned() || !token_json.contains("start") ||
        !token_json["start"].is_string()) {
      return status_reply(400, "continue key is not valid: cannot decode the continue token");
    }
    snapshot_rv = token_json["rv"].get<uint64_t>();
    if (snapshot_rv < min_valid_rv || snapshot_rv > rv) {
      return status_reply(410,
                          "The provided continue parameter is too old to display a consistent "
                          "list result. You can start a new list without the continue "
                          "parameter.");
    }
    after_key = token_json["start"].get<std::string>();
  }

  // The state at snapshot_rv: today's objects with every later change undone.
  std::map<std::string, const json*> view;
  for (const auto& [key, object] : objects[type]) view.emplace(key, &object);
  for (auto it = history.rbegin(); it != history.rend() && it->rv > snapshot_rv; ++it) {
    if (it->type != type) continue;
    if (it->previous) {
      view[it->key] = &*it->previous;
    } else {
      view.erase(it->key);
    }
  }

  json items = json::array();
  std::size_t remaining = 0;
  std::string last_key;
  auto begin = after_key ? view.upper_bound(*after_key) : view.begin();
  for (auto it = begin; it != view.end(); ++it) {
    const json& object = *it->second;
    if (!ns.empty() && namespace_of(object) != ns) continue;
    if (!labels.matches(object) || !fields.matches(object)) continue;
    if (limit > 0 && items.size() >= limit) {
      ++remaining;
      continue;
    }
    json item = object;
    if (type.first == "v1") {  // a real server leaves these out of core list items
      item.erase("kind");
      item.erase("apiVersion");
    }
    items.push_back(std::move(item));
    last_key = it->first;
  }

  json metadata = {{"resourceVersion", std::to_string(snapshot_rv)}};
  if (remaining > 0) {
    metadata["continue"] = base64::encode(
        dump(json{{"v", "meta.k8s.io/v1"}, {"rv", snapshot_rv}, {"start", last_key}}),
        base64::Alphabet::url);
    if (labels.empty() && fields.empty()) metadata["remainingItemCount"] = remaining;
  }
  Reply reply;
  reply.body = dump(json{{"kind", info.kind + "List"},
                         {"apiVersion", type.first},
                         {"metadata", std::move(metadata)},
                         {"items", std::move(items)}});
  return reply;
}

void Server::do_accept() {
  acceptor->async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (!acceptor->is_open()) return;
    if (!ec) {
      auto session = std::make_shared<Session>(*this, std::move(socket), *ssl_ctx);
      std::erase_if(sessions, [](const auto& weak) { return weak.expired(); });
      sessions.push_back(session);
      session->start();
    }
    do_accept();
  });
}

// ---------------------------------------------------------------------------------------------

struct FakeKubeApi::Impl : Server {
  using Server::Server;
};

FakeKubeApi::FakeKubeApi() : FakeKubeApi(Options{}) {}

FakeKubeApi::FakeKubeApi(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

FakeKubeApi::~FakeKubeApi() {
  stop();
}

void FakeKubeApi::start() {
  Impl& d = *impl_;
  std::lock_guard life(d.lifecycle_mu);
  if (d.ioc) return;
  d.ioc = std::make_unique<net::io_context>(1);
  try {
    uint16_t port = d.bound_port.load() != 0 ? d.bound_port.load() : d.options.port;
    tcp::endpoint endpoint(net::ip::make_address(d.options.bind_address), port);
    d.acceptor.emplace(*d.ioc);
    d.acceptor->open(endpoint.protocol());
    d.acceptor->set_option(net::socket_base::reuse_address(true));
    d.acceptor->bind(endpoint);
    d.acceptor->listen(net::socket_base::max_listen_connections);
    d.bound_port = d.acceptor->local_endpoint().port();
  } catch (const std::exception& e) {
    d.acceptor.reset();
    d.ioc.reset();
    throw std::runtime_error("fake kube API: cannot listen on " + d.options.bind_address + ":" +
                             std::to_string(d.options.port) + ": " + e.what());
  }
  {
    std::lock_guard lock(d.mu);
    d.serving = true;
  }
  d.do_accept();
  d.thread = std::thread([&d] {
    for (;;) {
      try {
        d.ioc->run();
        return;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "fake kube API: handler failed: %s\n", e.what());
      }
    }
  });
}

void FakeKubeApi::stop() {
  Impl& d = *impl_;
  std::lock_guard life(d.lifecycle_mu);
  if (!d.ioc) return;
  {
    // No events are posted to sessions from here on, so nothing reaches the io_context after
    // it is gone.
    std::lock_guard lock(d.mu);
    d.serving = false;
    d.watches.clear();
  }
  net::post(*d.ioc, [&d] {
    beast::error_code ignored;
    d.acceptor->close(ignored);
    for (auto& weak : d.sessions) {
      if (auto session = weak.lock()) session->close();
    }
    d.sessions.clear();
    // Let the aborted operations queued by the closes run, then stop; whatever is left is
    // destroyed with the io_context.
    net::post(*d.ioc, [&d] { d.ioc->stop(); });
  });
  d.thread.join();
  d.acceptor.reset();
  d.ioc.reset();
}

uint16_t FakeKubeApi::port() const {
  uint16_t bound = impl_->bound_port.load();
  return bound != 0 ? bound : impl_->options.port;
}

std::string FakeKubeApi::url() const {
  std::string host = impl_->options.bind_address;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "https://" + host + ":" + std::to_string(port());
}

std::string FakeKubeApi::ca_pem() const {
  return impl_->tls.ca_pem;
}

std::string FakeKubeApi::client_cert_pem() const {
  return impl_->tls.client_cert_pem;
}

std::string FakeKubeApi::client_key_pem() const {
  return impl_->tls.client_key_pem;
}

std::string FakeKubeApi::write_kubeconfig(const std::string& dir) const {
  std::string token;
  {
    std::lock_guard lock(impl_->mu);
    token = impl_->token;
  }
  std::filesystem::create_directories(dir);
  std::filesystem::path path = std::filesystem::path(dir) / "kubeconfig";
  // JSON strings are valid YAML double-quoted scalars, which quotes any token safely.
  std::string text =
      "apiVersion: v1\n"
      "kind: Config\n"
      "clusters:\n"
      "- name: fake\n"
      "  cluster:\n"
      "    server: " +
      dump(json(url())) +
      "\n"
      "    certificate-authority-data: " +
      base64::encode(impl_->tls.ca_pem) +
      "\n"
      "contexts:\n"
      "- name: fake\n"
      "  context:\n"
      "    cluster: fake\n"
      "    user: fake\n"
      "    namespace: default\n"
      "current-context: fake\n"
      "users:\n"
      "- name: fake\n"
      "  user:\n"
      "    token: " +
      dump(json(token)) + "\n";
  {
    std::ofstream out(path, std::ios::trunc);
    if (!out) throw std::runtime_error("fake kube API: cannot write " + path.string());
    out << text;
    if (!out.flush()) throw std::runtime_error("fake kube API: cannot write " + path.string());
  }
  std::filesystem::permissions(
      path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  return path.string();
}

void FakeKubeApi::set_token(std::string token) {
  std::lock_guard lock(impl_->mu);
  impl_->token = std::move(token);
}

json FakeKubeApi::upsert(const std::string& group_version, const std::string& plural, json object) {
  if (!object.is_object())
    throw std::invalid_argument("fake kube API: object must be a JSON object");
  json& metadata = object["metadata"];
  if (!metadata.is_object() || !metadata.contains("name") || !metadata["name"].is_string() ||
      metadata["name"].get<std::string>().empty()) {
    throw std::invalid_argument("fake kube API: object needs a string metadata.name");
  }
  Impl& d = *impl_;
  std::lock_guard lock(d.mu);
  TypeKey type{group_version, plural};
  const ResourceType& info = d.ensure_type(type);
  std::string ns;
  if (info.namespaced) {
    if (!metadata.contains("namespace") || !metadata["namespace"].is_string() ||
        metadata["namespace"].get<std::string>().empty()) {
      metadata["namespace"] = "default";
    }
    ns = metadata["namespace"].get<std::string>();
  } else {
    metadata.erase("namespace");
  }
  if (!object.contains("kind")) object["kind"] = info.kind;
  if (!object.contains("apiVersion")) object["apiVersion"] = group_version;

  std::string key = ns + "/" + metadata["name"].get<std::string>();
  ObjectMap& map = d.objects[type];
  auto existing = map.find(key);
  const json* old_meta = existing != map.end() ? &existing->second["metadata"] : nullptr;
  for (const char* field : {"uid", "creationTimestamp"}) {
    if (metadata.contains(field) && !metadata[field].is_null()) continue;
    if (old_meta != nullptr && old_meta->contains(field)) {
      metadata[field] = (*old_meta)[field];
    } else {
      metadata[field] = std::string(field) == "uid" ? d.new_uid() : now_rfc3339();
    }
  }
  metadata["resourceVersion"] = std::to_string(++d.rv);

  Change change;
  change.rv = d.rv;
  change.type = type;
  change.key = key;
  change.namespace_name = ns;
  change.object = object;
  if (existing != map.end()) {
    change.event = "MODIFIED";
    change.previous = std::move(existing->second);
    existing->second = object;
  } else {
    change.event = "ADDED";
    map.emplace(key, object);
  }
  d.record_change(std::move(change));
  return object;
}

bool FakeKubeApi::remove(const std::string& group_version, const std::string& plural,
                         const std::string& namespace_name, const std::string& name) {
  Impl& d = *impl_;
  std::lock_guard lock(d.mu);
  TypeKey type{group_version, plural};
  auto type_it = d.types.find(type);
  auto objects_it = d.objects.find(type);
  if (type_it == d.types.end() || objects_it == d.objects.end()) return false;
  std::string ns = type_it->second.namespaced ? namespace_name : "";
  auto it = objects_it->second.find(ns + "/" + name);
  if (it == objects_it->second.end()) return false;

  Change change;
  change.rv = ++d.rv;
  change.type = type;
  change.event = "DELETED";
  change.key = it->first;
  change.namespace_name = ns;
  change.object = it->second;
  change.object["metadata"]["resourceVersion"] = std::to_string(change.rv);
  change.previous = std::move(it->second);
  objects_it->second.erase(it);
  d.record_change(std::move(change));
  return true;
}

std::optional<json> FakeKubeApi::get(const std::string& group_version, const std::string& plural,
                                     const std::string& namespace_name,
                                     const std::string& name) const {
  const Impl& d = *impl_;
  std::lock_guard lock(d.mu);
  TypeKey type{group_version, plural};
  auto type_it = d.types.find(type);
  auto objects_it = d.objects.find(type);
  if (type_it == d.types.end() || objects_it == d.objects.end()) return std::nullopt;
  std::string ns = type_it->second.namespaced ? namespace_name : "";
  auto it = objects_it->second.find(ns + "/" + name);
  if (it == objects_it->second.end()) return std::nullopt;
  return it->second;
}

std::vector<json> FakeKubeApi::list(const std::string& group_version, const std::string& plural,
                                    const std::string& namespace_name) const {
  const Impl& d = *impl_;
  std::lock_guard lock(d.mu);
  std::vector<json> out;
  auto objects_it = d.objects.find({group_version, plural});
  if (objects_it == d.objects.end()) return out;
  for (const auto& [key, object] : objects_it->second) {
    if (!namespace_name.empty() && namespace_of(object) != namespace_name) {
      continue;
    }
    out.push_back(object);
  }
  return out;
}

uint64_t FakeKubeApi::resource_version() const {
  std::lock_guard lock(impl_->mu);
  return impl_->rv;
}

void FakeKubeApi::register_resource(const std::string& group_version, const std::string& plural,
                                    const std::string& kind, bool namespaced) {
  std::lock_guard lock(impl_->mu);
  impl_->types[{group_version, plural}] = ResourceType{kind, namespaced};
}

void FakeKubeApi::unregister_resource(const std::string& group_version, const std::string& plural) {
  Impl& d = *impl_;
  std::lock_guard lock(d.mu);
  TypeKey type{group_version, plural};
  d.types.erase(type);
  d.objects.erase(type);
  std::erase_if(d.history, [&](const Change& c) { return c.type == type; });
  // Watches on a resource that no longer exists end, as when a CRD is deleted.
  std::erase_if(d.watches, [&](const auto& reg) {
    if (reg->spec.type != type) return false;
    d.post_to_watch(*reg, "", true);
    return true;
  });
}

void FakeKubeApi::compact() {
  Impl& d = *impl_;
  std::lock_guard lock(d.mu);
  d.min_valid_rv = ++d.rv;
  d.history.clear();
}

void FakeKubeApi::set_history_limit(std::size_t events) {
  Impl& d = *impl_;
  std::lock_guard lock(d.mu);
  d.history_limit = events;
  while (d.history.size() > d.history_limit) {
    d.min_valid_rv = std::max(d.min_valid_rv, d.history.front().rv);
    d.history.pop_front();
  }
}

void FakeKubeApi::expire_open_watches() {
  Impl& d = *impl_;
  std::lock_guard lock(d.mu);
  for (const auto& reg : d.watches) d.post_to_watch(*reg, expired_event_line(), true);
  d.watches.clear();
}

void FakeKubeApi::stall_open_watches() {
  Impl& d = *impl_;
  std::lock_guard lock(d.mu);
  for (const auto& reg : d.watches) {
    if (auto session = reg->session.lock()) {
      net::post(reg->executor, [session] { session->stall(); });
    }
  }
  d.watches.clear();
}

void FakeKubeApi::end_open_watches() {
  Impl& d = *impl_;
  std::lock_guard lock(d.mu);
  for (const auto& reg : d.watches) d.post_to_watch(*reg, "", true);
  d.watches.clear();
}

void FakeKubeApi::send_bookmarks() {
  Impl& d = *impl_;
  std::lock_guard lock(d.mu);
  for (const auto& reg : d.watches) {
    if (!reg->spec.bookmarks) continue;
    json object = {{"kind", reg->spec.kind},
                   {"apiVersion", reg->spec.type.first},
                   {"metadata", {{"resourceVersion", std::to_string(d.rv)}}}};
    d.post_to_watch(*reg, dump(json{{"type", "BOOKMARK"}, {"object", object}}) + "\n", false);
  }
}

void FakeKubeApi::send_raw_watch_line(const std::string& line) {
  Impl& d = *impl_;
  std::lock_guard lock(d.mu);
  for (const auto& reg : d.watches) d.post_to_watch(*reg, line + "\n", false);
}

void FakeKubeApi::set_watch_chunk_size(std::size_t bytes) {
  impl_->chunk_size = bytes;
}

void FakeKubeApi::set_max_page_size(std::size_t n) {
  std::lock_guard lock(impl_->mu);
  impl_->max_page_size = n;
}

void FakeKubeApi::inject_failure(int status, int count, std::string path_substring,
                                 std::optional<int> retry_after_seconds) {
  if (count <= 0) return;
  std::lock_guard lock(impl_->mu);
  impl_->failures.push_back(Failure{status, count, std::move(path_substring), retry_after_seconds});
}

void FakeKubeApi::clear_failures() {
  std::lock_guard lock(impl_->mu);
  impl_->failures.clear();
}

std::vector<std::string> FakeKubeApi::requests() const {
  std::lock_guard lock(impl_->mu);
  return impl_->requests;
}

void FakeKubeApi::clear_requests() {
  std::lock_guard lock(impl_->mu);
  impl_->requests.clear();
}

std::size_t FakeKubeApi::open_watch_count() const {
  std::lock_guard lock(impl_->mu);
  return impl_->watches.size();
}

}  // namespace mx::testing
