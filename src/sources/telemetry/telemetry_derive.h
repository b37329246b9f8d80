// Pure functions from the samples of a job's telemetry endpoint to the values behind
// modal_gpu_utilization and modal_network_bandwidth_mbps (docs/metrics.md). No I/O here.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sources/telemetry/exposition_parser.h"

namespace mx {

inline constexpr std::string_view kDcgmGpuUtil = "DCGM_FI_DEV_GPU_UTIL";
inline constexpr std::string_view kGpuUtilRatioSuffix = "gpu_utilization_ratio";
inline constexpr std::string_view kNetReceiveBytes = "node_network_receive_bytes_total";
inline constexpr std::string_view kNetTransmitBytes = "node_network_transmit_bytes_total";

// The sample names the derivations read; the parser keeps only these.
bool is_telemetry_metric(std::string_view name);

// Mean utilization over the job's GPUs as a ratio in [0, 1]. DCGM_FI_DEV_GPU_UTIL (percent) wins;
// otherwise any metric whose name ends in `gpu_utilization_ratio` (already 0..1). Series are
// grouped per GPU (label gpu, else UUID, else device, else the whole label set), so one GPU
// exported twice is not counted twice. Non-finite values are ignored. No data: nullopt.
std::optional<double> gpu_utilization_ratio(const std::vector<ExpositionSample>& samples);

// The byte counters of one scrape, per series (loopback excluded).
struct NetworkCounters {
  std::map<std::string, double> receive;  // key: the series' label set
  std::map<std::string, double> transmit;
  // Newest sample timestamp (seconds), present only when every counted sample carried one.
  std::optional<double> sample_time;
  double scrape_time = 0;  // seconds on a monotonic clock, when the scrape started
};

NetworkCounters network_counters(const std::vector<ExpositionSample>& samples, double scrape_time);

// Seconds between two scrapes: by sample timestamps when both have them (the target's own
// clock), else by scrape times. nullopt when not positive.
std::optional<double> elapsed_seconds(const NetworkCounters& previous,
                                      const NetworkCounters& current);

struct Bandwidth {
  std::optional<double> ingress_mbps;
  std::optional<double> egress_mbps;
};

// Megabits per second between two scrapes, summed over the series present in both. A series
// whose counter went down was reset: its new value is its delta. A series missing from either
// scrape contributes nothing; no series in common (or no elapsed time) gives nullopt.
Bandwidth network_bandwidth(const NetworkCounters& previous, const NetworkCounters& current);

}  // namespace mx
