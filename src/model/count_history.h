// The count history: what makes the counters and histograms true. For every live job it
// remembers which statuses, observations and Modal task ids were already counted, so nothing
// is counted twice — also across restarts, through the state file (model/state_file.h).
//
// Bounds: the per-UID entries follow the live job set. An entry goes when the informer reports
// the job deleted (watch DELETED, or missing from a completed re-list: a UID never comes back),
// and entries restored from the state file are dropped after the first complete sync unless a
// live job claimed them. The totals are keyed by label values (status, GPU type, replicas), not
// by job, and keep their values when the per-UID entries behind them go.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/job_store.h"

namespace mx {

enum JobStatusBit : std::uint8_t { kCreated = 1, kCompleted = 2, kFailed = 4, kCancelled = 8 };

// Per-UID history that must survive restarts.
struct CountedJob {
  std::uint8_t statuses = 0;  // bits of JobStatusBit already counted in modal_jobs_total
  bool duration_observed = false;
  bool queue_observed = false;
  bool i6pn_counted = false;
  bool webhook_counted = false;
  std::set<std::string> task_ids;         // Modal task ids counted as cold starts
  std::optional<double> seen_running_at;  // when the exporter saw it start (fallback times)
};

// A histogram's state: per-bucket counts (last = +Inf) and sum.
struct HistogramData {
  std::vector<std::uint64_t> counts;
  double sum = 0;
  void observe(const std::vector<double>& bounds, double value);
};

// When a job started, in one place: status.started_at, else when the exporter saw it start.
std::optional<double> effective_start(const JobObject& job, const CountedJob* counted);

// What the queue-time and duration observations may wait for: Modal's task times
// (CountHistory::observe_queue, observe_duration).
struct ModalWait {
  bool modal_enabled = false;
  double grace_seconds = 0;  // how long a started or ended job waits for Modal's task times
};

class CountHistory {
 public:
  using JobsTotalKey = std::tuple<std::string, std::string, int>;  // status, gpu_type, replicas
  using DurationKey = std::pair<std::string, std::string>;         // status, gpu_type

  static const std::vector<double>& duration_buckets();
  static const std::vector<double>& queue_buckets();

  // The entry of a live job (created on first use).
  CountedJob& entry(const std::string& uid) { return jobs_[uid]; }
  const CountedJob* find(const std::string& uid) const;
  // The job is gone for good: its per-UID bookkeeping goes, the totals stay.
  void forget(const std::string& uid);
  // Drops every entry whose UID `keep` rejects; returns how many went.
  std::size_t forget_unless(const std::function<bool(const std::string& uid)>& keep);
  std::size_t size() const { return jobs_.size(); }
  std::size_t task_id_count() const;

  // Counts what the job's current state shows for the first time (created, i6pn, webhook,
  // start, queue time, terminal status and duration). True while the duration waits for
  // Modal's finish time (observe_duration).
  bool observe(JobState& state, CountedJob& counted, double now, const ModalWait& wait);
  // The queue time, once per job when it started. `final`: no better data can come.
  void observe_queue(JobState& state, CountedJob& counted, bool final, double now,
                     const ModalWait& wait);
  // The duration, once per job when it ended (a terminal phase). True while it still waits
  // for Modal's finish time of the job's tasks; `final`: no better data can come.
  bool observe_duration(JobState& state, CountedJob& counted, bool final, double now,
                        const ModalWait& wait);
  // A Modal task (container) of the job: a cold start, counted once per task id. True when the
  // task was not counted before.
  bool count_task(CountedJob& counted, const std::string& task_id) {
    if (!counted.task_ids.insert(task_id).second) return false;
    changed_ = true;
    return true;
  }
  // A job deleted before a terminal phase is cancelled.
  void observe_deleted(const JobState& state, CountedJob& counted);

  const std::map<JobsTotalKey, std::uint64_t>& jobs_total() const { return jobs_total_; }
  const std::map<DurationKey, HistogramData>& durations() const { return duration_; }
  const std::map<std::string, HistogramData>& queues() const { return queue_; }
  const std::map<int, std::uint64_t>& i6pn_total() const { return i6pn_total_; }
  // (method, status) -> count of Pods the webhook mutated.
  const std::map<std::pair<std::string, std::string>, double>& webhook() const { return webhook_; }

  // True when something the state file holds changed since take_changed().
  bool take_changed() { return std::exchange(changed_, false); }

 private:
  friend class StateFile;
  void count_status(const JobObject& job, CountedJob& counted, JobStatusBit bit,
                    const char* status);

  std::unordered_map<std::string, CountedJob> jobs_;
  std::map<JobsTotalKey, std::uint64_t> jobs_total_;
  std::map<DurationKey, HistogramData> duration_;
  std::map<std::string, HistogramData> queue_;
  std::map<int, std::uint64_t> i6pn_total_;
  std::map<std::pair<std::string, std::string>, double> webhook_;
  bool changed_ = false;
};

}  // namespace mx
