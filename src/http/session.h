// One connection's state machine, plain or TLS: the handshake and the first request's headers
// under one deadline from accept, the body under its own, then rate limit, basic auth (bcrypt
// off the io_context thread), the handler and one gather write of the response; keep-alive waits
// for the next request under the idle timeout. Each deadline that closes a connection is
// counted by phase.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <memory>

#include "http/server.h"

namespace mx {

// Serves `socket` with the running security settings (TLS or not) and adds it to the
// connection table; the table has room.
void start_session(const std::shared_ptr<HttpServer::State>& state,
                   boost::asio::ip::tcp::socket socket);

}  // namespace mx
