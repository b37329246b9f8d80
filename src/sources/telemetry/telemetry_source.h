// Scrapes the Prometheus endpoint of every job that announces one
// (annotation modal-operator.io/telemetry-url) and hands the model GPU utilization and network
// bandwidth (modal_gpu_utilization, modal_network_bandwidth_mbps). Runs on the io_context thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>

#include "config/config.h"
#include "model/sinks.h"

namespace mx {

class TelemetrySource {
 public:
  // At most this many scrapes are in flight at once; the rest of a round waits its turn.
  static constexpr std::size_t kMaxConcurrentScrapes = 16;

  // `tls`: the TLS context for https:// targets; null uses the system CA store.
  TelemetrySource(boost::asio::io_context& io, TelemetryConfig config, BackoffConfig backoff,
                  TelemetrySink& sink, SourceHealth& health,
                  std::shared_ptr<boost::asio::ssl::context> tls = nullptr);
  ~TelemetrySource();
  TelemetrySource(const TelemetrySource&) = delete;
  TelemetrySource& operator=(const TelemetrySource&) = delete;

  // Starts the first round at once, then one every config.interval. No-op when disabled.
  void start();
  // Cancels the timer and the scrapes in flight; the sink hears nothing more afterwards.
  void stop();

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace mx
