// Admission of connections: the accept thread's loop, the connection table, the cap and
// eviction (admission.h).
#include "http/admission.h"

#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <chrono>

#include "common/log.h"
#include "common/open_files.h"
#include "http/server_state.h"
#include "http/session.h"

namespace mx {

namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

constexpr rlim_t kFdReserve = 128;  // for the sources' connections in flight, files and gRPC

std::size_t connection_cap(int configured) {
  const std::size_t open_files = open_file_limit();
  // The scrape clients' idle connections have their own share (common/open_files.h).
  const auto limit = static_cast<rlim_t>(open_files - idle_connection_budget(open_files));
  const rlim_t usable = limit > 2 * kFdReserve ? limit - kFdReserve : limit / 2;
  return static_cast<std::size_t>(
      std::max<rlim_t>(1, std::min<rlim_t>(usable, static_cast<rlim_t>(configured))));
}

}  // namespace

void ConnectionTable::set_cap(int configured) {
  cap_ = connection_cap(configured);
  metrics_.max.Set(static_cast<double>(cap_));
}

void ConnectionTable::add(SessionBase& session) {
  sessions_.push_front(&session);
  session.entry_ = sessions_.begin();
  high_water_ = std::max(high_water_, sessions_.size());
  metrics_.open.Set(static_cast<double>(sessions_.size()));
}

void ConnectionTable::touch(SessionBase& session) {
  sessions_.splice(sessions_.begin(), sessions_, session.entry_);
}

void ConnectionTable::remove(SessionBase& session) {
  sessions_.erase(session.entry_);
  metrics_.open.Set(static_cast<double>(sessions_.size()));
  after_close();
}

// After a flood of connections has gone, gives the freed session memory back to the kernel
// (main() raises glibc's trim threshold for the snapshots' sake, so it would not on its own).
// Deferred a little, so that the flood's last connections are gone too.
void ConnectionTable::after_close() {
  if (trim_scheduled_ || high_water_ < 256 || sessions_.size() >= high_water_ / 8) return;
  trim_scheduled_ = true;
  trim_timer_.expires_after(std::chrono::seconds(1));
  trim_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    trim_scheduled_ = false;
    high_water_ = sessions_.size();
    ::malloc_trim(0);
  });
}

bool ConnectionTable::evict_oldest() {
  for (auto it = sessions_.rbegin(); it != sessions_.rend(); ++it) {
    if ((*it)->evictable()) {
      metrics_.evicted.Increment();
      (*it)->close();  // erases it from sessions_
      return true;
    }
  }
  return false;
}

void ConnectionTable::close_evictable() {
  std::vector<SessionBase*> idle;
  for (auto* s : sessions_) {
    if (s->evictable()) idle.push_back(s);
  }
  for (auto* s : idle) s->close();
}

namespace {

void admit(const std::shared_ptr<HttpServer::State>& state, tcp::socket socket) {
  state->metrics.accepted.Increment();
  auto& table = state->connections;
  if (table.size() >= table.cap() && !table.evict_oldest()) {
    // Every connection is busy with a request: nothing can make room.
    state->metrics.refused.Increment();
    boost::system::error_code ignored;
    socket.close(ignored);
    log::debug("connection refused: every connection is busy", {{"max", table.cap()}});
    return;
  }
  start_session(state, std::move(socket));
}

}  // namespace

void accept_next(const std::shared_ptr<HttpServer::State>& state) {
  state->acceptor.async_accept(
      state->io, [state](boost::system::error_code ec, tcp::socket socket) {
        if (ec == net::error::operation_aborted || !state->acceptor.is_open()) return;
        if (ec == net::error::no_descriptors || ec.value() == ENFILE) {
          // Out of fds: the io_context thread frees one from the oldest idle or incomplete
          // connection; if none can go, accepting waits a little.
          net::post(state->io, [state] {
            if (state->stopping) return;
            const bool freed = state->connections.evict_oldest();
            net::post(state->accept_io, [state, freed] {
              if (!state->acceptor.is_open()) return;
              if (freed) return accept_next(state);
              state->accept_retry.expires_after(std::chrono::milliseconds(100));
              state->accept_retry.async_wait([state](boost::system::error_code wait_ec) {
                if (!wait_ec) accept_next(state);
              });
            });
          });
          return;
        }
        if (!ec) {
          // A response leaves in one gather write; without TCP_NODELAY its last, partial segment
          // waits for the client's delayed ACK (~40 ms per keep-alive scrape of a small body).
          boost::system::error_code ignored;
          socket.set_option(tcp::no_delay(true), ignored);
          net::post(state->io, [state, socket = std::move(socket)]() mutable {
            if (state->stopping) return;  // the socket closes with the handler
            admit(state, std::move(socket));
          });
        }
        accept_next(state);
      });
}

// Once only, so that nothing is left queued for a thread that has ended (it would hold `state`
// for ever).
void close_acceptor(const std::shared_ptr<HttpServer::State>& state) {
  auto close = [state] {
    boost::system::error_code ignored;
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

}  // namespace mx
