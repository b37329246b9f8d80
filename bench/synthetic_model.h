// A synthetic but production-shaped model for the benchmarks: N jobs fed through the real sink
// API (the calls the Kubernetes, Modal and telemetry sources make), so the derivation and the
// exposition see the same kind of data and the same code paths as in a real cluster.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "model/model.h"

namespace mx::bench {

struct SyntheticOptions {
  std::size_t jobs = 10000;
  std::uint64_t seed = 42;
  // Modal billing reports (daily + hourly). The derivation scans them per job, so they are part
  // of what a full render costs in production; off isolates the text rendering itself.
  bool billing = true;
};

// What populate() fed in, for the benchmark's printout.
struct SyntheticSummary {
  std::vector<std::string> uids;     // every job UID, in creation order
  std::vector<std::string> running;  // UIDs of Running jobs (targets of telemetry updates)
  std::size_t apps = 0;
  std::size_t tasks = 0;
  std::size_t billing_items = 0;
  // Wall time of each group of sink calls: the model's own cost of taking the data in.
  std::vector<std::pair<std::string, double>> phase_seconds;
};

// Every source enabled (so every error counter family is present) and no state file.
Config synthetic_config();

// Feeds `model` through its sink interfaces as the sources would after their first sync.
// `now` is the model's clock (the job timestamps are placed relative to it).
SyntheticSummary populate(Model& model, const SyntheticOptions& options, double now);

}  // namespace mx::bench
