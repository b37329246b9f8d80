// Plain structs the sources hand to the model. Sources parse what they fetch into these;
// they never render metrics. Every optional field is optional because real objects omit it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/container/flat_map.hpp>

namespace mx {

// --- Kubernetes ---------------------------------------------------------------------------

// A job's phase, parsed once from status.phase (see parse_phase). `none`: no phase yet;
// `other`: a phase this exporter does not know (its text is still shown in
// modal_job_status_phase).
enum class JobPhase { none, pending, running, succeeded, completed, failed, other };

inline JobPhase parse_phase(std::string_view phase) {
  if (phase.empty()) return JobPhase::none;
  if (phase == "Pending") return JobPhase::pending;
  if (phase == "Running") return JobPhase::running;
  if (phase == "Succeeded") return JobPhase::succeeded;
  if (phase == "Completed") return JobPhase::completed;
  if (phase == "Failed") return JobPhase::failed;
  return JobPhase::other;
}
// Succeeded, Completed or Failed: the job ended.
inline bool is_terminal(JobPhase p) {
  return p == JobPhase::succeeded || p == JobPhase::completed || p == JobPhase::failed;
}
// Pending, Running or no phase yet: counted in modal_jobs_active.
inline bool is_active(JobPhase p) {
  return p == JobPhase::none || p == JobPhase::pending || p == JobPhase::running;
}

// A "job": a ModalJob, or a Pod the operator offloads to Modal (see docs/metrics.md).
struct JobObject {
  std::string uid;
  std::string kind;  // "ModalJob" or "Pod"
  std::string namespace_name;
  std::string name;
  std::string gpu_type = "none";  // part of the GPU spec before ':'; "none" without a GPU
  int gpu_count = 0;              // after ':'; 1 when a GPU is named without a count
  int replicas = 1;
  bool i6pn = false;
  double cpu_cores = 1.0;             // spec.cpu / modal-operator.io/cpu, default "1.0"
  double memory_gib = 0.5;            // spec.memory / modal-operator.io/memory, default "512Mi"
  std::string phase;                  // status.phase as sent; "" when it has none yet
  std::optional<double> created_at;   // unix seconds (status.created_at, else metadata)
  std::optional<double> started_at;   // unix seconds
  std::optional<double> finished_at;  // unix seconds
  std::string modal_app_id;
  std::string modal_function_id;
  bool webhook_mutated = false;  // Pod annotation modal-operator.io/mutated == "true"
  std::string telemetry_url;     // annotation modal-operator.io/telemetry-url

  bool operator==(const JobObject&) const = default;
};

struct EndpointObject {
  std::string uid;
  std::string namespace_name;
  std::string name;
  std::string modal_app_id;
  std::optional<std::int64_t> ready_replicas;

  bool operator==(const EndpointObject&) const = default;
};

// A Warning Event about one of the operator's objects. `count` is the Event's own running
// count (count or series.count); the model counts its growth per Event UID.
// Events about Pods count only for Pods the operator manages: offloaded Pods (jobs the model
// knows) and the operator's own Pod.
struct WarningEvent {
  std::string uid;
  std::string namespace_name;
  std::string reason;
  std::int64_t count = 1;
  std::string involved_uid;   // involvedObject.uid: decides the shard that counts the Event
  bool about_pod = false;     // involvedObject is a Pod
  std::string pod_name;       // its name (in namespace_name)
  bool operator_pod = false;  // the Pod is the operator's own (POD_NAMESPACE/POD_NAME)

  bool operator==(const WarningEvent&) const = default;
};

// --- Modal -------------------------------------------------------------------------------

// Exact decimal money: integer nano-dollars, so "0.000001" and "12345.678901" add up exactly.
using NanoUsd = std::int64_t;

struct ModalApp {
  std::string app_id;
  std::string name;
  std::string description;
  int state = 0;  // AppState enum value
  int running_tasks = 0;
  std::optional<double> created_at;
  std::optional<double> stopped_at;
};

struct ModalTask {
  std::string task_id;
  std::string app_id;
  std::optional<double> enqueued_at;
  std::optional<double> started_at;
};

struct ModalTaskInfo {
  std::string task_id;
  std::string app_id;
  std::optional<double> enqueued_at;
  std::optional<double> started_at;
  std::optional<double> finished_at;
  std::string gpu_type;
  unsigned gpu_count = 0;
  int result_status = 0;  // GenericResult.GenericStatus value; 0 = still running / unknown
};

struct ModalFunctionStats {
  std::string function_id;
  std::uint32_t backlog = 0;
  std::uint32_t num_total_tasks = 0;
  std::uint32_t num_running_inputs = 0;
};

struct BillingItem {
  std::string app_id;         // object_id
  double interval_start = 0;  // unix seconds
  NanoUsd cost = 0;           // negative for a credit
  // The item's cost split by resource (GPU types, CPU, memory: Modal's names, as sent). A flat
  // map: a few entries per item, tens of thousands of items at 10k jobs.
  boost::container::flat_map<std::string, NanoUsd> cost_by_resource;

  bool operator==(const BillingItem&) const = default;
};

// One complete WorkspaceBillingReport stream; a stream that breaks midway is never published.
struct BillingReport {
  std::string resolution;  // "h" or "d"
  double start = 0;
  double end = 0;
  std::vector<BillingItem> items;
};

// WorkspaceBillingRates mapped to USD per hour: keys lower-cased as Modal sends them.
struct BillingRates {
  std::map<std::string, NanoUsd> per_hour;
};

// One EnvironmentList item: a Modal environment's capacity and spend limits. An unset optional
// field means no limit (or no budget): its series is absent, never 0.
struct ModalEnvironment {
  std::string name;
  std::string environment_id;
  bool is_default = false;
  bool managed = false;
  std::optional<std::int64_t> max_concurrent_tasks;
  std::optional<std::int64_t> max_concurrent_gpus;
  std::int64_t concurrent_tasks = 0;
  std::int64_t concurrent_gpus = 0;
  std::optional<double> cycle_budget_usd;
  // Always sent; nullopt only when the value is not a finite number.
  std::optional<double> cycle_spend_limit_usd;
  std::optional<double> cycle_spend_usd;
  bool spend_limit_reached = false;

  bool operator==(const ModalEnvironment&) const = default;
};

// EnvironmentBillingSummary of one environment: month-to-date metered cost, in total
// (metered_cost; nullopt when not sent) and by category (metered_cost_breakdown, keys as sent).
struct EnvironmentCost {
  std::optional<NanoUsd> total;
  std::map<std::string, NanoUsd> by_category;

  bool operator==(const EnvironmentCost&) const = default;
};

}  // namespace mx
