// What each source may tell the model, and how it reports its health. The model implements the
// sinks; the application implements SourceHealth (self metrics, readiness and the model's view of
// the Kubernetes sync); tests use recording fakes. All calls happen on the io_context thread
// that owns the model (gRPC results are posted there).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/objects.h"

namespace mx {

// A source's health: kept apart from its data so that it reaches the self metrics without
// passing through the model.
class SourceHealth {
 public:
  virtual ~SourceHealth() = default;
  // source: kubernetes, modal, telemetry, upstream. A success marks the source up and ready.
  virtual void source_succeeded(std::string_view source, double poll_seconds) = 0;
  virtual void source_failed(std::string_view source) = 0;
};

// Error accounting common to every source.
class SourceSink {
 public:
  virtual ~SourceSink() = default;
  // component: kubernetes_api, modal_api, telemetry, upstream. error_type: timeout, connection,
  // http_4xx, http_5xx, grpc_<code>, parse, auth (docs/metrics.md).
  virtual void count_error(std::string_view component, std::string_view error_type) = 0;
};

class KubernetesSink : public virtual SourceSink {
 public:
  virtual void upsert_job(JobObject job) = 0;
  virtual void delete_job(const std::string& uid) = 0;
  virtual void upsert_endpoint(EndpointObject endpoint) = 0;
  virtual void delete_endpoint(const std::string& uid) = 0;
  // restartCount of the operator container, or nullopt when the Pod/container is not found.
  virtual void set_operator_restarts(std::optional<std::int64_t> restart_count) = 0;
  virtual void observe_warning_event(WarningEvent event) = 0;
  virtual void delete_warning_event(const std::string& uid) = 0;
};

class ModalSink : public virtual SourceSink {
 public:
  virtual void modal_apps(std::vector<ModalApp> apps) = 0;
  virtual void modal_tasks(const std::string& app_id, std::vector<ModalTask> tasks) = 0;
  virtual void modal_task_info(ModalTaskInfo info) = 0;
  virtual void modal_function_stats(ModalFunctionStats stats) = 0;
  virtual void modal_billing(BillingReport report) = 0;
  virtual void modal_rates(BillingRates rates) = 0;
  // EnvironmentList: the whole list of each round; an environment left out is gone.
  virtual void modal_environments(std::vector<ModalEnvironment> environments) = 0;
  // EnvironmentBillingSummary of one environment (by id); nullopt when the call is refused.
  virtual void modal_environment_cost(const std::string& environment_id,
                                      std::optional<EnvironmentCost> cost) = 0;
  // Environment series are fleet-wide: with sharding, one exporter shows them and only it needs
  // the calls that feed them.
  virtual bool exports_environments() const { return true; }

  // What the pollers should ask about, from the jobs the model knows.
  virtual std::vector<std::string> active_job_app_ids() const = 0;  // TaskList targets
  virtual std::vector<std::string> known_job_app_ids() const = 0;   // billing filter
  virtual std::vector<std::string> job_function_ids() const = 0;    // FunctionGetCurrentStats
  // Changes whenever one of the three lists above may have changed, so that a poller can keep
  // its copies until then; nullopt: unknown, ask every time.
  virtual std::optional<std::uint64_t> job_ids_version() const { return std::nullopt; }
  // The Modal tasks of ended jobs whose duration waits for Modal's finish time (TaskGetInfo
  // targets: a listed task is still running and has none), and a version that moves when the
  // list may have changed.
  virtual std::vector<std::string> ended_task_ids() const { return {}; }
  virtual std::uint64_t ended_tasks_version() const { return 0; }
  // True while the lists above are partial (the Kubernetes source's first LIST is still coming
  // in): a round started now would ask about some of the apps, and a tasks_interval later about
  // the rest, re-rendering those jobs a second time.
  virtual bool job_ids_settling() const { return false; }
  // Once, when a tasks round and a billing round that asked with complete lists have ended
  // (answered or failed): what Modal says of every job is in. The first snapshot waits for it.
  virtual void modal_first_rounds_ended() {}
};

}  // namespace mx

namespace mx {

// Values derived from one scrape of a job's telemetry endpoint. A field without data is nullopt
// (its series is then absent); bandwidth needs two scrapes.
struct JobTelemetry {
  std::string uid;
  std::optional<double> gpu_utilization;  // ratio 0..1, mean over the job's GPUs
  std::optional<double> ingress_mbps;
  std::optional<double> egress_mbps;
};

struct TelemetryTarget {
  std::string uid;
  std::string url;
};

class TelemetrySink : public virtual SourceSink {
 public:
  // Running jobs that carry modal-operator.io/telemetry-url.
  virtual std::vector<TelemetryTarget> telemetry_targets() const = 0;
  // True while the targets above are partial (the Kubernetes source's first LIST is still
  // coming in): the first round waits for the rest instead of leaving them an interval later.
  virtual bool telemetry_targets_settling() const { return false; }
  virtual void job_telemetry(JobTelemetry telemetry) = 0;
  // The job stopped being a target (ended, deleted, URL removed): its series go away.
  virtual void forget_job_telemetry(const std::string& uid) = 0;
};

// One sample of the operator's own counters (modal_webhook_requests_total,
// modal_operator_errors_total) with its labels, from the upstream /metrics.
struct UpstreamSample {
  std::string metric;
  std::map<std::string, std::string> labels;
  double value = 0;
};

class UpstreamSink : public virtual SourceSink {
 public:
  // The full set from one successful scrape replaces the previous one.
  virtual void upstream_samples(std::vector<UpstreamSample> samples) = 0;
};

}  // namespace mx
