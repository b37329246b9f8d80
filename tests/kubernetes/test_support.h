// Helpers of the Kubernetes source tests: a recording sink (the shared ones: tests/support).
#pragma once

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/sinks.h"
#include "support/io.h"
#include "support/log_capture.h"
#include "support/temp_dir.h"

namespace mx::testing {

// Records every call; all calls arrive on the test thread that runs the io_context.
class RecordingKubeSink : public KubernetesSink {
 public:
  std::map<std::string, JobObject> jobs;
  std::vector<std::string> deleted_jobs;
  std::map<std::string, EndpointObject> endpoints;
  std::vector<std::string> deleted_endpoints;
  std::map<std::string, FunctionObject> functions;
  std::vector<std::string> deleted_functions;
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
  void upsert_function(FunctionObject f) override {
    ++upserts;
    std::string uid = f.uid;
    functions[uid] = std::move(f);
  }
  void delete_function(const std::string& uid) override {
    functions.erase(uid);
    deleted_functions.push_back(uid);
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
