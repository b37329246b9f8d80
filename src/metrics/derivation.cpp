#include "metrics/derivation.h"

#include "exposition/text_format.h"
#include "metrics/job_families.h"

namespace mx {

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
  job_queue_ = s.add_family({"modal_job_queue_seconds",
                             "Time jobs spent queued before starting (Modal task enqueue to start "
                             "when known, else status created_at to started_at).",
                             T::histogram});
  for (const auto& family : job_families()) job_family_ids_.push_back(s.add_family(family.desc));
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
  app_running_tasks_ = s.add_family(
      {"modal_app_running_tasks", "Running tasks of each Modal app (AppList).", T::gauge});
  endpoint_ready_replicas_ = s.add_family(
      {"modal_endpoint_ready_replicas", "Ready replicas of each ModalEndpoint.", T::gauge});
  dropped_jobs_ = s.add_family(
      {"modal_exporter_dropped_jobs_total", "Jobs left out by limits.max_jobs.", T::counter});
  shard_jobs_ = s.add_family({"modal_exporter_shard_jobs",
                              "Live jobs this shard exports (owned) and leaves to other shards "
                              "(foreign); only with --total-shards > 1.",
                              T::gauge});
  app_cost_.emplace(s);  // added last: renders after the others
}

bool Derivation::update(Model& model, std::size_t max_jobs) {
  for (const auto& uid : model.take_dirty_jobs(max_jobs)) render_job(model, uid);
  for (const auto& uid : model.take_dirty_costs()) render_job(model, uid, /*time_only=*/true);
  for (const auto& uid : model.take_dirty_endpoints()) render_endpoint(model, uid);
  if (model.take_dirty_aggregates()) render_aggregates(model);
  if (model.take_dirty_app_costs()) app_cost_->render(model);
  return model.has_dirty_jobs();
}

void Derivation::render_job(const Model& model, const std::string& uid, bool time_only) {
  auto it = model.jobs().find(uid);
  if (it == model.jobs().end() || !it->second.renders_per_job) {
    // A deleted or shadowed job is also a dirty job, whose full render removes it.
    if (!time_only) set_.remove_object(uid);
    return;
  }
  const JobState& state = it->second;
  const CountedJob* counted = model.counted(uid);
  const JobView view{model, state, counted, effective_start(state.object, counted)};
  const auto& families = job_families();
  for (std::size_t i = 0; i < families.size(); ++i) {
    if (time_only && !families[i].moves_with_time) continue;
    JobSamples samples(scratch_, families[i].desc.name, state.object);
    families[i].write(view, samples);
    hand_over(job_family_ids_[i], uid, scratch_);
  }
}

void Derivation::hand_over(FamilyId family, std::string_view key, std::string& lines) {
  set_.set(family, key, lines);
  lines.clear();  // keeps its capacity for the next object
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
  hand_over(jobs_total_, "", out);

  // Every GPU type of a known job gets a series, 0 when none is active, so that
  // "sum(modal_jobs_active) == 0" can be true.
  for (const auto& [gpu, count] : model.gpu_counts())
    append_sample(out, "modal_jobs_active", {{"gpu_type", gpu}}, static_cast<double>(count.active));
  hand_over(jobs_active_, "", out);

  for (const auto& [key, h] : model.duration_histograms()) {
    append_histogram(out, "modal_job_duration_seconds",
                     {{"status", key.first}, {"gpu_type", key.second}}, Model::duration_buckets(),
                     h.counts, h.sum);
  }
  hand_over(job_duration_, "", out);

  for (const auto& [gpu, h] : model.queue_histograms()) {
    append_histogram(out, "modal_job_queue_seconds", {{"gpu_type", gpu}}, Model::queue_buckets(),
                     h.counts, h.sum);
  }
  hand_over(job_queue_, "", out);

  for (const auto& [replicas, count] : model.i6pn_total()) {
    append_sample(out, "modal_i6pn_jobs_total", {{"replicas", std::to_string(replicas)}},
                  static_cast<double>(count));
  }
  hand_over(i6pn_jobs_, "", out);

  for (const auto& [key, value] : model.errors_total()) {
    append_sample(out, "modal_operator_errors_total",
                  {{"error_type", key.first}, {"component", key.second}}, value);
  }
  hand_over(operator_errors_, "", out);

  if (auto restarts = model.operator_restarts()) {
    append_sample(out, "modal_operator_restarts_total", {}, static_cast<double>(*restarts));
  }
  hand_over(operator_restarts_, "", out);

  for (const auto& [key, value] : model.webhook_total()) {
    append_sample(out, "modal_webhook_requests_total",
                  {{"method", key.first}, {"status", key.second}}, value);
  }
  hand_over(webhook_requests_, "", out);

  std::set<std::string> apps;
  for (const auto& [id, app] : model.apps()) {
    apps.insert(id);
    append_sample(out, "modal_app_running_tasks", {{"app_id", id}, {"app_name", app.name}},
                  app.running_tasks);
    hand_over(app_running_tasks_, id, out);
  }
  for (const auto& id : rendered_apps_) {
    if (!apps.count(id)) set_.set(app_running_tasks_, id, {});
  }
  rendered_apps_ = std::move(apps);

  for (const auto& [reason, count] : model.dropped_total()) {
    append_sample(out, "modal_exporter_dropped_jobs_total", {{"reason", reason}},
                  static_cast<double>(count));
  }
  hand_over(dropped_jobs_, "", out);

  if (model.sharded()) {
    append_sample(out, "modal_exporter_shard_jobs", {{"ownership", "owned"}},
                  static_cast<double>(model.owned_jobs()));
    append_sample(out, "modal_exporter_shard_jobs", {{"ownership", "foreign"}},
                  static_cast<double>(model.foreign_jobs()));
  }
  hand_over(shard_jobs_, "", out);
}

}  // namespace mx
