#include "model/count_history.h"

#include <algorithm>

namespace mx {

void HistogramData::observe(const std::vector<double>& bounds, double value) {
  if (counts.size() != bounds.size() + 1) counts.assign(bounds.size() + 1, 0);
  std::size_t i = 0;
  while (i < bounds.size() && value > bounds[i]) ++i;
  ++counts[i];
  sum += value;
}

std::optional<double> effective_start(const JobObject& job, const CountedJob* counted) {
  if (job.started_at) return job.started_at;
  return counted ? counted->seen_running_at : std::nullopt;
}

const std::vector<double>& CountHistory::duration_buckets() {
  static const std::vector<double> b = {1, 5, 10, 30, 60, 300, 600, 1800, 3600};
  return b;
}

const std::vector<double>& CountHistory::queue_buckets() {
  static const std::vector<double> b = {1, 5, 10, 30, 60, 120, 300};
  return b;
}

const CountedJob* CountHistory::find(const std::string& uid) const {
  auto it = jobs_.find(uid);
  return it == jobs_.end() ? nullptr : &it->second;
}

void CountHistory::forget(const std::string& uid) {
  if (jobs_.erase(uid)) changed_ = true;
}

std::size_t CountHistory::forget_unless(const std::function<bool(const std::string&)>& keep) {
  const std::size_t gone =
      std::erase_if(jobs_, [&](const auto& entry) { return !keep(entry.first); });
  if (gone) changed_ = true;
  return gone;
}

std::size_t CountHistory::task_id_count() const {
  std::size_t n = 0;
  for (const auto& [uid, c] : jobs_) n += c.task_ids.size();
  return n;
}

void CountHistory::count_status(const JobObject& job, CountedJob& counted, JobStatusBit bit,
                                const char* status) {
  if (counted.statuses & bit) return;
  counted.statuses |= bit;
  changed_ = true;
  ++jobs_total_[{status, job.gpu_type, job.replicas}];
  // Once a GPU type and replica count is known, its other statuses start at a true 0, so that
  // rate()/increase() see the first completion or failure (a series that appears at 1 shows no
  // increase).
  for (const char* other : {"created", "completed", "failed", "cancelled"}) {
    jobs_total_.try_emplace({other, job.gpu_type, job.replicas}, 0);
  }
}

bool CountHistory::observe(JobState& state, CountedJob& counted, double now,
                           const ModalWait& wait) {
  const JobObject& job = state.object;
  count_status(job, counted, kCreated, "created");
  if (job.i6pn && !counted.i6pn_counted) {
    counted.i6pn_counted = true;
    changed_ = true;
    ++i6pn_total_[job.replicas];
  }
  if (job.kind == "Pod" && job.webhook_mutated && !counted.webhook_counted) {
    counted.webhook_counted = true;
    changed_ = true;
    webhook_[{"CREATE", "mutated"}] += 1;
  }
  const bool terminal = is_terminal(state.phase);
  if (terminal && !state.ended_seen_at) state.ended_seen_at = now;
  if ((state.started() || terminal) && !counted.seen_running_at && !job.started_at) {
    counted.seen_running_at = now;
    changed_ = true;
  }
  if (state.started()) observe_queue(state, counted, terminal, now, wait);
  if (!terminal) return false;
  const bool failed = state.phase == JobPhase::failed;
  count_status(job, counted, failed ? kFailed : kCompleted, failed ? "failed" : "completed");
  return observe_duration(state, counted, false, now, wait);
}

// finished - started from status; else Modal's task times; else the transitions we saw. Modal's
// finish time comes from TaskGetInfo of the job's tasks, which the Modal source asks once the
// job has ended (ModalSink::ended_task_ids): while it may still come, wait (up to a grace
// period). The fallback ends the job when the exporter saw it end, not when the wait ran out.
bool CountHistory::observe_duration(JobState& state, CountedJob& counted, bool final, double now,
                                    const ModalWait& wait) {
  if (counted.duration_observed || !is_terminal(state.phase)) return false;
  const JobObject& job = state.object;
  const double ended = state.ended_seen_at.value_or(now);
  std::optional<double> duration;
  if (job.started_at && job.finished_at) {
    duration = *job.finished_at - *job.started_at;
  } else if (state.modal_started_at && state.modal_finished_at &&
             (final || state.modal_finish_count >= counted.task_ids.size())) {
    duration = *state.modal_finished_at - *state.modal_started_at;
  } else {
    const bool may_still_come = wait.modal_enabled && !job.modal_app_id.empty() &&
                                !counted.task_ids.empty() && now - ended < wait.grace_seconds;
    if (may_still_come && !final) return true;
    if (state.modal_started_at && state.modal_finished_at) {
      duration = *state.modal_finished_at - *state.modal_started_at;
    } else if (const auto start = effective_start(job, &counted)) {
      duration = (job.finished_at ? *job.finished_at : ended) - *start;
    }
  }
  if (duration) {
    counted.duration_observed = true;
    changed_ = true;
    const bool failed = state.phase == JobPhase::failed;
    duration_[{failed ? "failed" : "completed", job.gpu_type}].observe(duration_buckets(),
                                                                       std::max(0.0, *duration));
  }
  return false;
}

// Queue time is observed once, when the job starts. The real queueing is Modal's
// started - enqueued; while the Modal source may still deliver it, wait (up to a grace
// period), then fall back to the status timestamps.
void CountHistory::observe_queue(JobState& state, CountedJob& counted, bool final, double now,
                                 const ModalWait& wait) {
  if (counted.queue_observed) return;
  const JobObject& job = state.object;
  std::optional<double> value;
  if (state.modal_enqueued_at && state.modal_started_at) {
    value = *state.modal_started_at - *state.modal_enqueued_at;
  } else {
    const double since = counted.seen_running_at.value_or(job.started_at.value_or(now));
    const bool may_still_come = wait.modal_enabled && !job.modal_app_id.empty() &&
                                !state.tasks_known && now - since < wait.grace_seconds;
    if (may_still_come && !final) return;
    const auto start = effective_start(job, &counted);
    if (start && job.created_at) value = *start - *job.created_at;
  }
  if (!value) return;
  counted.queue_observed = true;
  changed_ = true;
  queue_[job.gpu_type].observe(queue_buckets(), std::max(0.0, *value));
}

void CountHistory::observe_deleted(const JobState& state, CountedJob& counted) {
  if (!is_terminal(state.phase) && !(counted.statuses & (kCompleted | kFailed))) {
    count_status(state.object, counted, kCancelled, "cancelled");
  }
}

}  // namespace mx
