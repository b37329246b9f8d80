#include "sources/telemetry/telemetry_derive.h"

#include <algorithm>
#include <cmath>

namespace mx {

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// A stable key for a label set, independent of the order the labels were written in.
std::string label_set_key(const ExpositionSample& s) {
  std::vector<const ExpositionLabel*> sorted;
  sorted.reserve(s.labels.size());
  for (const auto& l : s.labels) sorted.push_back(&l);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->name < b->name; });
  std::string key;
  for (const auto* l : sorted) {
    key += l->name;
    key += '=';
    // Length prefix: values may contain any byte, including the separators.
    key += std::to_string(l->value.size());
    key += ':';
    key += l->value;
    key += ',';
  }
  return key;
}

std::string gpu_key(const ExpositionSample& s) {
  for (std::string_view name : {"gpu", "UUID", "device"}) {
    if (const auto* v = s.label(name)) return std::string(name) + "=" + *v;
  }
  return label_set_key(s);
}

std::optional<double> mean_per_gpu(const std::vector<ExpositionSample>& samples,
                                   bool (*matches)(std::string_view), double scale) {
  std::map<std::string, double> per_gpu;
  for (const auto& s : samples) {
    if (!matches(s.name) || !std::isfinite(s.value)) continue;
    per_gpu[gpu_key(s)] = s.value * scale;  // a GPU exported twice: the last value wins
  }
  if (per_gpu.empty()) return std::nullopt;
  double sum = 0;
  for (const auto& [key, v] : per_gpu) sum += v;
  return std::clamp(sum / static_cast<double>(per_gpu.size()), 0.0, 1.0);
}

bool is_dcgm_util(std::string_view name) {
  return name == kDcgmGpuUtil;
}
bool is_ratio_util(std::string_view name) {
  return ends_with(name, kGpuUtilRatioSuffix);
}

std::optional<double> sum_of_deltas(const std::map<std::string, double>& previous,
                                    const std::map<std::string, double>& current) {
  bool any = false;
  double sum = 0;
  for (const auto& [key, now] : current) {
    const auto it = previous.find(key);
    if (it == previous.end()) continue;
    any = true;
    sum += now >= it->second ? now - it->second : now;
  }
  if (!any) return std::nullopt;
  return sum;
}

}  // namespace

bool is_telemetry_metric(std::string_view name) {
  return is_dcgm_util(name) || is_ratio_util(name) || name == kNetReceiveBytes ||
         name == kNetTransmitBytes;
}

std::optional<double> gpu_utilization_ratio(const std::vector<ExpositionSample>& samples) {
  if (auto dcgm = mean_per_gpu(samples, is_dcgm_util, 0.01)) return dcgm;
  return mean_per_gpu(samples, is_ratio_util, 1.0);
}

NetworkCounters network_counters(const std::vector<ExpositionSample>& samples, double scrape_time) {
  NetworkCounters out;
  out.scrape_time = scrape_time;
  bool all_timestamped = true;
  std::optional<double> newest;
  for (const auto& s : samples) {
    const bool rx = s.name == kNetReceiveBytes;
    if (!rx && s.name != kNetTransmitBytes) continue;
    if (const auto* device = s.label("device"); device && *device == "lo") continue;
    if (!std::isfinite(s.value) || s.value < 0) continue;
    (rx ? out.receive : out.transmit)[label_set_key(s)] = s.value;
    if (s.timestamp_ms) {
      const double t = static_cast<double>(*s.timestamp_ms) / 1000.0;
      newest = newest ? std::max(*newest, t) : t;
    } else {
      all_timestamped = false;
    }
  }
  if (all_timestamped) out.sample_time = newest;
  return out;
}

std::optional<double> elapsed_seconds(const NetworkCounters& previous,
                                      const NetworkCounters& current) {
  const double dt = previous.sample_time && current.sample_time
                        ? *current.sample_time - *previous.sample_time
                        : current.scrape_time - previous.scrape_time;
  if (!(dt > 0)) return std::nullopt;
  return dt;
}

Bandwidth network_bandwidth(const NetworkCounters& previous, const NetworkCounters& current) {
  Bandwidth out;
  const auto dt = elapsed_seconds(previous, current);
  if (!dt) return out;
  const auto to_mbps = [&](std::optional<double> bytes) -> std::optional<double> {
    if (!bytes) return std::nullopt;
    return *bytes * 8.0 / 1e6 / *dt;
  };
  out.ingress_mbps = to_mbps(sum_of_deltas(previous.receive, current.receive));
  out.egress_mbps = to_mbps(sum_of_deltas(previous.transmit, current.transmit));
  return out;
}

}  // namespace mx
