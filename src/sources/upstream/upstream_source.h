// Scrapes the operator's own /metrics (moved off :8081 when the exporter runs beside it) and
// hands the model its modal_webhook_requests_total and modal_operator_errors_total samples, to be
// merged into ours (docs/metrics.md). Runs on the io_context thread.
//
// Its lifecycle (start, stop, an Impl shared with pending callbacks) has the shape of
// TelemetrySource's: what differs is a round (one target here, a bounded fan-out there), and a
// common base would only share the few declarations below.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "model/sinks.h"
#include "sources/telemetry/exposition_parser.h"

namespace mx {

// The sample names taken from upstream. Exact sample names: the OpenMetrics counter family
// `modal_webhook_requests` exposes `modal_webhook_requests_total` (taken) and `..._created`
// (not taken), and the text format writes `..._total` directly.
bool is_upstream_metric(std::string_view sample_name);

// The upstream samples among `samples`, labels as a map.
std::vector<UpstreamSample> upstream_samples_from(const std::vector<ExpositionSample>& samples);

class UpstreamSource {
 public:
  // `tls`: the TLS context for an https:// URL; null uses the system CA store.
  UpstreamSource(boost::asio::io_context& io, UpstreamConfig config, BackoffConfig backoff,
                 UpstreamSink& sink, SourceHealth& health,
                 std::shared_ptr<boost::asio::ssl::context> tls = nullptr);
  ~UpstreamSource();
  UpstreamSource(const UpstreamSource&) = delete;
  UpstreamSource& operator=(const UpstreamSource&) = delete;

  // Scrapes at once, then every config.interval (longer while backing off after failures).
  // No-op when disabled or without a URL.
  void start();
  // Cancels the timer and the scrape in flight; the sink hears nothing more afterwards.
  void stop();

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace mx
