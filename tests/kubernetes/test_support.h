// Shared helpers of the Kubernetes source tests: a recording sink, a log capture, a temp dir.
#pragma once

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include "common/log.h"
#include "model/sinks.h"

namespace mx::testing {

// Records every call; all calls arrive on the test thread that runs the io_context.
class RecordingKubeSink : public KubernetesSink {
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

// Captures log lines for the lifetime of the object.
class LogCapture {
 public:
  LogCapture() {
    log::set_sink([this](std::string_view line) {
      std::lock_guard lock(mu_);
      lines_.emplace_back(line);
    });
  }
  ~LogCapture() { log::set_sink({}); }
  std::vector<std::string> lines() const {
    std::lock_guard lock(mu_);
    return lines_;
  }
  int count(const std::string& needle) const {
    std::lock_guard lock(mu_);
    return static_cast<int>(std::count_if(lines_.begin(), lines_.end(), [&](const std::string& l) {
      return l.find(needle) != std::string::npos;
    }));
  }
  std::string all() const {
    std::string out;
    for (const auto& l : lines()) out += l + "\n";
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("mx-kube-" + std::to_string(rd()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string write(const std::string& name, const std::string& content) const {
    const auto p = path_ / name;
    const auto tmp = path_ / (name + ".tmp");
    std::ofstream(tmp, std::ios::binary | std::ios::trunc) << content;
    std::filesystem::rename(tmp, p);  // atomic, like a projected token's symlink swap
    return p.string();
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// Runs the io_context until `done` holds or the (generous) deadline passes.
inline bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
                      std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    io.restart();
    io.run_for(std::chrono::milliseconds(5));
  }
  return true;
}

inline void run_for(boost::asio::io_context& io, std::chrono::milliseconds d) {
  io.restart();
  io.run_for(d);
}

}  // namespace mx::testing
