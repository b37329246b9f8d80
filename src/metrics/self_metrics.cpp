#include "metrics/self_metrics.h"

#include <chrono>
#include <cmath>

#include "metrics/process_metrics.h"

#ifndef MODAL_EXPORTER_VERSION
#define MODAL_EXPORTER_VERSION "0.0.0"
#endif
#ifndef MODAL_EXPORTER_REVISION
#define MODAL_EXPORTER_REVISION "unknown"
#endif

namespace mx {

BuildInfo current_build_info() {
  BuildInfo b;
  b.version = MODAL_EXPORTER_VERSION;
  b.revision = MODAL_EXPORTER_REVISION;
#if defined(__clang__)
  b.compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
  b.compiler = "gcc " __VERSION__;
#else
  b.compiler = "unknown";
#endif
  return b;
}

namespace {

// A family declared in `registry` by one of prometheus-cpp's builders.
template <typename Builder>
auto& declare(Builder builder, prometheus::Registry& registry, const char* name, const char* help) {
  return builder.Name(name).Help(help).Register(registry);
}

}  // namespace

SelfMetrics::SelfMetrics(const BuildInfo& build)
    : registry_(std::make_shared<prometheus::Registry>()),
      up_(declare(prometheus::BuildGauge(), *registry_, "modal_exporter_source_up",
                  "1 while the source's last poll or watch succeeded, else 0.")),
      last_success_(declare(prometheus::BuildGauge(), *registry_,
                            "modal_exporter_source_last_success_timestamp_seconds",
                            "Unix time of the source's last successful poll or sync.")),
      poll_duration_(declare(prometheus::BuildHistogram(), *registry_,
                             "modal_exporter_poll_duration_seconds",
                             "Duration of each successful poll or initial sync of a source.")),
      modal_calls_(declare(prometheus::BuildCounter(), *registry_,
                           "modal_exporter_modal_calls_total",
                           "Calls made to Modal's API, by method and gRPC status code.")) {
  declare(prometheus::BuildGauge(), *registry_, "modal_exporter_build_info",
          "A metric with a constant 1 labeled with the exporter's version, revision and compiler.")
      .Add({{"version", build.version}, {"revision", build.revision}, {"compiler", build.compiler}})
      .Set(1);
}

void SelfMetrics::set_enabled_sources(const std::vector<std::string>& sources) {
  std::lock_guard lock(sources_mu_);
  for (auto it = sources_.begin(); it != sources_.end();) {
    bool keep = false;
    for (const auto& s : sources) keep = keep || s == it->first;
    if (keep) {
      ++it;
      continue;
    }
    up_.Remove(it->second.up);
    if (it->second.last_success) last_success_.Remove(it->second.last_success);
    poll_duration_.Remove(it->second.poll_duration);
    it = sources_.erase(it);
  }
  static const std::vector<double> kBuckets = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  for (const auto& s : sources) {
    if (sources_.count(s)) continue;
    SourceState state;
    state.up = &up_.Add({{"source", s}});
    state.poll_duration = &poll_duration_.Add({{"source", s}}, kBuckets);
    sources_.emplace(s, state);
  }
}

SelfMetrics::SourceState* SelfMetrics::find(std::string_view source) {
  auto it = sources_.find(source);
  return it == sources_.end() ? nullptr : &it->second;
}

void SelfMetrics::source_succeeded(std::string_view source, double poll_seconds) {
  std::lock_guard lock(sources_mu_);
  auto* s = find(source);
  if (!s) return;
  s->ever_succeeded = true;
  s->up->Set(1);
  // Absent until the first success: a 0 timestamp would be a made-up value.
  if (!s->last_success) s->last_success = &last_success_.Add({{"source", std::string(source)}});
  s->last_success->Set(
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  s->poll_duration->Observe(poll_seconds);
}

void SelfMetrics::source_failed(std::string_view source) {
  std::lock_guard lock(sources_mu_);
  if (auto* s = find(source)) s->up->Set(0);
}

bool SelfMetrics::ready(std::string& why) const {
  std::lock_guard lock(sources_mu_);
  why.clear();
  for (const auto& [name, state] : sources_) {
    if (state.ever_succeeded) continue;
    why += why.empty() ? "" : ", ";
    why += name;
  }
  return why.empty();
}

std::vector<std::string> SelfMetrics::enabled_sources() const {
  std::lock_guard lock(sources_mu_);
  std::vector<std::string> out;
  for (const auto& [name, state] : sources_) out.push_back(name);
  return out;
}

std::string SelfMetrics::render(ExpositionFormat format) const {
  std::string out;
  append_prometheus_families(out, format, registry_->Collect());
  append_prometheus_families(out, format, process_.Collect());
  return out;
}

void append_prometheus_families(std::string& out, ExpositionFormat format,
                                const std::vector<prometheus::MetricFamily>& families) {
  std::vector<Label> labels;
  for (const auto& f : families) {
    if (f.metric.empty()) continue;
    MetricType type = MetricType::gauge;
    if (f.type == prometheus::MetricType::Counter) type = MetricType::counter;
    if (f.type == prometheus::MetricType::Histogram) type = MetricType::histogram;
    append_family_header(out, format, f.name, f.help, type);
    for (const auto& m : f.metric) {
      labels.clear();
      for (const auto& l : m.label) labels.push_back({l.name, l.value});
      switch (f.type) {
        case prometheus::MetricType::Counter:
          append_sample(out, f.name, labels, m.counter.value);
          break;
        case prometheus::MetricType::Histogram: {
          std::vector<double> bounds;
          std::vector<std::uint64_t> counts;
          std::uint64_t previous = 0;
          for (const auto& b : m.histogram.bucket) {
            if (!std::isinf(b.upper_bound)) bounds.push_back(b.upper_bound);
            counts.push_back(b.cumulative_count - previous);
            previous = b.cumulative_count;
          }
          append_histogram(out, f.name, labels, bounds, counts, m.histogram.sample_sum);
          break;
        }
        default:
          append_sample(out, f.name, labels, m.gauge.value);
      }
    }
  }
}

void SelfMetrics::count_modal_call(std::string_view method, std::string_view code) {
  modal_calls_.Add({{"method", std::string(method)}, {"code", std::string(code)}}).Increment();
}

}  // namespace mx
