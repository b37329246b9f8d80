// Admission of connections: the accept thread's loop, the table of open connections ordered by
// last activity, the cap on it (web.max_connections bounded by the open-file limit, which is
// raised to its hard limit first), evicting the connection idle or incomplete the longest to
// make room for a newcomer (or when the process runs out of fds), and giving the memory of a
// flood of connections back to the kernel once it has gone.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstddef>
#include <list>
#include <memory>
#include <vector>

#include "http/server.h"
#include "http/server_metrics.h"

namespace mx {

// What the connection table knows of a session (session.cpp).
class SessionBase {
 public:
  enum class Phase { header, body, handling, writing, idle };
  virtual ~SessionBase() = default;
  virtual void close() = 0;
  // Idle or incomplete: may be closed to admit a newcomer, or at shutdown.
  bool evictable() const { return phase_ != Phase::handling && phase_ != Phase::writing; }

 protected:
  Phase phase_ = Phase::header;

 private:
  friend class ConnectionTable;
  std::list<SessionBase*>::iterator entry_;
};

// The open sessions, the most recently active first: the back is idle or incomplete the
// longest. Used on the io_context thread only.
class ConnectionTable {
 public:
  ConnectionTable(boost::asio::io_context& io, ServerMetrics& metrics)
      : metrics_(metrics), trim_timer_(io) {}

  // The cap after the fd limit is applied; raises the soft fd limit to the hard one.
  void set_cap(int configured);
  std::size_t cap() const { return cap_; }
  std::size_t size() const { return sessions_.size(); }

  void add(SessionBase& session);     // a new session, the most recently active
  void touch(SessionBase& session);   // active now
  void remove(SessionBase& session);  // closed: out of the table; may give memory back later
  // Out of the table without a metric update: for a session destroyed by its io_context at
  // teardown, when the registry may be gone.
  void forget(SessionBase& session) { sessions_.erase(session.entry_); }
  // Closes the session idle or incomplete for the longest time. False when none is.
  bool evict_oldest();
  // Closes every idle or incomplete session (shutdown); requests in flight finish.
  void close_evictable();
  void cancel() { trim_timer_.cancel(); }

 private:
  void after_close();

  ServerMetrics& metrics_;
  std::list<SessionBase*> sessions_;
  std::size_t cap_ = 0;
  std::size_t high_water_ = 0;  // most sessions open since memory was last given back
  boost::asio::steady_timer trim_timer_;
  bool trim_scheduled_ = false;
};

// Starts accepting on the accept thread (HttpServer::State::accept_io says why it has one);
// each connection goes to the io_context thread, where it is admitted or refused.
void accept_next(const std::shared_ptr<HttpServer::State>& state);
// Closes the listening socket on the accept thread, which then runs out of work.
void close_acceptor(const std::shared_ptr<HttpServer::State>& state);

}  // namespace mx
