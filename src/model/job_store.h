// The job store: every live job by Kubernetes UID, which job owns a namespace/name (per-job
// series are keyed by name, so only one object may render them), and indexes by Modal app and
// function id so that a Modal result touches only its own jobs. Bounded by the live job set:
// a job leaves the store when the informer reports it deleted.
//
// The indexes copy no strings: they hold views of the job's own namespace, name and Modal ids and
// pointers to its state (a stored JobState never moves: unordered_map nodes are stable). An
// entry leaves its index before the strings it views change or are freed. (The UID is still
// held twice: as the map's key and in the JobObject.)
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model/objects.h"

namespace mx {

// One live job and what the sources learnt about it beyond its Kubernetes object.
struct JobState {
  JobObject object;
  JobPhase phase = JobPhase::none;          // object.phase, parsed once on every upsert
  std::optional<double> modal_enqueued_at;  // earliest Modal task enqueue/start times
  std::optional<double> modal_started_at;
  std::optional<double> modal_finished_at;  // latest finish of the tasks TaskGetInfo answered
  std::optional<double> ended_seen_at;      // when the exporter first saw a terminal phase
  bool tasks_known = false;  // TaskList succeeded for the job's app since it was seen
  std::optional<double> gpu_utilization;
  std::optional<double> ingress_mbps;
  std::optional<double> egress_mbps;
  std::optional<std::uint32_t> backlog;
  bool renders_per_job = true;  // false when another object already owns namespace/job_name
  // The job's queue time is in the count history (CountedJob::queue_observed, which stays set):
  // Model::tick looks up the history only for started jobs without it.
  bool queue_observed = false;
  std::uint32_t modal_finish_count = 0;  // TaskGetInfo answers that carried a finish time

  // Running, or reported a start time: the job has started on Modal.
  bool started() const { return phase == JobPhase::running || object.started_at.has_value(); }
};

class JobStore {
 public:
  using Jobs = std::unordered_map<std::string, JobState>;
  // Live jobs of one GPU type, and how many of them are active (pending or running).
  struct GpuCount {
    std::size_t jobs = 0;
    std::size_t active = 0;
  };
  using GpuCounts = std::map<std::string, GpuCount, std::less<>>;

  const Jobs& all() const { return jobs_; }
  // Calls f(uid, state) for every job. `f` may change a state in place but not the strings the
  // indexes view (the object's namespace, name and Modal ids): those change through put().
  template <class F>
  void for_each(F&& f) {
    for (auto& [uid, state] : jobs_) f(uid, state);
  }
  std::size_t size() const { return jobs_.size(); }
  // Kept as jobs come, change and go, so that modal_jobs_active costs the GPU types, not a walk
  // of every job, on each change. A type leaves when its last job does.
  const GpuCounts& gpu_counts() const { return gpu_counts_; }
  JobState* find(const std::string& uid);
  const JobState* find(const std::string& uid) const;

  // Stores `job` (new or updated). `renamed_to` receives the UIDs whose per-job series must be
  // re-rendered because name ownership moved to them. Returns the stored state; `is_new` is
  // true when the UID was not stored before (or its namespace/name changed).
  JobState& put(JobObject job, bool& is_new, std::vector<std::string>& renamed_to);
  // Removes the job; returns its last state (nullopt when unknown). Name ownership passes to
  // another job of the same namespace/name, listed in `renamed_to`.
  std::optional<JobState> take(const std::string& uid, std::vector<std::string>& renamed_to);

  // The job that renders per-job series for namespace/name, if any.
  const JobState* owner_of(const std::string& namespace_name, const std::string& name) const;
  // The jobs of a Modal app / function id (none when empty); valid until the next put/take.
  std::vector<JobState*> with_app(std::string_view app_id);
  std::vector<JobState*> with_function(std::string_view function_id);

 private:
  struct NameKey {  // views of the owner's namespace_name and name
    std::string_view namespace_name;
    std::string_view name;
    bool operator==(const NameKey&) const = default;
  };
  struct NameKeyHash {
    std::size_t operator()(const NameKey& k) const;
  };
  using Index = std::unordered_multimap<std::string_view, JobState*>;

  static NameKey name_of(const JobState& state) {
    return {state.object.namespace_name, state.object.name};
  }
  void claim_name(JobState& state);
  void release_name(JobState& state, std::vector<std::string>& renamed_to);
  void index(JobState& state, bool add);
  void count_gpu(const JobState& state, bool add);
  static std::vector<JobState*> lookup(const Index& index, std::string_view key);

  Jobs jobs_;
  std::unordered_map<NameKey, JobState*, NameKeyHash> name_owner_;
  std::size_t shadowed_ = 0;  // jobs whose namespace/name another job owns
  Index by_app_;
  Index by_function_;
  GpuCounts gpu_counts_;
};

}  // namespace mx
