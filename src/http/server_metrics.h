// The HTTP server's self metrics, declared in the exporter's prometheus-cpp registry and updated
// where the events happen (prometheus-cpp's counters and gauges are thread-safe). The families of
// the web config file's features (auth, rate limit, TLS, reload) exist only when a file is given.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <array>

namespace mx {

// A deadline that closed a connection, by the phase it was in.
enum TimeoutPhase { kHeader = 0, kBody = 1, kIdle = 2, kWrite = 3 };

struct ServerMetrics {
  // `registry` outlives the server and its connections.
  ServerMetrics(prometheus::Registry& registry, bool web_config_file);

  prometheus::Counter& accepted;
  prometheus::Counter& evicted;
  prometheus::Counter& refused;
  std::array<prometheus::Counter*, 4> timed_out;  // by TimeoutPhase
  prometheus::Gauge& open;
  prometheus::Gauge& max;
  // With a web config file only; null without one (nothing could count them).
  prometheus::Counter* auth_missing = nullptr;
  prometheus::Counter* auth_wrong = nullptr;
  prometheus::Counter* rate_limited = nullptr;
  prometheus::Counter* tls_handshake_failures = nullptr;
  prometheus::Gauge* last_reload_successful = nullptr;
};

inline void increment(prometheus::Counter* counter) {
  if (counter != nullptr) counter->Increment();
}

}  // namespace mx
