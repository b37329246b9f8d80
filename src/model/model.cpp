#include "model/model.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/log.h"
#include "common/object_hash.h"
#include "model/state_file.h"

namespace mx {
namespace {

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace

bool is_terminal_phase(const std::string& phase) {
  return is_terminal(parse_phase(phase));
}

bool is_active_phase(const std::string& phase) {
  return is_active(parse_phase(phase));
}

Model::Model(Config config, std::function<double()> now)
    : config_(std::move(config)),
      now_(now ? std::move(now) : wall_now),
      cost_(config_.prices),
      last_tick_(now_()) {
  init_error_counters();
}

void Model::reconfigure(const Config& config) {
  config_ = config;
  ++job_ids_version_;
  cost_.set_prices(config_.prices);
  init_error_counters();
  dirty_aggregates_ = true;
  for (const auto& [uid, state] : store_.all()) dirty_jobs_.insert(uid);
  changed();
}

void Model::init_error_counters() {
  dropped_.try_emplace("max_jobs", 0);
}

// Counters whose label values are known in advance start at 0 (docs/metrics.md): the error
// types each enabled source can raise, declared by the source registry.
void Model::declare_errors(std::string_view component, const std::vector<std::string>& types) {
  for (const auto& t : types) errors_.try_emplace({t, std::string(component)}, 0);
  dirty_aggregates_ = true;
}

void Model::changed(Urgency urgency) {
  if (on_change_) on_change_(urgency);
}

void Model::job_changed(const std::string& uid) {
  dirty_jobs_.insert(uid);
  dirty_aggregates_ = true;
}

// The count history or the Event counts moved: the aggregates and the state file follow.
// Both flags are taken (each resets its own), whichever is set.
bool Model::note_history() {
  const bool history_moved = history_.take_changed();
  const bool events_moved = events_.take_changed();
  if (!history_moved && !events_moved) return false;
  dirty_aggregates_ = true;
  state_dirty_ = true;
  return true;
}

ModalWait Model::modal_wait() const {
  return {config_.modal.enabled,
          2.0 * std::chrono::duration<double>(config_.modal.tasks_interval).count()};
}

// --- SourceSink, SourceHealth ----------------------------------------------------------------

void Model::count_error(std::string_view component, std::string_view error_type) {
  errors_[{std::string(error_type), std::string(component)}] += 1;
  dirty_aggregates_ = true;
  changed(Urgency::soon);
}

void Model::kubernetes_restarted() {
  resync_pending_ = true;
  unconfirmed_jobs_.clear();
  for (const auto& [uid, state] : store_.all()) unconfirmed_jobs_.insert(uid);
  unconfirmed_endpoints_.clear();
  for (const auto& [uid, endpoint] : endpoints_) unconfirmed_endpoints_.insert(uid);
}

// Only the first Kubernetes sync (or a failure before it) moves the model: the publishes held
// for it may go. So does the first sync of a source started by a reload: what it did not
// deliver was deleted meanwhile. Every other report is the self metrics' business, and
// publishes nothing.
void Model::source_succeeded(std::string_view source, double) {
  if (source != "kubernetes") return;
  if (resync_pending_) {
    resync_pending_ = false;
    const auto jobs = std::exchange(unconfirmed_jobs_, {});
    const auto endpoints = std::exchange(unconfirmed_endpoints_, {});
    for (const auto& uid : jobs) delete_job(uid);
    for (const auto& uid : endpoints) delete_endpoint(uid);
    if (!jobs.empty() || !endpoints.empty()) {
      log::info("objects deleted while the Kubernetes source restarted",
                {{"jobs", jobs.size()}, {"endpoints", endpoints.size()}});
    }
  }
  if (synced_once_) return;
  synced_once_ = true;
  forget_unconfirmed_history();
  changed();
}

// After the first complete sync every live object has been delivered: history restored from the
// state file for objects that are gone now (deleted while the exporter was down) can go.
void Model::forget_unconfirmed_history() {
  const std::size_t jobs =
      history_.forget_unless([this](const std::string& uid) { return store_.find(uid); });
  const std::size_t events = events_.forget_unconfirmed();
  if (jobs || events) {
    log::info("forgot the history of objects deleted while the exporter was down",
              {{"jobs", jobs}, {"warning_events", events}});
  }
  note_history();
}

void Model::source_failed(std::string_view source) {
  if (source != "kubernetes" || kubernetes_failed_) return;
  kubernetes_failed_ = true;
  changed();
}

void Model::modal_first_rounds_ended() {
  if (std::exchange(modal_settled_, true)) return;
  changed();  // the publish held for it may go
}

// --- Kubernetes ------------------------------------------------------------------------------

bool Model::owns(const std::string& uid) const {
  if (!sharded()) return true;
  return fnv1a(uid) % static_cast<std::uint64_t>(config_.shard.total_shards) ==
         static_cast<std::uint64_t>(config_.shard.shard);
}

bool Model::admit(const std::string& uid) {
  if (store_.find(uid)) return true;
  if (!owns(uid)) {
    if (foreign_.insert(uid).second) dirty_aggregates_ = true;
    return false;
  }
  if (store_.size() >= config_.limits.max_jobs) {
    if (over_limit_.insert(uid).second) {
      ++dropped_["max_jobs"];
      dirty_aggregates_ = true;
      log::warn("job left out: limits.max_jobs reached",
                {{"uid", uid}, {"max_jobs", config_.limits.max_jobs}});
    }
    return false;
  }
  return true;
}

void Model::upsert_job(JobObject job) {
  if (resync_pending_) unconfirmed_jobs_.erase(job.uid);
  if (job.uid.empty() || !admit(job.uid)) return;
  const std::string uid = job.uid;
  const JobState* before = store_.find(uid);
  if (!before || before->object.modal_app_id != job.modal_app_id ||
      before->object.modal_function_id != job.modal_function_id ||
      is_active(before->phase) != is_active(parse_phase(job.phase))) {
    ++job_ids_version_;
  }
  bool is_new = false;
  std::vector<std::string> renamed_to;
  JobState& state = store_.put(std::move(job), is_new, renamed_to);
  for (const auto& other : renamed_to) job_changed(other);
  if (is_new && state.object.kind == "Pod" && state.renders_per_job) {
    const auto pod = state.object.namespace_name + "/" + state.object.name;
    events_.release_parked(pod, [this](const std::string& key) { return pod_known(key); });
  }
  note_finish_wait(uid, history_.observe(state, history_.entry(uid), now(), modal_wait()));
  job_changed(uid);
  note_history();
  changed();
}

void Model::delete_job(const std::string& uid) {
  foreign_.erase(uid);
  over_limit_.erase(uid);
  std::vector<std::string> renamed_to;
  auto state = store_.take(uid, renamed_to);
  if (!state) return;
  ++job_ids_version_;
  for (const auto& other : renamed_to) job_changed(other);
  // A deleted UID never comes back: count what its deletion means, then forget its history.
  // A duration that waited for Modal's finish time is observed with what is known now.
  CountedJob& counted = history_.entry(uid);
  history_.observe_duration(*state, counted, true, now(), modal_wait());
  note_finish_wait(uid, false);
  history_.observe_deleted(*state, counted);
  history_.forget(uid);
  job_changed(uid);
  note_history();
  changed();
}

void Model::upsert_endpoint(EndpointObject endpoint) {
  if (resync_pending_) unconfirmed_endpoints_.erase(endpoint.uid);
  if (!owns(endpoint.uid)) return;
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

// A fleet-wide singleton: with sharding, only shard 0 exports it.
void Model::set_operator_restarts(std::optional<std::int64_t> restart_count) {
  if (config_.shard.shard != 0) restart_count.reset();
  if (operator_restarts_ == restart_count) return;
  operator_restarts_ = restart_count;
  dirty_aggregates_ = true;
  changed();
}

bool Model::pod_known(const std::string& pod_key) const {
  const auto slash = pod_key.find('/');
  const JobState* owner = store_.owner_of(pod_key.substr(0, slash), pod_key.substr(slash + 1));
  return owner && owner->object.kind == "Pod";
}

// Each Event counts in one shard: the shard owning the object it is about (Events carry that
// object's UID); Events about the operator's own Pod, or without a UID, count in shard 0.
void Model::observe_warning_event(WarningEvent event) {
  if (sharded()) {
    const bool shard0 = config_.shard.shard == 0;
    const bool mine =
        event.operator_pod || event.involved_uid.empty() ? shard0 : owns(event.involved_uid);
    if (!mine) return;
  }
  const bool counted =
      events_.observe(std::move(event), [this](const std::string& k) { return pod_known(k); });
  note_history();
  if (counted) changed();
}

void Model::delete_warning_event(const std::string& uid) {
  events_.remove(uid);
  note_history();
}

// --- Modal -----------------------------------------------------------------------------------
// Every poll round hands over its whole answer, and most answers repeat the previous one: each
// handler compares what it is given with what it holds and marks dirty (and publishes) only what
// moved, so an unchanged round costs its comparisons and no rendering.

// App-level series are fleet-wide: with sharding, only shard 0 exports them.
void Model::modal_apps(std::vector<ModalApp> apps) {
  std::map<std::string, HeldApp> next;
  if (config_.shard.shard == 0) {
    for (auto& a : apps) next[a.app_id] = HeldApp{std::move(a.name), a.running_tasks};
  }
  if (next == apps_) return;
  for (const auto& [id, app] : next) {
    auto it = apps_.find(id);
    if (it == apps_.end() || !(it->second == app)) dirty_apps_.insert(id);
  }
  for (const auto& [id, app] : apps_) {
    if (!next.contains(id)) dirty_apps_.insert(id);
  }
  apps_ = std::move(next);
  changed(Urgency::soon);
}

void Model::modal_tasks(const std::string& app_id, std::vector<ModalTask> tasks) {
  bool any = false;
  for (JobState* job : store_.with_app(app_id)) {
    JobState& state = *job;
    const std::string& uid = state.object.uid;
    bool moved = !state.tasks_known;
    state.tasks_known = true;
    CountedJob& counted = history_.entry(uid);
    for (const auto& t : tasks) {
      // A server that ignores TaskListRequest.app_id (older revisions of Modal's API have no
      // such filter) lists every app's tasks; each TaskStats names its own app.
      if (t.task_id.empty() || (!t.app_id.empty() && t.app_id != app_id)) continue;
      if (history_.count_task(counted, t.task_id)) moved = true;
      if (t.enqueued_at &&
          (!state.modal_enqueued_at || *t.enqueued_at < *state.modal_enqueued_at)) {
        state.modal_enqueued_at = t.enqueued_at;
        moved = true;
      }
      if (t.started_at && (!state.modal_started_at || *t.started_at < *state.modal_started_at)) {
        state.modal_started_at = t.started_at;
        moved = true;
      }
    }
    if (state.started()) {
      history_.observe_queue(state, counted, is_terminal(state.phase), now(), modal_wait());
    }
    if (moved) {
      job_changed(uid);
      any = true;
    }
  }
  if (note_history()) any = true;
  if (any) changed(Urgency::soon);
}

// The finish time of an ended job's task (ModalSink::ended_task_ids) feeds the job's duration
// (CountHistory::observe_duration), observed once every task it waits for has answered. No
// per-job series shows it, so nothing re-renders.
void Model::modal_task_info(ModalTaskInfo info) {
  if (!info.finished_at) return;
  const ModalWait wait = modal_wait();
  for (JobState* job : store_.with_app(info.app_id)) {
    if (!job->modal_finished_at || *info.finished_at > *job->modal_finished_at) {
      job->modal_finished_at = info.finished_at;
    }
    if (info.started_at && (!job->modal_started_at || *info.started_at < *job->modal_started_at)) {
      job->modal_started_at = info.started_at;
    }
    ++job->modal_finish_count;
    const std::string& uid = job->object.uid;
    if (!awaiting_finish_.contains(uid)) continue;
    note_finish_wait(uid, history_.observe_duration(*job, history_.entry(uid), false, now(), wait));
  }
  if (note_history()) changed(Urgency::soon);
}

// Keeps awaiting_finish_, the ended jobs whose duration waits for Modal's finish time.
void Model::note_finish_wait(const std::string& uid, bool waiting) {
  if (waiting ? awaiting_finish_.insert(uid).second : awaiting_finish_.erase(uid) > 0) {
    ++ended_tasks_version_;
  }
}

std::vector<std::string> Model::ended_task_ids() const {
  std::vector<std::string> ids;
  for (const auto& uid : awaiting_finish_) {
    if (const CountedJob* counted = history_.find(uid)) {
      ids.insert(ids.end(), counted->task_ids.begin(), counted->task_ids.end());
    }
  }
  return ids;
}

void Model::modal_function_stats(ModalFunctionStats stats) {
  bool any = false;
  for (JobState* state : store_.with_function(stats.function_id)) {
    if (state->backlog == stats.backlog) continue;
    state->backlog = stats.backlog;
    dirty_jobs_.insert(state->object.uid);
    any = true;
  }
  if (any) changed(Urgency::soon);
}

// A job's cost reads the rows of its own app only: a report re-renders the jobs of the apps
// whose rows changed (every Modal job when it is the first of its resolution).
void Model::modal_billing(BillingReport report) {
  const Cost::BillingChange change = cost_.set_billing(std::move(report));
  if (!change.any) return;
  app_costs_dirty_ = true;
  if (change.first) {
    for (const auto& [uid, state] : store_.all()) {
      if (!state.object.modal_app_id.empty()) dirty_jobs_.insert(uid);
    }
  } else {
    for (const auto& app : change.apps) {
      for (JobState* state : store_.with_app(app)) dirty_jobs_.insert(state->object.uid);
    }
  }
  changed(Urgency::soon);
}

void Model::modal_rates(BillingRates rates) {
  if (!cost_.set_rates(rates)) return;
  for (const auto& [uid, state] : store_.all()) dirty_jobs_.insert(uid);
  changed(Urgency::soon);
}

// Environment series are fleet-wide like the app-level ones: with sharding, only shard 0 holds
// them. An environment keeps its cost while its id stays the same.
void Model::modal_environments(std::vector<ModalEnvironment> environments) {
  std::map<std::string, HeldEnvironment> next;
  if (exports_environments()) {
    for (auto& e : environments) {
      auto& held = next[e.name];
      auto it = environments_.find(e.name);
      if (it != environments_.end() && it->second.environment.environment_id == e.environment_id) {
        held.cost = it->second.cost;
      }
      held.environment = std::move(e);
    }
  }
  if (next == environments_) return;
  environments_ = std::move(next);
  environments_dirty_ = true;
  changed(Urgency::soon);
}

void Model::modal_environment_cost(const std::string& environment_id,
                                   std::optional<EnvironmentCost> cost) {
  for (auto& [name, held] : environments_) {
    if (held.environment.environment_id != environment_id) continue;
    if (held.cost == cost) return;
    held.cost = std::move(cost);
    environments_dirty_ = true;
    changed(Urgency::soon);
    return;
  }
}

std::vector<std::string> Model::active_job_app_ids() const {
  std::set<std::string> ids;
  for (const auto& [uid, s] : store_.all()) {
    if (!s.object.modal_app_id.empty() && is_active(s.phase)) ids.insert(s.object.modal_app_id);
  }
  return {ids.begin(), ids.end()};
}

std::vector<std::string> Model::known_job_app_ids() const {
  std::set<std::string> ids;
  for (const auto& [uid, s] : store_.all()) {
    if (!s.object.modal_app_id.empty()) ids.insert(s.object.modal_app_id);
  }
  return {ids.begin(), ids.end()};
}

std::vector<std::string> Model::job_function_ids() const {
  std::set<std::string> ids;
  for (const auto& [uid, s] : store_.all()) {
    if (!s.object.modal_function_id.empty()) ids.insert(s.object.modal_function_id);
  }
  return {ids.begin(), ids.end()};
}

std::optional<std::uint64_t> Model::cold_starts(const std::string& uid) const {
  const JobState* job = store_.find(uid);
  if (!job) return std::nullopt;
  const CountedJob* counted = history_.find(uid);
  const std::uint64_t seen = counted ? counted->task_ids.size() : 0;
  // Known from a TaskList, or from the state file: after a restart a finished job's tasks are
  // not listed again (only active jobs are polled), but its count is still true.
  if (!job->tasks_known && seen == 0) return std::nullopt;
  return seen;
}

// --- Telemetry / upstream ----------------------------------------------------------------------

std::vector<TelemetryTarget> Model::telemetry_targets() const {
  std::vector<TelemetryTarget> out;
  for (const auto& [uid, s] : store_.all()) {
    if (!s.object.telemetry_url.empty() && s.phase == JobPhase::running)
      out.push_back({uid, s.object.telemetry_url});
  }
  return out;
}

// A scrape of a job's endpoint re-renders the job's telemetry series only, and only when a value
// changed: at 10k jobs with an endpoint for one in ten, a whole-job re-render per scrape would
// re-compress nearly every chunk of the snapshot every 10 s.
void Model::job_telemetry(JobTelemetry t) {
  JobState* state = store_.find(t.uid);
  if (!state) return;
  if (state->gpu_utilization == t.gpu_utilization && state->ingress_mbps == t.ingress_mbps &&
      state->egress_mbps == t.egress_mbps) {
    return;
  }
  state->gpu_utilization = t.gpu_utilization;
  state->ingress_mbps = t.ingress_mbps;
  state->egress_mbps = t.egress_mbps;
  dirty_telemetry_.insert(t.uid);
  changed(Urgency::soon);
}

void Model::forget_job_telemetry(const std::string& uid) {
  job_telemetry({uid, std::nullopt, std::nullopt, std::nullopt});
}

// The operator's own counters are fleet-wide: with sharding, only shard 0 merges them.
void Model::upstream_samples(std::vector<UpstreamSample> samples) {
  upstream_ = std::move(samples);
  if (config_.shard.shard != 0) upstream_.clear();
  dirty_aggregates_ = true;
  changed(Urgency::soon);
}

namespace {

// Adds the upstream samples of `metric` to `out`, keyed by the values of two of their labels;
// a sample without both labels is skipped.
void add_upstream(const std::vector<UpstreamSample>& samples, std::string_view metric,
                  const char* first, const char* second,
                  std::map<std::pair<std::string, std::string>, double>& out) {
  for (const auto& s : samples) {
    if (s.metric != metric) continue;
    auto a = s.labels.find(first);
    auto b = s.labels.find(second);
    if (a == s.labels.end() || b == s.labels.end()) continue;
    out[{a->second, b->second}] += s.value;
  }
}

}  // namespace

std::map<std::pair<std::string, std::string>, double> Model::errors_total() const {
  auto out = errors_;
  for (const auto& [reason, count] : events_.counts()) out[{reason, "operator"}] += count;
  add_upstream(upstream_, "modal_operator_errors_total", "error_type", "component", out);
  return out;
}

std::map<std::pair<std::string, std::string>, double> Model::webhook_total() const {
  if (!config_.upstream.enabled) return history_.webhook();
  std::map<std::pair<std::string, std::string>, double> out;
  add_upstream(upstream_, "modal_webhook_requests_total", "method", "status", out);
  return out;
}

ModelSizes Model::sizes() const {
  ModelSizes s;
  s.jobs = store_.size();
  s.counted_jobs = history_.size();
  s.counted_task_ids = history_.task_id_count();
  s.warning_events = events_.tracked();
  s.parked_events = events_.parked();
  s.endpoints = endpoints_.size();
  s.apps = apps_.size();
  s.environments = environments_.size();
  s.billing_rows = cost_.billing_rows();
  s.left_out_jobs = foreign_.size() + over_limit_.size();
  return s;
}

// The hash's low bits, reversed: consecutive slots (one tick's) differ in their high bits, so
// they fall in few chunks of a family with fewer buckets than slots too (the low bits pick the
// bucket). Unreversed, a tick's ~5 slots would be ~5 different chunks of any family of 8 or more.
std::size_t Model::refresh_slot(std::size_t hash) {
  std::size_t slot = 0;
  for (std::size_t bit = 1; bit < kRefreshSlots; bit <<= 1) {
    slot = (slot << 1) | ((hash & bit) ? 1 : 0);
  }
  return slot;
}

void Model::tick() {
  const ModalWait wait = modal_wait();
  const double t = now();
  const double previous = std::exchange(last_tick_, t);
  // The time-driven part of a running job's cost is refreshed once a minute, each job at its own
  // moment of the minute: one of kRefreshSlots slots, taken from the low bits of the hash that
  // also picks the job's snapshot chunk (common/object_hash.h). A 5 s tick then re-renders ~1/12
  // of the running jobs, only their total (the family's continuation that moves with time), and
  // they sit in few of its chunks, so a tick re-compresses little and never holds up a change
  // published in the same moment. Nothing else re-renders because time passed.
  auto refresh_due = [&](const std::string& uid) {
    const auto slot = static_cast<double>(refresh_slot(object_hash(uid)));
    const double offset = slot * kCostRefreshSeconds / static_cast<double>(kRefreshSlots);
    return std::floor((t - offset) / kCostRefreshSeconds) !=
           std::floor((previous - offset) / kCostRefreshSeconds);
  };
  bool any = false;
  // Ended jobs whose wait for Modal's finish time ran out fall back to the other times.
  for (auto it = awaiting_finish_.begin(); it != awaiting_finish_.end();) {
    JobState* state = store_.find(*it);
    if (!state || !history_.observe_duration(*state, history_.entry(*it), false, t, wait)) {
      it = awaiting_finish_.erase(it);
      ++ended_tasks_version_;
    } else {
      ++it;
    }
  }
  store_.for_each([&](const std::string& uid, JobState& state) {
    if (!state.started()) return;
    if (!state.queue_observed) {
      CountedJob& counted = history_.entry(uid);
      history_.observe_queue(state, counted, false, t, wait);
      state.queue_observed = counted.queue_observed;
    }
    if (state.phase == JobPhase::running && refresh_due(uid)) {
      dirty_costs_.push_back(uid);
      any = true;
    }
  });
  if (note_history()) any = true;
  if (any) changed(Urgency::soon);
}

std::vector<std::string> Model::take_dirty_jobs(std::size_t max) {
  std::vector<std::string> taken;
  while (!dirty_jobs_.empty() && taken.size() < max) {
    taken.push_back(std::move(dirty_jobs_.extract(dirty_jobs_.begin()).value()));
  }
  return taken;
}
std::set<std::string> Model::take_dirty_endpoints() {
  return std::exchange(dirty_endpoints_, {});
}
bool Model::take_dirty_aggregates() {
  return std::exchange(dirty_aggregates_, false);
}

bool Model::save_state(const std::string& path) {
  if (!StateFile::save(path, history_, events_)) return false;
  state_dirty_ = false;
  return true;
}

bool Model::load_state(const std::string& path) {
  if (!StateFile::load(path, history_, events_)) return false;
  history_.take_changed();
  events_.take_changed();
  dirty_aggregates_ = true;
  return true;
}

}  // namespace mx
