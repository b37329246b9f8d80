// The process's limit on open files. Like Go programs, the exporter raises its soft limit to the
// hard one at start: the HTTP server's connection cap and the scrape clients' idle connections
// are both sized from it.
#pragma once

#include <cstddef>

namespace mx {

// Raises the soft RLIMIT_NOFILE to the hard limit (once; later calls only read it) and returns
// the soft limit now in force. 1024 when the limit cannot be read.
std::size_t open_file_limit();

// How many idle keep-alive connections the scrape clients may hold together: a quarter of the
// limit, which the HTTP server's connection cap leaves free.
inline std::size_t idle_connection_budget(std::size_t limit) {
  return limit / 4;
}

}  // namespace mx
