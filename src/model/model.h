// The model (docs/design.md, step 2): the single owner of state, mutated on the io_context
// thread only. It implements what the sources may tell it (model/sinks.h) and keeps the pieces
// apart: the job store (model/job_store.h), the count history that makes counters
// restart-safe (model/count_history.h, persisted by model/state_file.h), Warning Event
// accounting (model/warning_events.h) and cost (model/cost.h). It records which jobs changed;
// it does not know what the derivation reads from them, nor anything of the self metrics.
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
#include "model/cost.h"
#include "model/count_history.h"
#include "model/job_store.h"
#include "model/objects.h"
#include "model/sinks.h"
#include "model/warning_events.h"

namespace mx {

bool is_terminal_phase(const std::string& phase);
bool is_active_phase(const std::string& phase);

// How many entries each structure holds: every one is bounded by the live objects (see the
// comments of each piece and docs/design.md, "Bounded state").
struct ModelSizes {
  std::size_t jobs = 0;
  std::size_t counted_jobs = 0;
  std::size_t counted_task_ids = 0;
  std::size_t warning_events = 0;
  std::size_t parked_events = 0;
  std::size_t endpoints = 0;
  std::size_t apps = 0;
  std::size_t environments = 0;
  std::size_t billing_rows = 0;
  std::size_t left_out_jobs = 0;  // foreign (sharding) or over limits.max_jobs, still live
};

class Model : public KubernetesSink,
              public ModalSink,
              public TelemetrySink,
              public UpstreamSink,
              public SourceHealth {
 public:
  // `now` is injectable for tests; `on_change` is called (synchronously) after every mutation.
  explicit Model(Config config, std::function<double()> now = {});

  // How soon a change should reach /metrics. A Kubernetes object's change at once: it is what a
  // user just did, and watches it. What the pollers bring (Modal's answers, telemetry, the
  // upstream scrape, the cost that moves with time) may wait up to a second and go out together:
  // those values are seconds to minutes old when they arrive, and at 10k jobs they come several
  // times a second (the call budget's answers, the telemetry rounds).
  enum class Urgency { now, soon };
  void set_on_change(std::function<void(Urgency)> on_change) { on_change_ = std::move(on_change); }
  void reconfigure(const Config& config);
  // A new Kubernetes source replaces the running one (a reload). Its informers know nothing yet:
  // jobs and endpoints deleted between the old source's last event and the new one's LIST are
  // never reported as deleted. Every object known now must be delivered again before the new
  // source's first complete sync; those that are not are deleted then, as a re-list does.
  void kubernetes_restarted();
  // The error types `component` can raise: their counters start at 0.
  void declare_errors(std::string_view component, const std::vector<std::string>& types);

  // --- SourceSink
  void count_error(std::string_view component, std::string_view error_type) override;
  // --- SourceHealth: only the Kubernetes source's matters here (the first complete sync); the
  // application hands every report to the self metrics as well.
  void source_succeeded(std::string_view source, double poll_seconds) override;
  void source_failed(std::string_view source) override;
  // --- KubernetesSink
  void upsert_job(JobObject job) override;
  void delete_job(const std::string& uid) override;
  void upsert_endpoint(EndpointObject endpoint) override;
  void delete_endpoint(const std::string& uid) override;
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
  void modal_environments(std::vector<ModalEnvironment> environments) override;
  void modal_environment_cost(const std::string& environment_id,
                              std::optional<EnvironmentCost> cost) override;
  bool exports_environments() const override { return config_.shard.shard == 0; }
  std::vector<std::string> active_job_app_ids() const override;
  std::vector<std::string> known_job_app_ids() const override;
  std::vector<std::string> job_function_ids() const override;
  std::optional<std::uint64_t> job_ids_version() const override { return job_ids_version_; }
  std::vector<std::string> ended_task_ids() const override;
  std::uint64_t ended_tasks_version() const override { return ended_tasks_version_; }
  bool job_ids_settling() const override {
    return config_.kubernetes.enabled && kubernetes_listing();
  }
  void modal_first_rounds_ended() override;
  // --- TelemetrySink
  std::vector<TelemetryTarget> telemetry_targets() const override;
  bool telemetry_targets_settling() const override { return job_ids_settling(); }
  void job_telemetry(JobTelemetry telemetry) override;
  void forget_job_telemetry(const std::string& uid) override;
  // --- UpstreamSink
  void upstream_samples(std::vector<UpstreamSample> samples) override;

  // Resolves observations that wait on time (the queue time's and duration's fallbacks).
  void tick();

  // --- read access for the derivation
  double now() const { return now_(); }
  const Config& config() const { return config_; }
  const JobStore::Jobs& jobs() const { return store_.all(); }
  const JobStore::GpuCounts& gpu_counts() const { return store_.gpu_counts(); }
  const std::map<std::string, EndpointObject>& endpoints() const { return endpoints_; }
  // What the derivation shows of a Modal app (AppList); the rest of ModalApp is not kept.
  struct HeldApp {
    std::string name;
    int running_tasks = 0;
    bool operator==(const HeldApp&) const = default;
  };
  const std::map<std::string, HeldApp>& apps() const { return apps_; }
  // A Modal environment (EnvironmentList) and its month-to-date cost (EnvironmentBillingSummary,
  // nullopt until one arrived or while it is refused), by environment name.
  struct HeldEnvironment {
    ModalEnvironment environment;
    std::optional<EnvironmentCost> cost;
    bool operator==(const HeldEnvironment&) const = default;
  };
  const std::map<std::string, HeldEnvironment>& environments() const { return environments_; }
  std::optional<std::int64_t> operator_restarts() const { return operator_restarts_; }
  const std::map<CountHistory::JobsTotalKey, std::uint64_t>& jobs_total() const {
    return history_.jobs_total();
  }
  const std::map<CountHistory::DurationKey, HistogramData>& duration_histograms() const {
    return history_.durations();
  }
  const std::map<std::string, HistogramData>& queue_histograms() const { return history_.queues(); }
  const std::map<int, std::uint64_t>& i6pn_total() const { return history_.i6pn_total(); }
  // (error_type, component) -> count; includes Warning Events and upstream-merged counts.
  std::map<std::pair<std::string, std::string>, double> errors_total() const;
  // (method, status) -> count; from upstream when configured, else derived.
  std::map<std::pair<std::string, std::string>, double> webhook_total() const;
  const std::map<std::string, std::uint64_t>& dropped_total() const { return dropped_; }
  // Jobs this exporter holds and, when sharded, live jobs that belong to other shards.
  std::size_t owned_jobs() const { return store_.size(); }
  std::size_t foreign_jobs() const { return foreign_.size(); }
  // The Kubernetes source is still delivering its first full LIST (it neither completed one nor
  // failed yet): the application holds publishes until it is in.
  bool kubernetes_listing() const { return !synced_once_ && !kubernetes_failed_; }
  // The Modal source's first tasks and billing rounds over every job have ended: until then the
  // application holds the first publish (bounded), like for the first LIST.
  bool modal_settled() const { return modal_settled_; }
  bool sharded() const { return config_.shard.total_shards > 1; }
  const CountedJob* counted(const std::string& uid) const { return history_.find(uid); }
  const Cost& cost() const { return cost_; }
  // Cost in USD per hour of one running job; rates from Modal, else the price table.
  double hourly_cost(const JobObject& job) const { return cost_.hourly(job); }
  std::optional<std::uint64_t> cold_starts(const std::string& uid) const;
  ModelSizes sizes() const;
  // The last complete billing reports by app id ("d" / "h"); nullopt until the first arrived.
  // Read by src/metrics/app_cost.cpp.
  using BillingByApp = Cost::Items;
  const std::optional<BillingByApp>& billing_daily() const { return cost_.daily(); }
  const std::optional<BillingByApp>& billing_hourly() const { return cost_.hourly_report(); }

  // Jobs whose per-job series must be re-rendered, drained by the derivation.
  // At most `max` changed jobs (all by default); the rest stay for the next call.
  std::vector<std::string> take_dirty_jobs(std::size_t max = static_cast<std::size_t>(-1));
  bool has_dirty_jobs() const { return !dirty_jobs_.empty(); }
  // Running jobs whose time-driven series (their total cost) are due for a refresh (tick()).
  std::vector<std::string> take_dirty_costs() { return std::exchange(dirty_costs_, {}); }
  // Jobs whose telemetry changed (job_telemetry, forget_job_telemetry): only their telemetry
  // series need re-rendering, not the whole job.
  std::unordered_set<std::string> take_dirty_telemetry() {
    return std::exchange(dirty_telemetry_, {});
  }
  std::set<std::string> take_dirty_endpoints();
  bool take_dirty_aggregates();
  bool take_dirty_app_costs() { return std::exchange(app_costs_dirty_, false); }
  // Modal apps whose AppList entry came, changed or went.
  std::set<std::string> take_dirty_apps() { return std::exchange(dirty_apps_, {}); }
  // An environment, its limits or its cost came, changed or went.
  bool take_dirty_environments() { return std::exchange(environments_dirty_, false); }

  // State file: count history and Warning Event counts of live objects (model/state_file.h).
  bool save_state(const std::string& path);
  bool load_state(const std::string& path);
  // Something the state file holds changed since the last save.
  bool state_dirty() const { return state_dirty_; }

  static const std::vector<double>& duration_buckets() { return CountHistory::duration_buckets(); }
  static const std::vector<double>& queue_buckets() { return CountHistory::queue_buckets(); }

 private:
  void changed(Urgency urgency = Urgency::now);
  void job_changed(const std::string& uid);
  bool note_history();  // true when either moved
  ModalWait modal_wait() const;
  void note_finish_wait(const std::string& uid, bool waiting);
  // Shard and limit filter for a job not stored yet; counts what it leaves out.
  bool admit(const std::string& uid);
  bool owns(const std::string& uid) const;
  bool pod_known(const std::string& pod_key) const;
  void init_error_counters();
  void forget_unconfirmed_history();

  Config config_;
  std::function<double()> now_;
  std::function<void(Urgency)> on_change_;

  JobStore store_;
  CountHistory history_;
  WarningEvents events_;
  Cost cost_;
  // Live jobs left out by the shard filter / limits.max_jobs, so each is counted once.
  std::unordered_set<std::string> foreign_;
  std::unordered_set<std::string> over_limit_;
  std::map<std::string, EndpointObject> endpoints_;
  std::optional<std::int64_t> operator_restarts_;
  std::map<std::string, HeldApp> apps_;
  std::map<std::string, HeldEnvironment> environments_;
  std::map<std::pair<std::string, std::string>, double> errors_;  // (error_type, component)
  std::vector<UpstreamSample> upstream_;
  std::map<std::string, std::uint64_t> dropped_;
  bool synced_once_ = false;  // the Kubernetes source completed its first full sync
  // After kubernetes_restarted(), until the new source's first complete sync: the UIDs not
  // delivered again yet.
  bool resync_pending_ = false;
  std::unordered_set<std::string> unconfirmed_jobs_;
  std::set<std::string> unconfirmed_endpoints_;
  bool kubernetes_failed_ = false;  // ... or failed before that
  bool modal_settled_ = false;
  static constexpr double kCostRefreshSeconds = 60;
  static constexpr std::size_t kRefreshSlots = 64;    // a power of two, like bucket counts
  static std::size_t refresh_slot(std::size_t hash);  // of kRefreshSlots, from object_hash()
  double last_tick_ = 0;

  std::unordered_set<std::string> dirty_jobs_;  // no order needed: each is rendered alone
  std::vector<std::string> dirty_costs_;
  std::unordered_set<std::string> dirty_telemetry_;
  std::set<std::string> dirty_endpoints_;
  std::set<std::string> dirty_apps_;
  bool dirty_aggregates_ = true;
  bool app_costs_dirty_ = true;  // a billing report arrived
  bool environments_dirty_ = false;
  bool state_dirty_ = false;
  // Moves when a job's Modal app or function id, or whether it is active, may have changed.
  std::uint64_t job_ids_version_ = 0;
  // Ended jobs whose duration waits for Modal's finish time of their tasks (bounded by the live
  // jobs; most have both times in their status and never wait), and the version of that set.
  std::set<std::string> awaiting_finish_;
  std::uint64_t ended_tasks_version_ = 0;
};

}  // namespace mx
