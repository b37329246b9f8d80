// What the HTTP server's parts share (src/http only): the security settings one version of the
// web config file yields and the server's State, which the sessions (session.cpp), admission
// (admission.cpp) and the web config watcher (web_config_watcher.cpp) all work on.
#pragma once

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <optional>
#include <vector>

#include "config/web_config.h"
#include "http/admission.h"
#include "http/basic_auth.h"
#include "http/server.h"
#include "http/server_metrics.h"
#include "http/web_config_watcher.h"

namespace mx {

// What one version of the web config file yields; immutable once built.
struct Security {
  WebSecurityConfig config;
  std::shared_ptr<boost::asio::ssl::context> tls;  // null: plain HTTP
  std::shared_ptr<BasicAuth> auth;                 // null: no basic auth
};

// Shared with the sessions, which may outlive a stopped server briefly. Used on the io_context
// thread, but for the members marked as the accept thread's.
struct HttpServer::State {
  boost::asio::io_context& io;
  WebConfig config;
  HttpHandler handler;
  ServerMetrics metrics;
  // Connections are accepted on a thread of their own (HttpServer::accept_thread_) and handed to
  // `io` at once. Why: accepting registers the new descriptor with Asio's reactor, whose
  // per-descriptor records are pooled and never freed; made on the io_context thread they sit
  // every few KiB between the sessions' buffers, so after a flood of connections no whole page
  // of the freed session memory could go back to the kernel (5,000 connections: 14 MiB kept).
  // Made on the accept thread, they live in that thread's malloc arena instead.
  boost::asio::io_context accept_io{1};
  // Keeps the accept thread running while eviction on the io_context thread decides how to go on.
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> accept_work{
      accept_io.get_executor()};
  // The io_context no longer waits on the listening socket: it is kept running by this until
  // the server stops, for the connections that are still to arrive.
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> io_work;
  boost::asio::ip::tcp::acceptor acceptor;  // used on the accept thread only
  boost::asio::steady_timer accept_retry;   // likewise
  boost::asio::ip::tcp::endpoint bound;     // the listening address, set before accepting
  bool accepting = false;  // the accept thread runs (set and read on the io_context thread)
  bool stopping = false;
  ConnectionTable connections;
  // Session objects alive, including closed ones finishing a handler. Atomic: the application
  // reads it from its own thread while draining.
  std::atomic<std::size_t> active = 0;
  std::shared_ptr<const Security> security = std::make_shared<Security>();
  TokenBucket bucket;
  std::vector<FileStamp> stamps;  // the web config file, then its certificate/key/CA files
  boost::asio::steady_timer watch_timer;
  boost::asio::thread_pool* bcrypt_pool = nullptr;  // owned by HttpServer; null once it is gone

  State(boost::asio::io_context& i, WebConfig c, HttpHandler h, prometheus::Registry& registry)
      : io(i),
        config(std::move(c)),
        handler(std::move(h)),
        metrics(registry, !config.config_file.empty()),
        acceptor(accept_io),
        accept_retry(accept_io),
        connections(i, metrics),
        watch_timer(i) {}
};

}  // namespace mx
