// HttpServer: starts and stops the parts (admission.h, session.h, web_config_watcher.h) that
// share its State, and owns the accept thread and the bcrypt pool.
#include "http/server.h"

#include <boost/asio/thread_pool.hpp>

#include "common/log.h"
#include "http/admission.h"
#include "http/listen_address.h"
#include "http/server_state.h"
#include "http/web_config_watcher.h"

namespace mx {

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

namespace {

void log_security(const Security& sec, const TokenBucket& bucket) {
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
  if (bucket.enabled()) {
    log::info("Rate limit is enabled",
              {{"interval", format_duration(sec.config.rate_limit_interval)},
               {"burst", sec.config.rate_limit_burst}});
  }
}

}  // namespace

HttpServer::HttpServer(net::io_context& io, WebConfig config, HttpHandler handler,
                       prometheus::Registry& registry)
    : state_(std::make_shared<State>(io, std::move(config), std::move(handler), registry)),
      bcrypt_pool_(std::make_unique<net::thread_pool>(1)) {
  state_->bcrypt_pool = bcrypt_pool_.get();
}

HttpServer::~HttpServer() {
  state_->stopping = true;
  state_->io_work.reset();
  close_acceptor(state_);
  if (accept_thread_.joinable()) accept_thread_.join();
  state_->watch_timer.cancel();
  state_->connections.cancel();
  state_->bcrypt_pool = nullptr;
  bcrypt_pool_->join();
}

void HttpServer::start() {
  if (!state_->config.config_file.empty()) {
    load_web_config(*state_, "start", true);
    log_security(*state_->security, state_->bucket);
  } else {
    log::info("No --web.config.file: plain HTTP, no authentication");
  }
  state_->connections.set_cap(state_->config.max_connections);
  if (state_->connections.cap() < static_cast<std::size_t>(state_->config.max_connections)) {
    log::info("web.max_connections lowered to fit the open-file limit",
              {{"max_connections", state_->connections.cap()}});
  }
  state_->bound = listen_on(state_->acceptor, state_->config.listen_address);
  accept_next(state_);
  state_->io_work.emplace(state_->io.get_executor());
  state_->accepting = true;
  accept_thread_ = std::thread([state = state_] { state->accept_io.run(); });
  if (!state_->config.config_file.empty()) watch_web_config(state_);
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
  state_->connections.close_evictable();
}

tcp::endpoint HttpServer::local_endpoint() const {
  return state_->bound;
}

std::size_t HttpServer::active_connections() const {
  return state_->active;
}

std::size_t HttpServer::max_connections() const {
  return state_->connections.cap();
}

}  // namespace mx
