#include "metrics/derivation.h"

#include <initializer_list>

#include "exposition/text_format.h"
#include "metrics/job_families.h"

namespace mx {
namespace {

using T = MetricType;

// Appends samples of one family; the family name is bound once.
class Samples {
 public:
  Samples(std::string& out, std::string_view family) : out_(out), family_(family) {}
  void add(std::initializer_list<Label> labels, double value) {
    append_sample(out_, family_, labels, value);
  }
  void histogram(const std::vector<Label>& labels, const std::vector<double>& bounds,
                 const HistogramData& h) {
    append_histogram(out_, family_, labels, bounds, h.counts, h.sum);
  }

 private:
  std::string& out_;
  std::string_view family_;
};

// A family rendered as a whole from the model's aggregates.
struct AggregateFamily {
  FamilyDesc desc;
  void (*write)(const Model& model, Samples& out);
};

double count(std::uint64_t n) {
  return static_cast<double>(n);
}

// The aggregates, in exposition order: the first four come before the per-job families. Rows of
// one shape by design (duplicates lists the histogram rows).
const std::vector<AggregateFamily>& aggregate_families() {
  static const std::vector<AggregateFamily> families = {
      {{"modal_jobs_total",
        "Modal jobs that reached each status (created, completed, failed, cancelled), counted "
        "once per job UID.",
        T::counter},
       [](const Model& model, Samples& out) {
         for (const auto& [key, n] : model.jobs_total()) {
           const auto& [status, gpu, replicas] = key;
           out.add({{"status", status}, {"gpu_type", gpu}, {"replicas", std::to_string(replicas)}},
                   count(n));
         }
       }},
      // Every GPU type of a known job gets a series, 0 when none is active, so that
      // "sum(modal_jobs_active) == 0" can be true.
      {{"modal_jobs_active", "Jobs now in a non-terminal phase (Pending, Running or none yet).",
        T::gauge},
       [](const Model& model, Samples& out) {
         for (const auto& [gpu, n] : model.gpu_counts())
           out.add({{"gpu_type", gpu}}, count(n.active));
       }},
      {{"modal_job_duration_seconds", "Duration of finished jobs (finished_at - started_at).",
        T::histogram},
       [](const Model& model, Samples& out) {
         for (const auto& [key, h] : model.duration_histograms())
           out.histogram({{"status", key.first}, {"gpu_type", key.second}},
                         Model::duration_buckets(), h);
       }},
      {{"modal_job_queue_seconds",
        "Time jobs spent queued before starting (Modal task enqueue to start when known, else "
        "status created_at to started_at).",
        T::histogram},
       [](const Model& model, Samples& out) {
         for (const auto& [gpu, h] : model.queue_histograms())
           out.histogram({{"gpu_type", gpu}}, Model::queue_buckets(), h);
       }},
      {{"modal_i6pn_jobs_total", "Jobs that asked for i6pn networking, once per job UID.",
        T::counter},
       [](const Model& model, Samples& out) {
         for (const auto& [replicas, n] : model.i6pn_total())
           out.add({{"replicas", std::to_string(replicas)}}, count(n));
       }},
      {{"modal_operator_errors_total",
        "Errors talking to each source, Warning Events on the operator's objects, and the "
        "operator's own error counts.",
        T::counter},
       [](const Model& model, Samples& out) {
         for (const auto& [key, value] : model.errors_total())
           out.add({{"error_type", key.first}, {"component", key.second}}, value);
       }},
      {{"modal_operator_restarts_total",
        "Restarts of the operator container (restartCount of its Pod).", T::counter},
       [](const Model& model, Samples& out) {
         if (auto restarts = model.operator_restarts()) out.add({}, static_cast<double>(*restarts));
       }},
      {{"modal_webhook_requests_total",
        "Requests of the operator's mutating webhook (upstream counts, else mutated Pods).",
        T::counter},
       [](const Model& model, Samples& out) {
         for (const auto& [key, value] : model.webhook_total())
           out.add({{"method", key.first}, {"status", key.second}}, value);
       }},
      {{"modal_exporter_dropped_jobs_total", "Jobs left out by limits.max_jobs.", T::counter},
       [](const Model& model, Samples& out) {
         for (const auto& [reason, n] : model.dropped_total())
           out.add({{"reason", reason}}, count(n));
       }},
      {{"modal_exporter_shard_jobs",
        "Live jobs this shard exports (owned) and leaves to other shards (foreign); only with "
        "--total-shards > 1.",
        T::gauge},
       [](const Model& model, Samples& out) {
         if (!model.sharded()) return;
         out.add({{"ownership", "owned"}}, count(model.owned_jobs()));
         out.add({{"ownership", "foreign"}}, count(model.foreign_jobs()));
       }},
  };
  return families;
}
constexpr std::size_t kAggregatesBeforeJobs = 4;

// Families rendered per object (app id, endpoint UID) rather than as a whole.
const FamilyDesc kAppRunningTasks{"modal_app_running_tasks",
                                  "Running tasks of each Modal app (AppList).", T::gauge};
const FamilyDesc kEndpointReadyReplicas{"modal_endpoint_ready_replicas",
                                        "Ready replicas of each ModalEndpoint.", T::gauge};

}  // namespace

Derivation::Derivation(FamilySet& s) : set_(s) {
  const auto& aggregates = aggregate_families();
  for (std::size_t i = 0; i < aggregates.size(); ++i) {
    if (i == kAggregatesBeforeJobs) {
      for (const auto& family : job_families())
        job_family_ids_.push_back(s.add_family(family.desc));
    }
    aggregate_ids_.push_back(s.add_family(aggregates[i].desc));
  }
  app_running_tasks_ = s.add_family(kAppRunningTasks);
  endpoint_ready_replicas_ = s.add_family(kEndpointReadyReplicas);
  app_cost_.emplace(s);
  environments_.emplace(s);  // added last: renders after the others
}

std::vector<FamilyDesc> Derivation::family_descs() {
  std::vector<FamilyDesc> out;
  for (const auto& family : aggregate_families()) out.push_back(family.desc);
  for (const auto& family : job_families()) out.push_back(family.desc);
  out.push_back(kAppRunningTasks);
  out.push_back(kEndpointReadyReplicas);
  out.push_back(AppCostFamily::desc());
  for (auto& desc : EnvironmentFamilies::descs()) out.push_back(std::move(desc));
  return out;
}

bool Derivation::update(Model& model, std::size_t max_jobs) {
  for (const auto& uid : model.take_dirty_jobs(max_jobs)) render_job(model, uid);
  for (const auto& uid : model.take_dirty_costs()) render_job(model, uid, RenderCause::time_passed);
  for (const auto& uid : model.take_dirty_telemetry()) {
    render_job(model, uid, RenderCause::telemetry_scraped);
  }
  for (const auto& uid : model.take_dirty_endpoints()) render_endpoint(model, uid);
  for (const auto& app_id : model.take_dirty_apps()) render_app(model, app_id);
  if (model.take_dirty_aggregates()) render_aggregates(model);
  if (model.take_dirty_app_costs()) app_cost_->render(model);
  if (model.take_dirty_environments()) environments_->render(model);
  return model.has_dirty_jobs();
}

void Derivation::render_job(const Model& model, const std::string& uid, RenderCause cause) {
  const bool whole = cause == RenderCause::job_changed;
  auto it = model.jobs().find(uid);
  if (it == model.jobs().end() || !it->second.renders_per_job) {
    // A deleted or shadowed job is also a dirty job, whose full render removes it.
    if (whole) set_.remove_object(uid);
    return;
  }
  const JobState& state = it->second;
  const CountedJob* counted = model.counted(uid);
  const JobView view{model, state, counted, effective_start(state.object, counted)};
  const auto& families = job_families();
  for (std::size_t i = 0; i < families.size(); ++i) {
    if (!whole && families[i].also_on != cause) continue;
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
    Samples(out, kEndpointReadyReplicas.name)
        .add({{"namespace", it->second.namespace_name}, {"endpoint", it->second.name}},
             static_cast<double>(*it->second.ready_replicas));
  }
  set_.set(endpoint_ready_replicas_, uid, std::move(out));
}

void Derivation::render_aggregates(const Model& model) {
  std::string out;
  const auto& aggregates = aggregate_families();
  for (std::size_t i = 0; i < aggregates.size(); ++i) {
    Samples samples(out, aggregates[i].desc.name);
    aggregates[i].write(model, samples);
    hand_over(aggregate_ids_[i], "", out);
  }
}

// One Modal app's line; an app AppList no longer lists loses it.
void Derivation::render_app(const Model& model, const std::string& app_id) {
  auto it = model.apps().find(app_id);
  std::string out;
  if (it != model.apps().end()) {
    Samples(out, kAppRunningTasks.name)
        .add({{"app_id", app_id}, {"app_name", it->second.name}}, it->second.running_tasks);
  }
  set_.set(app_running_tasks_, app_id, out);
}

}  // namespace mx
