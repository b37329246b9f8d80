// A recording fake of the telemetry and upstream sinks (the model implements them for real).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "model/sinks.h"

namespace mx::testing {

class RecordingSink : public TelemetrySink, public UpstreamSink {
 public:
  // --- SourceSink
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
  std::map<std::pair<std::string, std::string>, int> errors;
  std::map<std::string, int> succeeded;
  std::map<std::string, int> failed;
  double last_poll_seconds = -1;
  std::map<std::string, std::vector<JobTelemetry>> telemetry_by_uid;
  std::vector<std::string> forgotten;
  std::vector<std::vector<UpstreamSample>> upstream_sets;
};

}  // namespace mx::testing
