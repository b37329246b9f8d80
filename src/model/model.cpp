#include "model/model.h"

#include <nlohmann/json.hpp>

#include <unistd.h>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "common/log.h"
#include "metrics/self_metrics.h"

namespace mx {
namespace {

constexpr double kDeletedRetentionSeconds = 3600;  // counted UIDs of deleted jobs, then pruned
constexpr double kNanoPerUsd = 1e9;

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

const char* const kErrorTypesHttp[] = {"timeout", "connection", "http_4xx", "http_5xx", "parse"};
const char* const kErrorTypesGrpc[] = {"grpc_unavailable",
                                       "grpc_deadline_exceeded",
                                       "grpc_resource_exhausted",
                                       "grpc_unauthenticated",
                                       "grpc_permission_denied",
                                       "grpc_unimplemented",
                                       "grpc_internal",
                                       "grpc_unknown",
                                       "parse",
                                       "auth"};

}  // namespace

bool is_terminal_phase(const std::string& phase) {
  return phase == "Succeeded" || phase == "Completed" || phase == "Failed";
}

bool is_active_phase(const std::string& phase) {
  return phase.empty() || phase == "Pending" || phase == "Running";
}

void HistogramData::observe(const std::vector<double>& bounds, double value) {
  if (counts.size() != bounds.size() + 1) counts.assign(bounds.size() + 1, 0);
  std::size_t i = 0;
  while (i < bounds.size() && value > bounds[i]) ++i;
  ++counts[i];
  sum += value;
}

const std::vector<double>& Model::duration_buckets() {
  static const std::vector<double> b = {1, 5, 10, 30, 60, 300, 600, 1800, 3600};
  return b;
}

const std::vector<double>& Model::queue_buckets() {
  static const std::vector<double> b = {1, 5, 10, 30, 60, 120, 300};
  return b;
}

Model::Model(Config config, SelfMetrics* self, std::function<double()> now)
    : config_(std::move(config)), self_(self), now_(now ? std::move(now) : wall_now) {
  init_error_counters();
}

void Model::reconfigure(const Config& config) {
  config_ = config;
  init_error_counters();
  dirty_aggregates_ = true;
  for (const auto& [uid, state] : jobs_) dirty_jobs_.insert(uid);
  changed();
}

// Counters whose label values are known in advance start at 0 (METRICS.md), for enabled sources.
void Model::init_error_counters() {
  auto init = [&](const char* component, auto& types) {
    for (const char* t : types) errors_.try_emplace({t, component}, 0);
  };
  if (config_.kubernetes.enabled) {
    init("kubernetes_api", kErrorTypesHttp);
    errors_.try_emplace({"auth", "kubernetes_api"}, 0);
  }
  if (config_.modal.enabled) init("modal_api", kErrorTypesGrpc);
  if (config_.telemetry.enabled) init("telemetry", kErrorTypesHttp);
  if (config_.upstream.enabled) init("upstream", kErrorTypesHttp);
  dropped_.try_emplace("max_jobs", 0);
  if (config_.shard.total_shards > 1) dropped_.try_emplace("shard", 0);
}

void Model::changed() {
  if (on_change_) on_change_();
}

void Model::mark_job(const std::string& uid) {
  dirty_jobs_.insert(uid);
  dirty_aggregates_ = true;
  state_dirty_ = true;
}

// --- SourceSink ------------------------------------------------------------------------------

void Model::count_error(std::string_view component, std::string_view error_type) {
  errors_[{std::string(error_type), std::string(component)}] += 1;
  dirty_aggregates_ = true;
  changed();
}

void Model::source_succeeded(std::string_view source, double poll_seconds) {
  if (self_) self_->source_succeeded(source, poll_seconds);
  if (source == "kubernetes") {
    // Jobs counted before a restart that are gone now were deleted while nobody watched:
    // start their retention clock so their history is pruned eventually.
    for (auto& [uid, counted] : counted_) {
      if (!jobs_.count(uid) && !counted.deleted_at) counted.deleted_at = now();
    }
  }
  changed();
}

void Model::source_failed(std::string_view source) {
  if (self_) self_->source_failed(source);
  changed();
}

// --- Kubernetes ------------------------------------------------------------------------------

bool Model::keep_uid(const std::string& uid) {
  if (jobs_.count(uid)) return true;
  if (config_.shard.total_shards > 1 &&
      fnv1a(uid) % static_cast<std::uint64_t>(config_.shard.total_shards) !=
          static_cast<std::uint64_t>(config_.shard.shard)) {
    if (dropped_uids_.insert(uid).second) {
      ++dropped_["shard"];
      dirty_aggregates_ = true;
    }
    return false;
  }
  if (jobs_.size() >= config_.limits.max_jobs) {
    if (dropped_uids_.insert(uid).second) {
      ++dropped_["max_jobs"];
      dirty_aggregates_ = true;
      log::warn("job left out: limits.max_jobs reached",
                {{"uid", uid}, {"max_jobs", config_.limits.max_jobs}});
    }
    return false;
  }
  return true;
}

void Model::claim_name(JobState& state) {
  const auto key = state.object.namespace_name + "/" + state.object.name;
  auto [it, inserted] = name_owner_.try_emplace(key, state.object.uid);
  state.renders_per_job = inserted || it->second == state.object.uid;
  if (!state.renders_per_job) {
    log::warn("two jobs share a namespace and name; per-job series show the first only",
              {{"namespace", state.object.namespace_name},
               {"job_name", state.object.name},
               {"uid", state.object.uid}});
  }
}

void Model::release_name(const JobState& state) {
  const auto key = state.object.namespace_name + "/" + state.object.name;
  auto it = name_owner_.find(key);
  if (it == name_owner_.end() || it->second != state.object.uid) return;
  name_owner_.erase(it);
  // Hand the name to another job that carries it, if any.
  for (auto& [uid, other] : jobs_) {
    if (uid != state.object.uid && !other.renders_per_job &&
        other.object.namespace_name == state.object.namespace_name &&
        other.object.name == state.object.name) {
      name_owner_[key] = uid;
      other.renders_per_job = true;
      dirty_jobs_.insert(uid);
      break;
    }
  }
}

void Model::index_job(const JobObject& job, bool add) {
  auto update = [&](auto& index, const std::string& key) {
    if (key.empty()) return;
    if (add) {
      index[key].insert(job.uid);
      return;
    }
    auto it = index.find(key);
    if (it == index.end()) return;
    it->second.erase(job.uid);
    if (it->second.empty()) index.erase(it);
  };
  update(jobs_by_app_, job.modal_app_id);
  update(jobs_by_function_, job.modal_function_id);
}

void Model::count_status(const JobObject& job, CountedJob& counted, JobStatusBit bit,
                         const char* status) {
  if (counted.statuses & bit) return;
  counted.statuses |= bit;
  ++jobs_total_[{status, job.gpu_type, job.replicas}];
  // Once a GPU type and replica count is known, its other statuses start at a true 0, so that
  // rate()/increase() see the first completion or failure (a series that appears at 1 shows no
  // increase).
  for (const char* other : {"created", "completed", "failed", "cancelled"}) {
    jobs_total_.try_emplace({other, job.gpu_type, job.replicas}, 0);
  }
}

void Model::upsert_job(JobObject job) {
  if (job.uid.empty() || !keep_uid(job.uid)) return;
  const std::string uid = job.uid;
  auto [it, inserted] = jobs_.try_emplace(uid);
  JobState& state = it->second;
  if (!inserted &&
      (state.object.namespace_name != job.namespace_name || state.object.name != job.name)) {
    release_name(state);
    inserted = true;
  }
  const std::string old_app = state.object.modal_app_id;
  if (!inserted) index_job(state.object, false);
  state.object = std::move(job);
  index_job(state.object, true);
  if (inserted) claim_name(state);
  if (inserted && state.object.kind == "Pod" && state.renders_per_job) {
    release_parked_events(state.object.namespace_name + "/" + state.object.name);
  }
  if (old_app != state.object.modal_app_id) state.tasks_known = false;
  CountedJob& counted = counted_[uid];
  counted.deleted_at.reset();
  observe_transitions(state, counted);
  mark_job(uid);
  changed();
}

void Model::observe_transitions(JobState& state, CountedJob& counted) {
  const JobObject& job = state.object;
  count_status(job, counted, kCreated, "created");
  if (job.i6pn && !counted.i6pn_counted) {
    counted.i6pn_counted = true;
    ++i6pn_total_[job.replicas];
  }
  if (job.kind == "Pod" && job.webhook_mutated && !counted.webhook_counted) {
    counted.webhook_counted = true;
    webhook_derived_[{"CREATE", "mutated"}] += 1;
  }
  const bool terminal = is_terminal_phase(job.phase);
  const bool started = job.phase == "Running" || job.started_at.has_value();
  if ((started || terminal) && !counted.seen_running_at && !job.started_at) {
    counted.seen_running_at = now();
  }
  if (started) try_observe_queue(state, counted, terminal);
  if (!terminal) return;
  const bool failed = job.phase == "Failed";
  count_status(job, counted, failed ? kFailed : kCompleted, failed ? "failed" : "completed");
  if (counted.duration_observed) return;
  // finished - started from status; else Modal task times; else the transitions we saw.
  std::optional<double> duration;
  if (job.started_at && job.finished_at) {
    duration = *job.finished_at - *job.started_at;
  } else if (state.modal_started_at && state.modal_finished_at) {
    duration = *state.modal_finished_at - *state.modal_started_at;
  } else {
    const auto start = job.started_at ? job.started_at : counted.seen_running_at;
    if (start) duration = (job.finished_at ? *job.finished_at : now()) - *start;
  }
  if (duration) {
    counted.duration_observed = true;
    duration_[{failed ? "failed" : "completed", job.gpu_type}].observe(duration_buckets(),
                                                                       std::max(0.0, *duration));
  }
}

// Queue time is observed once, when the job starts. The real queueing is Modal's
// started - enqueued; while the Modal source may still deliver it, wait (up to a grace
// period), then fall back to the status timestamps.
void Model::try_observe_queue(JobState& state, CountedJob& counted, bool final) {
  if (counted.queue_observed) return;
  const JobObject& job = state.object;
  std::optional<double> value;
  if (state.modal_enqueued_at && state.modal_started_at) {
    value = *state.modal_started_at - *state.modal_enqueued_at;
  } else {
    const double grace = 2.0 * std::chrono::duration<double>(config_.modal.tasks_interval).count();
    const double since = counted.seen_running_at.value_or(job.started_at.value_or(now()));
    const bool may_still_come = config_.modal.enabled && !job.modal_app_id.empty() &&
                                !state.tasks_known && now() - since < grace;
    if (may_still_come && !final) return;
    const auto start = job.started_at ? job.started_at : counted.seen_running_at;
    if (start && job.created_at) value = *start - *job.created_at;
  }
  if (!value) return;
  counted.queue_observed = true;
  queue_[job.gpu_type].observe(queue_buckets(), std::max(0.0, *value));
  dirty_aggregates_ = true;
  state_dirty_ = true;
}

void Model::delete_job(const std::string& uid) {
  auto it = jobs_.find(uid);
  if (it == jobs_.end()) return;
  CountedJob& counted = counted_[uid];
  if (!is_terminal_phase(it->second.object.phase) && !(counted.statuses & (kCompleted | kFailed))) {
    count_status(it->second.object, counted, kCancelled, "cancelled");
  }
  counted.deleted_at = now();
  release_name(it->second);
  index_job(it->second.object, false);
  jobs_.erase(it);
  mark_job(uid);
  changed();
}

void Model::upsert_endpoint(EndpointObject endpoint) {
  const auto uid = endpoint.uid;
  endpoints_[uid] = std::move(endpoint);
  dirty_endpoints_.insert(uid);
  changed();
}

void Model::delete_endpoint(const std::string& uid) {
  if (endpoints_.erase(uid)) {
    dirty_endpoints_.insert(uid);
    changed();
  }
}

void Model::upsert_function(FunctionObject function) {
  const auto uid = function.uid;
  functions_[uid] = std::move(function);
  changed();
}

void Model::delete_function(const std::string& uid) {
  functions_.erase(uid);
  changed();
}

void Model::set_operator_restarts(std::optional<std::int64_t> restart_count) {
  if (operator_restarts_ == restart_count) return;
  operator_restarts_ = restart_count;
  dirty_aggregates_ = true;
  changed();
}

// An Event repeats by updating its count in place: count the growth per Event UID.
void Model::observe_warning_event(WarningEvent event) {
  if (event.about_pod && !event.operator_pod) {
    const auto key = event.namespace_name + "/" + event.pod_name;
    auto owner = name_owner_.find(key);
    if (owner == name_owner_.end() || jobs_.at(owner->second).object.kind != "Pod") {
      park_pod_event(key, std::move(event));
      return;
    }
  }
  auto [it, inserted] = event_counts_.try_emplace(event.uid, 0);
  const std::int64_t growth = event.count - it->second;
  if (growth <= 0 && !inserted) return;
  it->second = std::max(event.count, it->second);
  state_dirty_ = true;
  if (growth > 0) {
    errors_[{event.reason.empty() ? "Unknown" : event.reason, "operator"}] +=
        static_cast<double>(growth);
    dirty_aggregates_ = true;
    changed();
  }
}

void Model::delete_warning_event(const std::string& uid) {
  event_counts_.erase(uid);
  auto parked = parked_event_pod_.find(uid);
  if (parked == parked_event_pod_.end()) return;
  auto events = parked_pod_events_.find(parked->second);
  if (events != parked_pod_events_.end()) {
    events->second.erase(uid);
    if (events->second.empty()) parked_pod_events_.erase(events);
  }
  parked_event_pod_.erase(parked);
}

// An Event about a Pod the model does not know (yet) waits here: the Pod may be an offloaded
// Pod whose informer has not delivered it. Events about other Pods wait until they are
// deleted (Kubernetes keeps Events for an hour), bounded by kMaxParkedPodEvents.
void Model::park_pod_event(const std::string& pod_key, WarningEvent event) {
  if (!parked_event_pod_.count(event.uid) && parked_event_pod_.size() >= kMaxParkedPodEvents) {
    return;
  }
  parked_event_pod_[event.uid] = pod_key;
  auto& slot = parked_pod_events_[pod_key][event.uid];
  slot = std::move(event);
}

// An offloaded Pod appeared: its parked Events count now.
void Model::release_parked_events(const std::string& pod_key) {
  auto events = parked_pod_events_.find(pod_key);
  if (events == parked_pod_events_.end()) return;
  auto pending = std::move(events->second);
  parked_pod_events_.erase(events);
  for (auto& [uid, event] : pending) {
    parked_event_pod_.erase(uid);
    observe_warning_event(std::move(event));
  }
}

// --- Modal -----------------------------------------------------------------------------------

void Model::modal_apps(std::vector<ModalApp> apps) {
  apps_.clear();
  for (auto& a : apps) {
    const auto id = a.app_id;
    apps_[id] = std::move(a);
  }
  dirty_aggregates_ = true;
  changed();
}

void Model::modal_tasks(const std::string& app_id, std::vector<ModalTask> tasks) {
  auto index = jobs_by_app_.find(app_id);
  if (index == jobs_by_app_.end()) return;
  for (const auto& uid : index->second) {
    JobState& state = jobs_.at(uid);
    state.tasks_known = true;
    CountedJob& counted = counted_[uid];
    for (const auto& t : tasks) {
      // A server that ignores TaskListRequest.app_id (older revisions of Modal's API have no
      // such filter) lists every app's tasks; each TaskStats names its own app.
      if (t.task_id.empty() || (!t.app_id.empty() && t.app_id != app_id)) continue;
      counted.task_ids.insert(t.task_id);
      if (t.enqueued_at && (!state.modal_enqueued_at || *t.enqueued_at < *state.modal_enqueued_at))
        state.modal_enqueued_at = t.enqueued_at;
      if (t.started_at && (!state.modal_started_at || *t.started_at < *state.modal_started_at))
        state.modal_started_at = t.started_at;
    }
    const bool started = state.object.phase == "Running" || state.object.started_at;
    if (started) try_observe_queue(state, counted, is_terminal_phase(state.object.phase));
    mark_job(uid);
  }
  changed();
}

void Model::modal_task_info(ModalTaskInfo info) {
  const auto app = info.app_id;
  auto index = jobs_by_app_.find(app);
  if (index == jobs_by_app_.end()) return;
  for (const auto& uid : index->second) {
    JobState& state = jobs_.at(uid);
    if (info.finished_at &&
        (!state.modal_finished_at || *info.finished_at > *state.modal_finished_at)) {
      state.modal_finished_at = info.finished_at;
    }
    mark_job(uid);
  }
  changed();
}

void Model::modal_function_stats(ModalFunctionStats stats) {
  function_backlog_[stats.function_id] = stats.backlog;
  auto index = jobs_by_function_.find(stats.function_id);
  if (index == jobs_by_function_.end()) return;
  for (const auto& uid : index->second) {
    jobs_.at(uid).backlog = stats.backlog;
    dirty_jobs_.insert(uid);
  }
  changed();
}

void Model::modal_billing(BillingReport report) {
  auto& target = report.resolution == "d" ? billing_daily_ : billing_hourly_;
  target.emplace();
  for (auto& item : report.items) (*target)[item.app_id].push_back(std::move(item));
  app_costs_dirty_ = true;
  for (const auto& [uid, state] : jobs_) {
    if (!state.object.modal_app_id.empty()) dirty_jobs_.insert(uid);
  }
  changed();
}

void Model::modal_rates(BillingRates rates) {
  rates_.clear();
  for (auto& [k, v] : rates.per_hour) rates_[lower(k)] = v;
  for (const auto& [uid, state] : jobs_) dirty_jobs_.insert(uid);
  changed();
}

std::vector<std::string> Model::active_job_app_ids() const {
  std::set<std::string> ids;
  for (const auto& [uid, s] : jobs_) {
    if (!s.object.modal_app_id.empty() && is_active_phase(s.object.phase))
      ids.insert(s.object.modal_app_id);
  }
  return {ids.begin(), ids.end()};
}

std::vector<std::string> Model::known_job_app_ids() const {
  std::set<std::string> ids;
  for (const auto& [uid, s] : jobs_) {
    if (!s.object.modal_app_id.empty()) ids.insert(s.object.modal_app_id);
  }
  return {ids.begin(), ids.end()};
}

std::vector<std::string> Model::job_function_ids() const {
  std::set<std::string> ids;
  for (const auto& [uid, s] : jobs_) {
    if (!s.object.modal_function_id.empty()) ids.insert(s.object.modal_function_id);
  }
  return {ids.begin(), ids.end()};
}

double Model::hourly_cost(const JobObject& job) const {
  auto rate = [&](const std::string& key, double fallback) {
    auto it = rates_.find(lower(key));
    return it != rates_.end() ? static_cast<double>(it->second) / kNanoPerUsd : fallback;
  };
  double gpu_price = 0;
  if (job.gpu_type != "none" && job.gpu_count > 0) {
    double table = 0;
    for (const auto& [type, price] : config_.prices.gpu_per_hour) {
      if (lower(type) == lower(job.gpu_type)) table = price;
    }
    gpu_price = rate(job.gpu_type, table) * job.gpu_count;
  }
  const double cpu = rate("cpu", config_.prices.cpu_core_per_hour) * job.cpu_cores;
  const double mem = rate("memory", config_.prices.memory_gib_per_hour) * job.memory_gib;
  return (gpu_price + cpu + mem) * job.replicas;
}

std::optional<double> Model::billed_today(const std::string& app_id) const {
  if (!billing_daily_ || app_id.empty()) return std::nullopt;
  const double day_start = std::floor(now() / 86400.0) * 86400.0;
  NanoUsd sum = 0;
  auto items = billing_daily_->find(app_id);
  if (items == billing_daily_->end()) return std::nullopt;  // no row for the app: no figure
  for (const auto& item : items->second) {
    if (item.interval_start >= day_start) sum += item.cost;
  }
  return static_cast<double>(sum) / kNanoPerUsd;
}

std::optional<std::pair<double, double>> Model::billed_since(const std::string& app_id,
                                                             double since) const {
  if (!billing_hourly_ || app_id.empty()) return std::nullopt;
  NanoUsd sum = 0;
  double reported_until = std::floor(since / 3600.0) * 3600.0;
  auto items = billing_hourly_->find(app_id);
  const std::vector<BillingItem> none;
  for (const auto& item : items == billing_hourly_->end() ? none : items->second) {
    if (item.interval_start + 3600.0 <= since) continue;
    sum += item.cost;
    reported_until = std::max(reported_until, item.interval_start + 3600.0);
  }
  return std::make_pair(static_cast<double>(sum) / kNanoPerUsd, reported_until);
}

std::optional<std::uint64_t> Model::cold_starts(const std::string& uid) const {
  auto job = jobs_.find(uid);
  if (job == jobs_.end()) return std::nullopt;
  auto it = counted_.find(uid);
  const std::uint64_t seen = it == counted_.end() ? 0 : it->second.task_ids.size();
  // Known from a TaskList, or from the state file: after a restart a finished job's tasks are
  // not listed again (only active jobs are polled), but its count is still true.
  if (!job->second.tasks_known && seen == 0) return std::nullopt;
  return seen;
}

// --- Telemetry / upstream ----------------------------------------------------------------------

std::vector<TelemetryTarget> Model::telemetry_targets() const {
  std::vector<TelemetryTarget> out;
  for (const auto& [uid, s] : jobs_) {
    if (!s.object.telemetry_url.empty() && s.object.phase == "Running")
      out.push_back({uid, s.object.telemetry_url});
  }
  return out;
}

void Model::job_telemetry(JobTelemetry t) {
  auto it = jobs_.find(t.uid);
  if (it == jobs_.end()) return;
  it->second.gpu_utilization = t.gpu_utilization;
  it->second.ingress_mbps = t.ingress_mbps;
  it->second.egress_mbps = t.egress_mbps;
  dirty_jobs_.insert(t.uid);
  changed();
}

void Model::forget_job_telemetry(const std::string& uid) {
  auto it = jobs_.find(uid);
  if (it == jobs_.end()) return;
  it->second.gpu_utilization.reset();
  it->second.ingress_mbps.reset();
  it->second.egress_mbps.reset();
  dirty_jobs_.insert(uid);
  changed();
}

void Model::upstream_samples(std::vector<UpstreamSample> samples) {
  upstream_ = std::move(samples);
  dirty_aggregates_ = true;
  changed();
}

std::map<std::pair<std::string, std::string>, double> Model::errors_total() const {
  auto out = errors_;
  for (const auto& s : upstream_) {
    if (s.metric != "modal_operator_errors_total") continue;
    auto t = s.labels.find("error_type");
    auto c = s.labels.find("component");
    if (t == s.labels.end() || c == s.labels.end()) continue;
    out[{t->second, c->second}] += s.value;
  }
  return out;
}

std::map<std::pair<std::string, std::string>, double> Model::webhook_total() const {
  if (!config_.upstream.enabled) return webhook_derived_;
  std::map<std::pair<std::string, std::string>, double> out;
  for (const auto& s : upstream_) {
    if (s.metric != "modal_webhook_requests_total") continue;
    auto m = s.labels.find("method");
    auto st = s.labels.find("status");
    if (m == s.labels.end() || st == s.labels.end()) continue;
    out[{m->second, st->second}] += s.value;
  }
  return out;
}

const CountedJob* Model::counted(const std::string& uid) const {
  auto it = counted_.find(uid);
  return it == counted_.end() ? nullptr : &it->second;
}

void Model::tick() {
  const double t = now();
  for (auto& [uid, state] : jobs_) {
    CountedJob& counted = counted_[uid];
    const bool started = state.object.phase == "Running" || state.object.started_at;
    if (started && !counted.queue_observed) try_observe_queue(state, counted, false);
    // Time-dependent series (running seconds, cost so far) of running jobs move with the clock.
    if (state.object.phase == "Running") dirty_jobs_.insert(uid);
  }
  for (auto it = counted_.begin(); it != counted_.end();) {
    if (it->second.deleted_at && t - *it->second.deleted_at > kDeletedRetentionSeconds) {
      it = counted_.erase(it);
      state_dirty_ = true;
    } else {
      ++it;
    }
  }
  changed();
}

std::set<std::string> Model::take_dirty_jobs() {
  return std::exchange(dirty_jobs_, {});
}
std::set<std::string> Model::take_dirty_endpoints() {
  return std::exchange(dirty_endpoints_, {});
}
bool Model::take_dirty_aggregates() {
  return std::exchange(dirty_aggregates_, false);
}

// --- State file --------------------------------------------------------------------------------

namespace {
nlohmann::json histogram_json(const HistogramData& h) {
  return {{"counts", h.counts}, {"sum", h.sum}};
}
HistogramData histogram_from(const nlohmann::json& j, std::size_t buckets) {
  HistogramData h;
  h.counts = j.at("counts").get<std::vector<std::uint64_t>>();
  h.sum = j.at("sum").get<double>();
  if (h.counts.size() != buckets) throw std::runtime_error("histogram bucket count mismatch");
  return h;
}
}  // namespace

bool Model::save_state(const std::string& path) const {
  nlohmann::json j;
  j["version"] = 1;
  auto& jobs = j["jobs"] = nlohmann::json::object();
  for (const auto& [uid, c] : counted_) {
    nlohmann::json e = {{"statuses", c.statuses},       {"duration", c.duration_observed},
                        {"queue", c.queue_observed},    {"i6pn", c.i6pn_counted},
                        {"webhook", c.webhook_counted}, {"tasks", c.task_ids}};
    if (c.seen_running_at) e["seen_running_at"] = *c.seen_running_at;
    if (c.deleted_at) e["deleted_at"] = *c.deleted_at;
    jobs[uid] = std::move(e);
  }
  auto& totals = j["jobs_total"] = nlohmann::json::array();
  for (const auto& [k, v] : jobs_total_) {
    totals.push_back({std::get<0>(k), std::get<1>(k), std::get<2>(k), v});
  }
  auto& durations = j["duration"] = nlohmann::json::array();
  for (const auto& [k, h] : duration_) durations.push_back({k.first, k.second, histogram_json(h)});
  auto& queues = j["queue"] = nlohmann::json::array();
  for (const auto& [k, h] : queue_) queues.push_back({k, histogram_json(h)});
  auto& i6pn = j["i6pn"] = nlohmann::json::array();
  for (const auto& [k, v] : i6pn_total_) i6pn.push_back({k, v});
  auto& webhook = j["webhook"] = nlohmann::json::array();
  for (const auto& [k, v] : webhook_derived_) webhook.push_back({k.first, k.second, v});
  // Warning Events are re-listed after a restart; their counts seen so far keep them from being
  // counted again, and the operator's counts carry on from where they were.
  j["event_counts"] = event_counts_;
  auto& operator_errors = j["operator_errors"] = nlohmann::json::array();
  for (const auto& [k, v] : errors_) {
    if (k.second == "operator") operator_errors.push_back({k.first, v});
  }

  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) {
      log::error("cannot write state file", {{"path", tmp}});
      return false;
    }
    out << j.dump();
    out.flush();
    if (!out) {
      log::error("cannot write state file", {{"path", tmp}});
      return false;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    log::error("cannot replace state file", {{"path", path}, {"err", ec.message()}});
    return false;
  }
  const_cast<Model*>(this)->state_dirty_ = false;
  return true;
}

bool Model::load_state(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    log::info("no state file yet; starting fresh", {{"path", path}});
    return false;
  }
  try {
    const auto j = nlohmann::json::parse(in);
    if (j.at("version").get<int>() != 1) throw std::runtime_error("unknown version");
    decltype(counted_) counted;
    for (const auto& [uid, e] : j.at("jobs").items()) {
      CountedJob c;
      c.statuses = e.at("statuses").get<std::uint8_t>();
      c.duration_observed = e.at("duration").get<bool>();
      c.queue_observed = e.at("queue").get<bool>();
      c.i6pn_counted = e.at("i6pn").get<bool>();
      c.webhook_counted = e.at("webhook").get<bool>();
      c.task_ids = e.at("tasks").get<std::set<std::string>>();
      if (e.contains("seen_running_at")) c.seen_running_at = e["seen_running_at"].get<double>();
      if (e.contains("deleted_at")) c.deleted_at = e["deleted_at"].get<double>();
      counted.emplace(uid, std::move(c));
    }
    decltype(jobs_total_) totals;
    for (const auto& t : j.at("jobs_total")) {
      totals[{t.at(0).get<std::string>(), t.at(1).get<std::string>(), t.at(2).get<int>()}] =
          t.at(3).get<std::uint64_t>();
    }
    decltype(duration_) durations;
    for (const auto& d : j.at("duration")) {
      durations[{d.at(0).get<std::string>(), d.at(1).get<std::string>()}] =
          histogram_from(d.at(2), duration_buckets().size() + 1);
    }
    decltype(queue_) queues;
    for (const auto& q : j.at("queue")) {
      queues[q.at(0).get<std::string>()] = histogram_from(q.at(1), queue_buckets().size() + 1);
    }
    decltype(i6pn_total_) i6pn;
    for (const auto& i : j.at("i6pn")) i6pn[i.at(0).get<int>()] = i.at(1).get<std::uint64_t>();
    decltype(webhook_derived_) webhook;
    for (const auto& w : j.at("webhook")) {
      webhook[{w.at(0).get<std::string>(), w.at(1).get<std::string>()}] = w.at(2).get<double>();
    }
    // Absent in state files written before Events were persisted.
    decltype(event_counts_) events;
    if (j.contains("event_counts")) events = j["event_counts"].get<decltype(event_counts_)>();
    decltype(errors_) operator_errors;
    if (j.contains("operator_errors")) {
      for (const auto& e : j["operator_errors"]) {
        operator_errors[{e.at(0).get<std::string>(), "operator"}] = e.at(1).get<double>();
      }
    }
    counted_ = std::move(counted);
    jobs_total_ = std::move(totals);
    duration_ = std::move(durations);
    queue_ = std::move(queues);
    i6pn_total_ = std::move(i6pn);
    webhook_derived_ = std::move(webhook);
    event_counts_ = std::move(events);
    for (auto& [k, v] : operator_errors) errors_[k] = v;
  } catch (const std::exception& e) {
    log::error("state file is corrupt; starting fresh", {{"path", path}, {"err", e.what()}});
    return false;
  }
  log::info("state restored", {{"path", path}, {"counted_jobs", counted_.size()}});
  dirty_aggregates_ = true;
  return true;
}

}  // namespace mx
