// The exporter's own metrics, all declared in one prometheus-cpp registry and rendered per scrape
// (they are few and change on every scrape): build info, per-source health and poll durations,
// Modal calls here; the snapshot publisher's families by the publisher (exposition/publisher.h);
// process_* collected from /proc on each render. Per-source health also decides /readyz.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "exposition/text_format.h"
#include "metrics/process_metrics.h"

namespace mx {

struct BuildInfo {
  std::string version;
  std::string revision;
  std::string compiler;
};

BuildInfo current_build_info();

class SelfMetrics {
 public:
  explicit SelfMetrics(const BuildInfo& build);

  // Declares which sources are enabled: only they get health series and gate readiness.
  void set_enabled_sources(const std::vector<std::string>& sources);
  void source_succeeded(std::string_view source, double poll_seconds);
  void source_failed(std::string_view source);
  // modal_exporter_modal_calls_total{method, code}: one finished call to Modal's API.
  void count_modal_call(std::string_view method, std::string_view code);

  // Ready once every enabled source has succeeded at least once. `why` names the others.
  bool ready(std::string& why) const;
  std::vector<std::string> enabled_sources() const;

  // The registry every self-metric family is declared in (prometheus-cpp's builders): components
  // with metrics of their own (the HTTP server, the publisher) register their families here.
  prometheus::Registry& registry() { return *registry_; }

  // HELP/TYPE + samples of every self-metric family, in `format`.
  std::string render(ExpositionFormat format) const;

 private:
  struct SourceState {
    bool ever_succeeded = false;
    prometheus::Gauge* up = nullptr;
    prometheus::Gauge* last_success = nullptr;
    prometheus::Histogram* poll_duration = nullptr;
  };
  SourceState* find(std::string_view source);

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge>& up_;
  prometheus::Family<prometheus::Gauge>& last_success_;
  prometheus::Family<prometheus::Histogram>& poll_duration_;
  prometheus::Family<prometheus::Counter>& modal_calls_;
  // Written on the application's thread, read by /readyz on the HTTP server's.
  mutable std::mutex sources_mu_;
  std::map<std::string, SourceState, std::less<>> sources_;
  ProcessCollector process_;
};

// Renders prometheus-cpp families with this project's writer (both formats).
void append_prometheus_families(std::string& out, ExpositionFormat format,
                                const std::vector<prometheus::MetricFamily>& families);

}  // namespace mx
