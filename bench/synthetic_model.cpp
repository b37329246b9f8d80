#include "synthetic_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

namespace mx::bench {
namespace {

template <typename T>
struct Weighted {
  T value;
  int weight;
};

// The shape of a busy multi-team cluster: mostly finished jobs (kept until deleted), a fifth
// running, GPU types and replica counts skewed the way real fleets are.
constexpr const char* kNamespaces[] = {"ml-research",
                                       "ml-research-staging",
                                       "inference-prod",
                                       "inference-staging",
                                       "training",
                                       "training-large",
                                       "data-eng",
                                       "platform",
                                       "vision",
                                       "speech",
                                       "nlp",
                                       "recsys",
                                       "robotics",
                                       "search-ranking",
                                       "ads-models",
                                       "genai-playground"};
constexpr const char* kNamePrefixes[] = {
    "train-llama-3-8b", "finetune-mistral-7b", "eval-harness", "batch-embed",
    "sdxl-render",      "whisper-transcribe",  "rl-rollout",   "data-prep",
    "distill-student",  "reranker-train"};
constexpr Weighted<const char*> kGpus[] = {{"H100", 22}, {"A100-80GB", 14}, {"A100-40GB", 8},
                                           {"L40S", 10}, {"A10G", 16},      {"L4", 10},
                                           {"T4", 6},    {"H200", 4},       {"none", 10}};
constexpr Weighted<int> kGpuCounts[] = {{1, 50}, {2, 20}, {4, 15}, {8, 15}};
constexpr Weighted<int> kReplicas[] = {{1, 70}, {2, 15}, {4, 10}, {8, 5}};
constexpr Weighted<const char*> kPhases[] = {
    {"Running", 18}, {"Pending", 5}, {"Succeeded", 60}, {"Failed", 10}, {"Completed", 7}};
constexpr Weighted<double> kCpus[] = {{1.0, 40}, {2.0, 25}, {4.0, 20}, {8.0, 10}, {16.0, 5}};
constexpr Weighted<double> kMemory[] = {{0.5, 30}, {4.0, 30}, {16.0, 25}, {64.0, 15}};

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : engine_(seed) {}

  double uniform(double lo, double hi) { return std::uniform_real_distribution<>(lo, hi)(engine_); }
  int integer(int lo, int hi) { return std::uniform_int_distribution<>(lo, hi)(engine_); }
  bool chance(double p) { return uniform(0, 1) < p; }

  template <typename T, std::size_t N>
  T pick(const Weighted<T> (&choices)[N]) {
    int total = 0;
    for (const auto& c : choices) total += c.weight;
    int r = integer(0, total - 1);
    for (const auto& c : choices) {
      if (r < c.weight) return c.value;
      r -= c.weight;
    }
    return choices[N - 1].value;
  }
  template <typename T, std::size_t N>
  T pick(const T (&choices)[N]) {
    return choices[integer(0, static_cast<int>(N) - 1)];
  }

  // Modal object ids look like "ap-" + 22 base62 characters.
  std::string modal_id(const char* prefix) {
    static constexpr char kAlphabet[] =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    std::string out = prefix;
    for (int i = 0; i < 22; ++i) out += kAlphabet[integer(0, 61)];
    return out;
  }

  std::string uuid() {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < 36; ++i) {
      out += (i == 8 || i == 13 || i == 18 || i == 23) ? '-' : kHex[integer(0, 15)];
    }
    return out;
  }

 private:
  std::mt19937_64 engine_;
};

std::string padded(std::size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%06zu", i);
  return buf;
}

NanoUsd to_nano(double usd) {
  return static_cast<NanoUsd>(std::llround(usd * 1e9));
}

// Records how long each group of sink calls took.
class PhaseTimer {
 public:
  explicit PhaseTimer(SyntheticSummary& summary) : summary_(summary) {}
  void lap(const char* name) {
    const auto now = std::chrono::steady_clock::now();
    summary_.phase_seconds.emplace_back(name, std::chrono::duration<double>(now - last_).count());
    last_ = now;
  }

 private:
  SyntheticSummary& summary_;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

}  // namespace

Config synthetic_config() {
  Config config;
  config.kubernetes.enabled = true;
  config.modal.enabled = true;
  config.telemetry.enabled = true;
  config.upstream.enabled = false;
  config.limits.max_jobs = 1'000'000;  // the benchmark decides the size, not the limit
  return config;
}

SyntheticSummary populate(Model& model, const SyntheticOptions& options, double now) {
  Rng rng(options.seed);
  SyntheticSummary summary;
  PhaseTimer timer(summary);

  // First sync of every source, as in a started exporter.
  model.source_succeeded("kubernetes", 0.8);
  model.source_succeeded("modal", 0.3);
  model.source_succeeded("telemetry", 0.05);

  // --- Kubernetes: the jobs (ModalJobs and offloaded Pods).
  std::vector<JobObject> jobs;
  jobs.reserve(options.jobs);
  for (std::size_t i = 0; i < options.jobs; ++i) {
    JobObject j;
    j.uid = rng.uuid();
    j.kind = rng.chance(0.15) ? "Pod" : "ModalJob";
    j.namespace_name = rng.pick(kNamespaces);
    j.name = std::string(rng.pick(kNamePrefixes)) + "-" + padded(i);
    j.gpu_type = rng.pick(kGpus);
    j.gpu_count = j.gpu_type == "none" ? 0 : rng.pick(kGpuCounts);
    j.replicas = rng.pick(kReplicas);
    j.i6pn = j.replicas > 1 && rng.chance(0.4);
    j.cpu_cores = rng.pick(kCpus);
    j.memory_gib = rng.pick(kMemory);
    j.phase = rng.pick(kPhases);
    if (j.phase == "Pending") {
      j.created_at = now - rng.uniform(5, 600);
    } else if (j.phase == "Running") {
      j.created_at = now - rng.uniform(120, 12 * 3600);
      j.started_at = *j.created_at + rng.uniform(2, 120);
    } else {
      j.created_at = now - rng.uniform(3600, 3 * 86400);
      j.started_at = *j.created_at + rng.uniform(2, 300);
      j.finished_at = std::min(now - 1, *j.started_at + rng.uniform(10, 4 * 3600));
    }
    if (j.phase != "Pending" || rng.chance(0.5)) {
      j.modal_app_id = rng.modal_id("ap-");
      if (j.kind == "ModalJob") j.modal_function_id = rng.modal_id("fu-");
    }
    j.webhook_mutated = j.kind == "Pod";
    if (j.phase == "Running" && j.gpu_type != "none") {
      j.telemetry_url = "http://10." + std::to_string(rng.integer(0, 255)) + "." +
                        std::to_string(rng.integer(0, 255)) + "." +
                        std::to_string(rng.integer(1, 254)) + ":9400/metrics";
    }
    summary.uids.push_back(j.uid);
    if (j.phase == "Running") summary.running.push_back(j.uid);
    jobs.push_back(j);
    model.upsert_job(std::move(j));
  }

  // A few dozen endpoints, the operator Pod and some Warning Events / source errors.
  for (int i = 0; i < 40; ++i) {
    model.upsert_endpoint(EndpointObject{rng.uuid(), rng.pick(kNamespaces),
                                         "serve-model-" + std::to_string(i), rng.modal_id("ap-"),
                                         rng.integer(0, 8)});
  }
  model.set_operator_restarts(3);
  for (int i = 0; i < 25; ++i) {
    WarningEvent event;
    event.uid = rng.uuid();
    event.namespace_name = rng.pick(kNamespaces);
    event.reason = "BackOff";
    event.count = rng.integer(1, 20);
    model.observe_warning_event(std::move(event));
  }
  model.count_error("modal_api", "grpc_deadline_exceeded");
  model.count_error("kubernetes_api", "timeout");
  timer.lap("upsert_job");

  // --- Modal: apps of active jobs (AppList), tasks per app (TaskList), function backlogs.
  std::vector<ModalApp> apps;
  for (const auto& j : jobs) {
    if (j.modal_app_id.empty() || !is_active_phase(j.phase)) continue;
    ModalApp app;
    app.app_id = j.modal_app_id;
    app.name = j.name;
    app.state = 3;
    app.running_tasks = j.phase == "Running" ? j.replicas : 0;
    app.created_at = j.created_at;
    apps.push_back(std::move(app));
  }
  summary.apps = apps.size();
  model.modal_apps(std::move(apps));
  timer.lap("modal_apps");

  // TaskList is polled for active apps only; a job that ended while the exporter was up (here:
  // in the last day) keeps the cold starts it collected while it ran.
  for (const auto& j : jobs) {
    if (j.modal_app_id.empty()) continue;
    if (!is_active_phase(j.phase) && j.finished_at && *j.finished_at < now - 86400) continue;
    std::vector<ModalTask> tasks;
    // One container per replica, plus the occasional restart (each one a cold start).
    const int containers = j.replicas + (rng.chance(0.2) ? rng.integer(1, 3) : 0);
    for (int t = 0; t < containers; ++t) {
      ModalTask task;
      task.task_id = rng.modal_id("ta-");
      task.app_id = j.modal_app_id;
      task.enqueued_at = j.created_at.value_or(now) + rng.uniform(0, 5);
      if (j.started_at) task.started_at = *task.enqueued_at + rng.uniform(1, 90);
      tasks.push_back(std::move(task));
    }
    summary.tasks += tasks.size();
    model.modal_tasks(j.modal_app_id, std::move(tasks));
  }
  timer.lap("modal_tasks");

  // FunctionGetCurrentStats is polled for every known job's function, as ModalSource does.
  for (const auto& j : jobs) {
    if (j.modal_function_id.empty()) continue;
    ModalFunctionStats stats;
    stats.function_id = j.modal_function_id;
    stats.backlog = static_cast<std::uint32_t>(rng.integer(0, 50));
    stats.num_total_tasks = static_cast<std::uint32_t>(j.replicas);
    model.modal_function_stats(stats);
  }
  timer.lap("modal_function_stats");

  // --- Telemetry: GPU utilization and bandwidth of running GPU jobs.
  for (const auto& j : jobs) {
    if (j.telemetry_url.empty()) continue;
    JobTelemetry t;
    t.uid = j.uid;
    t.gpu_utilization = rng.uniform(0.05, 1.0);
    t.ingress_mbps = rng.uniform(0, 2000);
    t.egress_mbps = rng.uniform(0, 800);
    model.job_telemetry(std::move(t));
  }
  timer.lap("job_telemetry");

  // --- Modal billing: daily items for the last days, hourly items for the last 24 hours.
  if (options.billing) {
    const double day_start = std::floor(now / 86400.0) * 86400.0;
    BillingReport daily{"d", day_start - 3 * 86400.0, day_start + 86400.0, {}};
    BillingReport hourly{"h",
                         std::floor(now / 3600.0) * 3600.0 - 24 * 3600.0,
                         std::floor(now / 3600.0) * 3600.0 + 3600.0,
                         {}};
    for (const auto& j : jobs) {
      if (j.modal_app_id.empty() || !j.started_at) continue;
      const double rate = model.hourly_cost(j);
      const double end = j.finished_at.value_or(now);
      for (double d = std::floor(*j.started_at / 86400.0) * 86400.0; d < end; d += 86400.0) {
        if (d < daily.start) continue;
        const double secs = std::min(end, d + 86400.0) - std::max(*j.started_at, d);
        daily.items.push_back({j.modal_app_id, d, to_nano(rate * secs / 3600.0), {}});
      }
      // Modal reports an hour once it has ended: the current hour is the unreported tail.
      for (double h = std::floor(*j.started_at / 3600.0) * 3600.0; h + 3600.0 <= std::min(end, now);
           h += 3600.0) {
        if (h < hourly.start) continue;
        const double secs = std::min(end, h + 3600.0) - std::max(*j.started_at, h);
        hourly.items.push_back({j.modal_app_id, h, to_nano(rate * secs / 3600.0), {}});
      }
    }
    summary.billing_items = daily.items.size() + hourly.items.size();
    model.modal_billing(std::move(daily));
    model.modal_billing(std::move(hourly));
    timer.lap("modal_billing");
  }
  return summary;
}

}  // namespace mx::bench
