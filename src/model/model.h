// The model (DESIGN.md, step 2): the single owner of state, mutated on the io_context thread
// only. Jobs are keyed by Kubernetes UID and joined to Modal apps by status.modal_app_id. The
// model also keeps the event history that makes counters true: which UIDs were already counted
// for which status, so that nothing is counted twice — also across restarts (state file).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "config/config.h"
#include "model/objects.h"
#include "model/sinks.h"

namespace mx {

class SelfMetrics;

// Per-UID history that must survive restarts.
struct CountedJob {
  std::uint8_t statuses = 0;  // bits of JobStatusBit already counted in modal_jobs_total
  bool duration_observed = false;
  bool queue_observed = false;
  bool i6pn_counted = false;
  bool webhook_counted = false;
  std::set<std::string> task_ids;         // Modal task ids counted as cold starts
  std::optional<double> seen_running_at;  // when the exporter saw it start (fallback times)
  std::optional<double> deleted_at;       // kept for a while after deletion, then pruned
};

enum JobStatusBit : std::uint8_t { kCreated = 1, kCompleted = 2, kFailed = 4, kCancelled = 8 };

// A histogram's state: per-bucket counts (last = +Inf) and sum.
struct HistogramData {
  std::vector<std::uint64_t> counts;
  double sum = 0;
  void observe(const std::vector<double>& bounds, double value);
};

struct JobState {
  JobObject object;
  std::optional<double> modal_enqueued_at;  // earliest Modal task enqueue/start times
  std::optional<double> modal_started_at;
  std::optional<double> modal_finished_at;
  bool tasks_known = false;  // TaskList succeeded for the job's app since it was seen
  std::optional<double> gpu_utilization;
  std::optional<double> ingress_mbps;
  std::optional<double> egress_mbps;
  std::optional<std::uint32_t> backlog;
  bool renders_per_job = true;  // false when another object already owns namespace/job_name
};

bool is_terminal_phase(const std::string& phase);
bool is_active_phase(const std::string& phase);

class Model : public KubernetesSink, public ModalSink, public TelemetrySink, public UpstreamSink {
 public:
  // `now` is injectable for tests; `on_change` is called (synchronously) after every mutation.
  Model(Config config, SelfMetrics* self, std::function<double()> now = {});

  void set_on_change(std::function<void()> on_change) { on_change_ = std::move(on_change); }
  void reconfigure(const Config& config);

  // --- SourceSink
  void count_error(std::string_view component, std::string_view error_type) override;
  void source_succeeded(std::string_view source, double poll_seconds) override;
  void source_failed(std::string_view source) override;
  // --- KubernetesSink
  void upsert_job(JobObject job) override;
  void delete_job(const std::string& uid) override;
  void upsert_endpoint(EndpointObject endpoint) override;
  void delete_endpoint(const std::string& uid) override;
  void upsert_function(FunctionObject function) override;
  void delete_function(const std::string& uid) override;
  void set_operator_restarts(std::optional<std::int64_t> restart_count) override;
  void observe_warning_event(WarningEvent event) override;
  void delete_warning_event(const std::string& uid) override;
  // --- ModalSink
  void modal_apps(std::vector<ModalApp> apps) override;
  void modal_tasks(const std::string& app_id, std::vector<ModalTask> tasks) override;
  void modal_task_info(ModalTaskInfo info) override;
  void modal_function_stats(ModalFunctionStats stats) override;
  void modal_billing(BillingReport report) override;
  void modal_rates(BillingRates rates) override;
  std::vector<std::string> active_job_app_ids() const override;
  std::vector<std::string> known_job_app_ids() const override;
  std::vector<std::string> job_function_ids() const override;
  // --- TelemetrySink
  std::vector<TelemetryTarget> telemetry_targets() const override;
  void job_telemetry(JobTelemetry telemetry) override;
  void forget_job_telemetry(const std::string& uid) override;
  // --- UpstreamSink
  void upstream_samples(std::vector<UpstreamSample> samples) override;

  // Resolves observations that wait on time (queue time fallback) and prunes old history.
  void tick();

  // --- read access for the derivation
  double now() const { return now_(); }
  const Config& config() const { return config_; }
  const std::unordered_map<std::string, JobState>& jobs() const { return jobs_; }
  const std::map<std::string, EndpointObject>& endpoints() const { return endpoints_; }
  const std::map<std::string, ModalApp>& apps() const { return apps_; }
  std::optional<std::int64_t> operator_restarts() const { return operator_restarts_; }
  // (status, gpu_type, replicas) -> count
  const std::map<std::tuple<std::string, std::string, int>, std::uint64_t>& jobs_total() const {
    return jobs_total_;
  }
  const std::map<std::pair<std::string, std::string>, HistogramData>& duration_histograms() const {
    return duration_;
  }
  const std::map<std::string, HistogramData>& queue_histograms() const { return queue_; }
  const std::map<int, std::uint64_t>& i6pn_total() const { return i6pn_total_; }
  // (error_type, component) -> count; includes upstream-merged counts.
  std::map<std::pair<std::string, std::string>, double> errors_total() const;
  // (method, status) -> count; from upstream when configured, else derived.
  std::map<std::pair<std::string, std::string>, double> webhook_total() const;
  const std::map<std::string, std::uint64_t>& dropped_total() const { return dropped_; }
  const CountedJob* counted(const std::string& uid) const;
  // Cost in USD per hour of one running job; rates from Modal, else the price table.
  double hourly_cost(const JobObject& job) const;
  // USD billed for the app: current UTC day ("d" report) / since `since` ("h" report).
  std::optional<double> billed_today(const std::string& app_id) const;
  // Billed USD since `since` and the end of the last reported interval.
  std::optional<std::pair<double, double>> billed_since(const std::string& app_id,
                                                        double since) const;
  std::optional<std::uint64_t> cold_starts(const std::string& uid) const;
  // The last complete billing reports by app id ("d" / "h"); nullopt until the first arrived.
  // Read by src/metrics/app_cost.cpp.
  using BillingByApp = std::unordered_map<std::string, std::vector<BillingItem>>;
  const std::optional<BillingByApp>& billing_daily() const { return billing_daily_; }
  const std::optional<BillingByApp>& billing_hourly() const { return billing_hourly_; }

  // Objects whose per-object series must be re-rendered, drained by the derivation.
  std::set<std::string> take_dirty_jobs();
  std::set<std::string> take_dirty_endpoints();
  bool take_dirty_aggregates();
  bool take_dirty_app_costs() { return std::exchange(app_costs_dirty_, false); }

  // State file (JSON): counted UIDs, counters and histograms. Atomic write (temp + rename).
  bool save_state(const std::string& path) const;
  // A missing or corrupt file is logged and the model starts fresh; returns false then.
  bool load_state(const std::string& path);
  bool state_dirty() const { return state_dirty_; }

  static const std::vector<double>& duration_buckets();
  static const std::vector<double>& queue_buckets();

 private:
  void changed();
  void mark_job(const std::string& uid);
  void count_status(const JobObject& job, CountedJob& counted, JobStatusBit bit,
                    const char* status);
  void observe_transitions(JobState& state, CountedJob& counted);
  void try_observe_queue(JobState& state, CountedJob& counted, bool final);
  bool keep_uid(const std::string& uid);
  void claim_name(JobState& state);
  void release_name(const JobState& state);
  void init_error_counters();

  Config config_;
  SelfMetrics* self_;
  std::function<double()> now_;
  std::function<void()> on_change_;

  std::unordered_map<std::string, JobState> jobs_;
  std::unordered_map<std::string, CountedJob> counted_;
  std::unordered_set<std::string> dropped_uids_;
  std::map<std::string, std::string> name_owner_;  // "ns/name" -> uid rendering per-job series
  std::map<std::string, EndpointObject> endpoints_;
  std::map<std::string, FunctionObject> functions_;
  std::map<std::string, std::int64_t> event_counts_;  // Warning Event UID -> last count
  // Warning Events about Pods not known as offloaded Pods: "ns/pod" -> Event UID -> Event.
  std::unordered_map<std::string, std::map<std::string, WarningEvent>> parked_pod_events_;
  std::unordered_map<std::string, std::string> parked_event_pod_;  // Event UID -> "ns/pod"
  static constexpr std::size_t kMaxParkedPodEvents = 100000;
  void park_pod_event(const std::string& pod_key, WarningEvent event);
  void release_parked_events(const std::string& pod_key);
  std::optional<std::int64_t> operator_restarts_;

  std::map<std::string, ModalApp> apps_;
  std::map<std::string, std::uint32_t> function_backlog_;  // function_id -> backlog
  std::map<std::string, NanoUsd> rates_;
  // Billing items by app id; a resolution is "known" once its first complete report arrived.
  std::optional<std::unordered_map<std::string, std::vector<BillingItem>>> billing_daily_;
  std::optional<std::unordered_map<std::string, std::vector<BillingItem>>> billing_hourly_;
  // Job UIDs by Modal app and function id, so each Modal result touches only its jobs.
  std::unordered_map<std::string, std::set<std::string>> jobs_by_app_;
  std::unordered_map<std::string, std::set<std::string>> jobs_by_function_;
  void index_job(const JobObject& job, bool add);

  std::map<std::tuple<std::string, std::string, int>, std::uint64_t> jobs_total_;
  std::map<std::pair<std::string, std::string>, HistogramData> duration_;
  std::map<std::string, HistogramData> queue_;
  std::map<int, std::uint64_t> i6pn_total_;
  std::map<std::pair<std::string, std::string>, double> errors_;
  std::map<std::pair<std::string, std::string>, double> webhook_derived_;
  std::vector<UpstreamSample> upstream_;
  std::map<std::string, std::uint64_t> dropped_;

  std::set<std::string> dirty_jobs_;
  std::set<std::string> dirty_endpoints_;
  bool dirty_aggregates_ = true;
  bool app_costs_dirty_ = true;  // a billing report arrived
  bool state_dirty_ = false;
};

}  // namespace mx
