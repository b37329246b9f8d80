// Recording fakes of the source sinks and of SourceHealth (model/sinks.h; the model and the
// application implement them for real): the Kubernetes sink, and the telemetry and upstream
// sinks. Each also records the health its source reports.
#pragma once

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "model/sinks.h"

namespace mx::testing {

// Records every call of the telemetry and upstream sources.
class RecordingSink : public TelemetrySink, public UpstreamSink, public SourceHealth {
 public:
  // --- SourceSink, SourceHealth
  void count_error(std::string_view component, std::string_view error_type) override {
    ++errors[{std::string(component), std::string(error_type)}];
  }
  void source_succeeded(std::string_view source, double poll_seconds) override {
    ++succeeded[std::string(source)];
    last_poll_seconds = poll_seconds;
  }
  void source_failed(std::string_view source) override { ++failed[std::string(source)]; }

  // --- TelemetrySink
  std::vector<TelemetryTarget> telemetry_targets() const override { return targets; }
  bool telemetry_targets_settling() const override {
    ++settling_checks;
    return targets_settling;
  }
  void job_telemetry(JobTelemetry telemetry) override {
    telemetry_by_uid[telemetry.uid].push_back(telemetry);
  }
  void forget_job_telemetry(const std::string& uid) override { forgotten.push_back(uid); }

  // --- UpstreamSink
  void upstream_samples(std::vector<UpstreamSample> samples) override {
    upstream_sets.push_back(std::move(samples));
  }

  int error_count(const std::string& component, const std::string& type) const {
    const auto it = errors.find({component, type});
    return it == errors.end() ? 0 : it->second;
  }
  std::size_t reports(const std::string& uid) const {
    const auto it = telemetry_by_uid.find(uid);
    return it == telemetry_by_uid.end() ? 0 : it->second.size();
  }

  std::vector<TelemetryTarget> targets;
  bool targets_settling = false;
  mutable int settling_checks = 0;
  std::map<std::pair<std::string, std::string>, int> errors;
  std::map<std::string, int> succeeded;
  std::map<std::string, int> failed;
  double last_poll_seconds = -1;
  std::map<std::string, std::vector<JobTelemetry>> telemetry_by_uid;
  std::vector<std::string> forgotten;
  std::vector<std::vector<UpstreamSample>> upstream_sets;
};

// Records every call; all calls arrive on the test thread that runs the io_context.
class RecordingKubeSink : public KubernetesSink, public SourceHealth {
 public:
  std::map<std::string, JobObject> jobs;
  std::vector<std::string> deleted_jobs;
  std::map<std::string, EndpointObject> endpoints;
  std::vector<std::string> deleted_endpoints;
  std::map<std::string, WarningEvent> events;
  std::vector<std::string> deleted_events;
  std::vector<std::optional<std::int64_t>> restarts;
  std::map<std::string, int> errors;  // "component/error_type" -> count
  std::vector<double> successes;
  int failures = 0;
  int upserts = 0;

  void count_error(std::string_view component, std::string_view error_type) override {
    ++errors[std::string(component) + "/" + std::string(error_type)];
  }
  void source_succeeded(std::string_view source, double seconds) override {
    EXPECT_EQ(source, "kubernetes");
    EXPECT_GE(seconds, 0.0);
    successes.push_back(seconds);
  }
  void source_failed(std::string_view source) override {
    EXPECT_EQ(source, "kubernetes");
    ++failures;
  }
  void upsert_job(JobObject job) override {
    ++upserts;
    std::string uid = job.uid;
    jobs[uid] = std::move(job);
  }
  void delete_job(const std::string& uid) override {
    jobs.erase(uid);
    deleted_jobs.push_back(uid);
  }
  void upsert_endpoint(EndpointObject e) override {
    ++upserts;
    std::string uid = e.uid;
    endpoints[uid] = std::move(e);
  }
  void delete_endpoint(const std::string& uid) override {
    endpoints.erase(uid);
    deleted_endpoints.push_back(uid);
  }
  void set_operator_restarts(std::optional<std::int64_t> count) override {
    restarts.push_back(count);
  }
  void observe_warning_event(WarningEvent e) override {
    ++upserts;
    std::string uid = e.uid;
    events[uid] = std::move(e);
  }
  void delete_warning_event(const std::string& uid) override {
    events.erase(uid);
    deleted_events.push_back(uid);
  }

  int error_count(const std::string& key) const {
    auto it = errors.find(key);
    return it == errors.end() ? 0 : it->second;
  }
  bool deleted_job(const std::string& uid) const {
    return std::find(deleted_jobs.begin(), deleted_jobs.end(), uid) != deleted_jobs.end();
  }
};

}  // namespace mx::testing
