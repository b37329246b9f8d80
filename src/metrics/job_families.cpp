#include "metrics/job_families.h"

#include <algorithm>

#include "metrics/app_cost.h"

namespace mx {
namespace {

constexpr const char* kPhases[] = {"Pending", "Running", "Succeeded", "Completed", "Failed"};

void replicas(const JobView& v, JobSamples& out) {
  if (is_active(v.state.phase)) out.add(v.job().replicas);
}

void info(const JobView& v, JobSamples& out) {
  const JobObject& job = v.job();
  const std::string replicas = std::to_string(job.replicas);
  out.add({{"uid", job.uid},
           {"kind", job.kind},
           {"gpu_type", job.gpu_type},
           {"replicas", replicas},
           {"app_id", job.modal_app_id}},
          1);
}

// kube-state-metrics style: every known phase with 0/1, plus an unknown phase as sent.
void status_phase(const JobView& v, JobSamples& out) {
  const std::string& raw = v.job().phase;
  const std::string_view phase = raw.empty() ? std::string_view("Pending") : raw;
  for (const char* p : kPhases) out.add({{"phase", p}}, phase == p ? 1 : 0);
  if (v.state.phase == JobPhase::other) out.add({{"phase", phase}}, 1);
}

// When the running job started: Modal's task start when known, else the status (or the moment
// the exporter saw it start). Constant while the job runs, so time passing re-renders nothing;
// the age is `time() - modal_job_start_time_seconds` (kube-state-metrics' convention).
void start_time(const JobView& v, JobSamples& out) {
  if (v.state.phase != JobPhase::running) return;
  const auto start = v.state.modal_started_at ? v.state.modal_started_at : v.start;
  if (start) out.add({{"gpu_type", v.job().gpu_type}}, *start);
}

void cold_starts(const JobView& v, JobSamples& out) {
  if (auto n = v.model.cold_starts(v.job().uid)) {
    out.add({{"gpu_type", v.job().gpu_type}}, static_cast<double>(*n));
  }
}

void gpu_utilization(const JobView& v, JobSamples& out) {
  if (v.state.gpu_utilization) out.add({{"gpu_type", v.job().gpu_type}}, *v.state.gpu_utilization);
}

void network_bandwidth(const JobView& v, JobSamples& out) {
  if (v.state.ingress_mbps) out.add({{"direction", "ingress"}}, *v.state.ingress_mbps);
  if (v.state.egress_mbps) out.add({{"direction", "egress"}}, *v.state.egress_mbps);
}

// The hourly burn rate of running jobs, and what Modal billed the app today.
void cost_rate_and_today(const JobView& v, JobSamples& out) {
  const JobObject& job = v.job();
  const bool running = v.state.phase == JobPhase::running;
  const Cost& cost = v.model.cost();
  if (running) out.add({{"gpu_type", job.gpu_type}, {"time_period", "hourly"}}, cost.hourly(job));
  if (auto today = job_cost_today(v.model, job, cost.hourly(job), v.start, running)) {
    out.add({{"gpu_type", job.gpu_type}, {"time_period", "daily"}}, *today);
  }
}

// The total since the job started: billed intervals plus the estimate for the unreported tail.
// It moves with time while the job runs, the other two do not.
void cost_total(const JobView& v, JobSamples& out) {
  if (!v.start) return;
  const JobObject& job = v.job();
  const bool running = v.state.phase == JobPhase::running;
  const double end = job.finished_at ? *job.finished_at : (running ? v.model.now() : *v.start);
  out.add({{"gpu_type", job.gpu_type}, {"time_period", "total"}},
          v.model.cost().total(job, *v.start, end));
}

void backlog(const JobView& v, JobSamples& out) {
  if (v.state.backlog && is_active(v.state.phase)) out.add(*v.state.backlog);
}

}  // namespace

void JobSamples::add(std::initializer_list<Label> extra, double value) {
  std::vector<Label> labels;
  labels.reserve(2 + extra.size());
  labels.push_back({"namespace", job_.namespace_name});
  labels.push_back({"job_name", job_.name});
  labels.insert(labels.end(), extra.begin(), extra.end());
  append_sample(out_, family_, labels, value);
}

const std::vector<JobFamily>& job_families() {
  using T = MetricType;
  static const char* const kCostHelp =
      "Cost of the job in USD: hourly burn rate, billed today, total since start.";
  static const std::vector<JobFamily> families = {
      {{"modal_job_replicas", "Desired replicas of each active job.", T::gauge}, replicas},
      {{"modal_function_cold_starts_total",
        "New Modal task (container) ids seen for the job's app.", T::counter},
       cold_starts},
      {{"modal_gpu_utilization",
        "GPU utilization ratio (0-1), mean over the job's GPUs, from the job's telemetry "
        "endpoint.",
        T::gauge},
       gpu_utilization,
       RenderCause::telemetry_scraped},
      {{"modal_network_bandwidth_mbps",
        "Network bandwidth of the job in megabits per second, from its telemetry byte counters.",
        T::gauge},
       network_bandwidth,
       RenderCause::telemetry_scraped},
      {{"modal_cost_estimate_usd", kCostHelp, T::gauge}, cost_rate_and_today},
      // The time-driven part, refreshed once a minute for every running job: a continuation with
      // chunks of its own, so that a refresh re-compresses the totals' chunks only.
      {{"modal_cost_estimate_usd", kCostHelp, T::gauge, /*continues=*/true},
       cost_total,
       RenderCause::time_passed},
      {{"modal_job_info", "Information about each known job (always 1).", T::gauge}, info},
      {{"modal_job_status_phase", "The job's current phase (1 for the current one).", T::gauge},
       status_phase},
      {{"modal_job_start_time_seconds",
        "Unix time at which each running job started (Modal's task start when known).", T::gauge},
       start_time},
      {{"modal_function_backlog", "Inputs waiting for the job's Modal function.", T::gauge},
       backlog},
  };
  return families;
}

}  // namespace mx
