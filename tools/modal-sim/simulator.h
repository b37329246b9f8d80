// The simulated world behind the demo and the end-to-end test: ModalJobs and offloaded Pods that
// arrive, queue, run, succeed, fail or are cancelled; the operator Pod that restarts now and then;
// Warning Events; Modal apps, tasks (cold starts), function stats, billing and rates; two Modal
// environments with their limits and spend (one near its GPU limit, one heading past its spend
// limit); and a telemetry endpoint per running job. It serves them through the fake Kubernetes API
// server and the fake Modal gRPC server, and keeps the ground truth the exporter must reproduce.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "fake_kube_api.h"
#include "fake_modal_server.h"

namespace mx::sim {

struct SimOptions {
  int target_jobs = 40;  // concurrent active jobs the world tries to keep
  std::uint64_t seed = 1;
  double min_queue_s = 2, max_queue_s = 6;     // Pending time
  double min_run_s = 6, max_run_s = 30;        // Running time
  double min_linger_s = 5, max_linger_s = 20;  // terminal jobs stay this long before deletion
  double restart_every_s = 90;                 // mean time between operator restarts
};

struct SimTask {
  std::string id;
  double enqueued_at = 0;
  double started_at = 0;
  double finished_at = 0;  // 0 while running
};

struct SimJob {
  std::string uid, kind, namespace_name, name;
  std::string gpu_type;  // "none" without a GPU
  int gpu_count = 0;
  int replicas = 1;
  bool i6pn = false;
  double cpu = 1, memory_gib = 0.5;
  std::string phase = "Pending";
  double created_at = 0, run_at = 0, started_at = 0, finished_at = 0, delete_at = 0;
  bool fails = false, cancels = false;
  std::string app_id, function_id;
  std::vector<SimTask> tasks;
  std::vector<double> gpu_util;   // per GPU, ratio
  double rx_bps = 0, tx_bps = 0;  // bytes per second while running
  std::uint32_t backlog = 0;
  std::int64_t billed_nano = 0;  // scripted into the daily billing report
  // The same cost split by resource (the GPU type, "CPU", "Memory"): cost_by_resource.
  std::map<std::string, std::int64_t> billed_by_resource;
  bool active() const { return phase == "Pending" || phase == "Running"; }
};

class Simulator {
 public:
  explicit Simulator(SimOptions options);

  // Starts both fake servers; the telemetry base URL is where the simulator serves
  // /telemetry/<uid> (its own HTTP server, owned by main).
  void start(const std::string& telemetry_base_url);
  // Advances the world to `now` (unix seconds). Nothing changes while paused, except that
  // telemetry byte counters keep counting at their rates (real traffic does not pause).
  void step(double now);

  void set_paused(bool paused) { paused_ = paused; }
  void set_kubernetes_down(bool down);
  void set_modal_down(bool down);
  // A Warning Event about every live job (or a repeat of it: its count grows), also while
  // paused: a test that needs Events about many objects gets them without waiting for failures.
  void warn_every_job();
  // The operator container restarts now (its restartCount grows), also while paused.
  void restart_operator();

  // Prometheus text for one job's telemetry endpoint at time `now`; empty when unknown.
  std::string telemetry(const std::string& uid, double now) const;
  // The values the exporter must show for the current world (see truth() in simulator.cpp).
  nlohmann::json truth(double now) const;

  testing::FakeKubeApi& kube() { return kube_; }
  testing::FakeModalServer& modal() { return modal_; }
  // Environment for the exporter: MODAL_SERVER_URL, tokens, POD_NAME, POD_NAMESPACE.
  std::map<std::string, std::string> exporter_env() const;

  static constexpr const char* kOperatorNamespace = "modal-system";
  static constexpr const char* kOperatorPod = "modal-operator-0";

 private:
  void create_job(double now);
  void publish_job(const SimJob& job);
  void publish_modal(double now);
  // EnvironmentList and each environment's EnvironmentBillingSummary, from the world as it is.
  void publish_environments();
  void publish_operator_pod();
  void warning_event(const SimJob& job, const std::string& reason);
  double uniform(double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng_);
  }
  bool chance(double p) { return uniform(0, 1) < p; }
  double hourly_cost(const SimJob& job) const;
  // hourly_cost split by resource, USD per hour.
  std::map<std::string, double> hourly_cost_by_resource(const SimJob& job) const;

  SimOptions options_;
  std::mt19937_64 rng_;
  testing::FakeKubeApi kube_;
  testing::FakeModalServer modal_;
  std::string telemetry_base_;
  std::map<std::string, SimJob> jobs_;  // by uid, until deleted
  std::uint64_t next_id_ = 1;
  double last_step_ = 0;
  double next_restart_ = 0;
  std::int64_t operator_restarts_ = 0;
  std::map<std::string, std::int64_t> event_counts_;  // event name -> count
  std::map<std::string, double> errors_by_reason_;
  std::map<std::string, std::uint64_t> jobs_total_;  // "status|gpu|replicas"
  std::map<std::string, std::uint64_t> i6pn_total_;  // replicas -> jobs asking for i6pn
  std::uint64_t webhook_mutated_ = 0;                // offloaded Pods the webhook mutated
  // Histogram observations the exporter must have made: count and sum, by "status/gpu" for
  // durations and by gpu type for queueing.
  std::map<std::string, std::pair<std::uint64_t, double>> durations_, queues_;
  bool paused_ = false;
  bool kubernetes_down_ = false;
  bool modal_down_ = false;
  std::map<std::string, std::string> rates_;  // Modal's rates, USD per hour (decimal strings)
  double lived_s_ = 0;                        // seconds the world ran (not paused)
  std::int64_t spent_nano_ = 0;               // everything billed so far, deleted jobs included
  // What the simulator last served as each environment's GPUs in use and spend-limit flag.
  std::map<std::string, std::int64_t> environment_gpus_;
  std::map<std::string, int> environment_limit_reached_;
};

}  // namespace mx::sim
