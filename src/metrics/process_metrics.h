// Standard process_* metrics read from /proc/self, as every Prometheus client library exports
// them (prometheus-cpp has no process collector).
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <dirent.h>

#include <mutex>
#include <vector>

namespace mx {

class ProcessCollector : public prometheus::Collectable {
 public:
  ProcessCollector();
  ~ProcessCollector() override;
  ProcessCollector(const ProcessCollector&) = delete;
  ProcessCollector& operator=(const ProcessCollector&) = delete;
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  double start_time_seconds_ = 0;
  // Opened once and re-read on every scrape (pread, rewinddir): opening and closing them on
  // every scrape was ~40 % of the cost of these metrics. Both count in process_open_fds.
  mutable std::mutex mu_;
  int statm_fd_ = -1;
  DIR* fd_dir_ = nullptr;
};

}  // namespace mx
