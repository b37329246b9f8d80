// Driving a test's io_context: run until a condition holds (a deadline, not a speed assertion).
#pragma once

#include <chrono>
#include <functional>

#include <boost/asio/io_context.hpp>

namespace mx::testing {

// Runs `io` one handler at a time until `done()` holds or `limit` passes; returns done().
bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds limit = std::chrono::seconds(20));

// Runs `io` for `d` (lets in-flight work settle).
void run_for(boost::asio::io_context& io, std::chrono::milliseconds d);

// A TCP port on 127.0.0.1 where nothing listens (bound, then closed).
unsigned short closed_port();

}  // namespace mx::testing
