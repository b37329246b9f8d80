#include "metrics/derivation.h"

#include <algorithm>

#include "exposition/text_format.h"

namespace mx {
namespace {

constexpr const char* kPhases[] = {"Pending", "Running", "Succeeded", "Completed", "Failed"};

}  // namespace

Derivation::Derivation(FamilySet& s) : set_(s) {
  using T = MetricType;
  jobs_total_ = s.add_family({"modal_jobs_total",
                              "Modal jobs that reached each status (created, completed, failed, "
                              "cancelled), counted once per job UID.",
                              T::counter});
  jobs_active_ =
      s.add_family({"modal_jobs_active",
                    "Jobs now in a non-terminal phase (Pending, Running or none yet).", T::gauge});
  job_duration_ =
      s.add_family({"modal_job_duration_seconds",
                    "Duration of finished jobs (finished_at - started_at).", T::histogram});
  job_replicas_ =
      s.add_family({"modal_job_replicas", "Desired replicas of each active job.", T::gauge});
  job_queue_ = s.add_family({"modal_job_queue_seconds",
                             "Time jobs spent queued before starting (Modal task enqueue to start "
                             "when known, else status created_at to started_at).",
                             T::histogram});
  cold_starts_ =
      s.add_family({"modal_function_cold_starts_total",
                    "New Modal task (container) ids seen for the job's app.", T::counter});
  gpu_utilization_ = s.add_family({"modal_gpu_utilization",
                                   "GPU utilization ratio (0-1), mean over the job's GPUs, from "
                                   "the job's telemetry endpoint.",
                                   T::gauge});
  network_bandwidth_ = s.add_family(
      {"modal_network_bandwidth_mbps",
       "Network bandwidth of the job in megabits per second, from its telemetry byte counters.",
       T::gauge});
  cost_ = s.add_family(
      {"modal_cost_estimate_usd",
       "Cost of the job in USD: hourly burn rate, billed today, total since start.", T::gauge});
  i6pn_jobs_ = s.add_family({"modal_i6pn_jobs_total",
                             "Jobs that asked for i6pn networking, once per job UID.", T::counter});
  operator_errors_ = s.add_family({"modal_operator_errors_total",
                                   "Errors talking to each source, Warning Events on the "
                                   "operator's objects, and the operator's own error counts.",
                                   T::counter});
  operator_restarts_ =
      s.add_family({"modal_operator_restarts_total",
                    "Restarts of the operator container (restartCount of its Pod).", T::counter});
  webhook_requests_ = s.add_family(
      {"modal_webhook_requests_total",
       "Requests of the operator's mutating webhook (upstream counts, else mutated Pods).",
       T::counter});
  job_info_ =
      s.add_family({"modal_job_info", "Information about each known job (always 1).", T::gauge});
  job_status_phase_ = s.add_family(
      {"modal_job_status_phase", "The job's current phase (1 for the current one).", T::gauge});
  job_running_seconds_ = s.add_family(
      {"modal_job_running_seconds", "Seconds since each running job started.", T::gauge});
  app_running_tasks_ = s.add_family(
      {"modal_app_running_tasks", "Running tasks of each Modal app (AppList).", T::gauge});
  function_backlog_ = s.add_family(
      {"modal_function_backlog", "Inputs waiting for the job's Modal function.", T::gauge});
  endpoint_ready_replicas_ = s.add_family(
      {"modal_endpoint_ready_replicas", "Ready replicas of each ModalEndpoint.", T::gauge});
  dropped_jobs_ =
      s.add_family({"modal_exporter_dropped_jobs_total",
                    "Jobs left out by limits.max_jobs or the shard filter.", T::counter});
  app_cost_.emplace(s);
}

void Derivation::update(Model& model) {
  for (const auto& uid : model.take_dirty_jobs()) render_job(model, uid);
  for (const auto& uid : model.take_dirty_endpoints()) render_endpoint(model, uid);
  if (model.take_dirty_aggregates()) render_aggregates(model);
  if (model.take_dirty_app_costs()) app_cost_->render(model);
}

void Derivation::render_job(const Model& model, const std::string& uid) {
  auto it = model.jobs().find(uid);
  if (it == model.jobs().end() || !it->second.renders_per_job) {
    set_.remove_object(uid);
    return;
  }
  const JobState& state = it->second;
  const JobObject& job = state.object;
  const std::string_view ns = job.namespace_name, name = job.name, gpu = job.gpu_type;
  const bool active = is_active_phase(job.phase);
  const bool running = job.phase == "Running";
  std::string out;

  if (active)
    append_sample(out, "modal_job_replicas", {{"namespace", ns}, {"job_name", name}}, job.replicas);
  set_.set(job_replicas_, uid, std::exchange(out, {}));

  const std::string replicas = std::to_string(job.replicas);
  append_sample(out, "modal_job_info",
                {{"namespace", ns},
                 {"job_name", name},
                 {"uid", job.uid},
                 {"kind", job.kind},
                 {"gpu_type", gpu},
                 {"replicas", replicas},
                 {"app_id", job.modal_app_id}},
                1);
  set_.set(job_info_, uid, std::exchange(out, {}));

  const std::string phase = job.phase.empty() ? "Pending" : job.phase;
  bool known_phase = false;
  for (const char* p : kPhases) {
    known_phase = known_phase || phase == p;
    append_sample(out, "modal_job_status_phase",
                  {{"namespace", ns}, {"job_name", name}, {"phase", p}}, phase == p ? 1 : 0);
  }
  if (!known_phase) {
    append_sample(out, "modal_job_status_phase",
                  {{"namespace", ns}, {"job_name", name}, {"phase", phase}}, 1);
  }
  set_.set(job_status_phase_, uid, std::exchange(out, {}));

  const CountedJob* counted = model.counted(uid);
  const auto started =
      job.started_at ? job.started_at : (counted ? counted->seen_running_at : std::nullopt);
  if (running && started) {
    append_sample(out, "modal_job_running_seconds",
                  {{"namespace", ns}, {"job_name", name}, {"gpu_type", gpu}},
                  std::max(0.0, model.now() - *started));
  }
  set_.set(job_running_seconds_, uid, std::exchange(out, {}));

  if (auto cold = model.cold_starts(uid)) {
    append_sample(out, "modal_function_cold_starts_total",
                  {{"namespace", ns}, {"job_name", name}, {"gpu_type", gpu}},
                  static_cast<double>(*cold));
  }
  set_.set(cold_starts_, uid, std::exchange(out, {}));

  if (state.gpu_utilization) {
    append_sample(out, "modal_gpu_utilization",
                  {{"namespace", ns}, {"job_name", name}, {"gpu_type", gpu}},
                  *state.gpu_utilization);
  }
  set_.set(gpu_utilization_, uid, std::exchange(out, {}));

  if (state.ingress_mbps) {
    append_sample(out, "modal_network_bandwidth_mbps",
                  {{"namespace", ns}, {"job_name", name}, {"direction", "ingress"}},
                  *state.ingress_mbps);
  }
  if (state.egress_mbps) {
    append_sample(out, "modal_network_bandwidth_mbps",
                  {{"namespace", ns}, {"job_name", name}, {"direction", "egress"}},
                  *state.egress_mbps);
  }
  set_.set(network_bandwidth_, uid, std::exchange(out, {}));

  // Cost: the hourly burn rate of running jobs; what Modal billed the app today; and the
  // total since the job started (billed intervals plus the estimate for the unreported tail).
  const double hourly = model.hourly_cost(job);
  if (running) {
    append_sample(
        out, "modal_cost_estimate_usd",
        {{"namespace", ns}, {"job_name", name}, {"gpu_type", gpu}, {"time_period", "hourly"}},
        hourly);
  }
  if (auto today = job_cost_today(model, job, hourly, started, running)) {
    append_sample(
        out, "modal_cost_estimate_usd",
        {{"namespace", ns}, {"job_name", name}, {"gpu_type", gpu}, {"time_period", "daily"}},
        *today);
  }
  if (started) {
    const double end = job.finished_at ? *job.finished_at : (running ? model.now() : *started);
    double total = 0;
    double tail_from = *started;
    if (auto billed = model.billed_since(job.modal_app_id, *started)) {
      total = billed->first;
      tail_from = std::max(tail_from, billed->second);
    }
    if (end > tail_from) total += hourly * (end - tail_from) / 3600.0;
    append_sample(
        out, "modal_cost_estimate_usd",
        {{"namespace", ns}, {"job_name", name}, {"gpu_type", gpu}, {"time_period", "total"}},
        total);
  }
  set_.set(cost_, uid, std::exchange(out, {}));

  if (state.backlog && active) {
    append_sample(out, "modal_function_backlog", {{"namespace", ns}, {"job_name", name}},
                  *state.backlog);
  }
  set_.set(function_backlog_, uid, std::exchange(out, {}));
}

void Derivation::render_endpoint(const Model& model, const std::string& uid) {
  auto it = model.endpoints().find(uid);
  std::string out;
  if (it != model.endpoints().end() && it->second.ready_replicas) {
    append_sample(out, "modal_endpoint_ready_replicas",
                  {{"namespace", it->second.namespace_name}, {"endpoint", it->second.name}},
                  static_cast<double>(*it->second.ready_replicas));
  }
  set_.set(endpoint_ready_replicas_, uid, std::move(out));
}

void Derivation::render_aggregates(const Model& model) {
  std::string out;
  for (const auto& [key, count] : model.jobs_total()) {
    const auto& [status, gpu, replicas] = key;
    append_sample(out, "modal_jobs_total",
                  {{"status", status}, {"gpu_type", gpu}, {"replicas", std::to_string(replicas)}},
                  static_cast<double>(count));
  }
  set_.set(jobs_total_, "", std::exchange(out, {}));

  // Every GPU type of a known job gets a series, 0 when none is active, so that
  // "sum(modal_jobs_active) == 0" can be true.
  std::map<std::string, int> active;
  for (const auto& [uid, state] : model.jobs()) {
    active[state.object.gpu_type] += is_active_phase(state.object.phase) ? 1 : 0;
  }
  for (const auto& [gpu, n] : active)
    append_sample(out, "modal_jobs_active", {{"gpu_type", gpu}}, n);
  set_.set(jobs_active_, "", std::exchange(out, {}));

  for (const auto& [key, h] : model.duration_histograms()) {
    append_histogram(out, "modal_job_duration_seconds",
                     {{"status", key.first}, {"gpu_type", key.second}}, Model::duration_buckets(),
                     h.counts, h.sum);
  }
  set_.set(job_duration_, "", std::exchange(out, {}));

  for (const auto& [gpu, h] : model.queue_histograms()) {
    append_histogram(out, "modal_job_queue_seconds", {{"gpu_type", gpu}}, Model::queue_buckets(),
                     h.counts, h.sum);
  }
  set_.set(job_queue_, "", std::exchange(out, {}));

  for (const auto& [replicas, count] : model.i6pn_total()) {
    append_sample(out, "modal_i6pn_jobs_total", {{"replicas", std::to_string(replicas)}},
                  static_cast<double>(count));
  }
  set_.set(i6pn_jobs_, "", std::exchange(out, {}));

  for (const auto& [key, value] : model.errors_total()) {
    append_sample(out, "modal_operator_errors_total",
                  {{"error_type", key.first}, {"component", key.second}}, value);
  }
  set_.set(operator_errors_, "", std::exchange(out, {}));

  if (auto restarts = model.operator_restarts()) {
    append_sample(out, "modal_operator_restarts_total", {}, static_cast<double>(*restarts));
  }
  set_.set(operator_restarts_, "", std::exchange(out, {}));

  for (const auto& [key, value] : model.webhook_total()) {
    append_sample(out, "modal_webhook_requests_total",
                  {{"method", key.first}, {"status", key.second}}, value);
  }
  set_.set(webhook_requests_, "", std::exchange(out, {}));

  std::set<std::string> apps;
  for (const auto& [id, app] : model.apps()) {
    apps.insert(id);
    append_sample(out, "modal_app_running_tasks", {{"app_id", id}, {"app_name", app.name}},
                  app.running_tasks);
    set_.set(app_running_tasks_, id, std::exchange(out, {}));
  }
  for (const auto& id : rendered_apps_) {
    if (!apps.count(id)) set_.set(app_running_tasks_, id, {});
  }
  rendered_apps_ = std::move(apps);

  for (const auto& [reason, count] : model.dropped_total()) {
    append_sample(out, "modal_exporter_dropped_jobs_total", {{"reason", reason}},
                  static_cast<double>(count));
  }
  set_.set(dropped_jobs_, "", std::exchange(out, {}));
}

}  // namespace mx
