// The per-job telemetry endpoints of the benchmark's jobs (what a job announces in its
// modal-operator.io/telemetry-url annotation): one plain-HTTP server on 127.0.0.1, on a thread
// of its own, answering GET /telemetry/<uid> with the page a DCGM exporter beside node_exporter's
// network counters would serve for the job's GPUs. The exporter reads two of its metrics
// (docs/sources.md, "Telemetry") and has to read past the rest, as it does with a real one.
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <string>

namespace mx::bench {

class TelemetryServer {
 public:
  TelemetryServer();  // listening and serving on return
  ~TelemetryServer();
  TelemetryServer(const TelemetryServer&) = delete;
  TelemetryServer& operator=(const TelemetryServer&) = delete;

  // "http://127.0.0.1:<port>/telemetry/" + uid: what the job's annotation says.
  std::string url_for(const std::string& uid) const;
  // The job's page exists from add() to remove(); other paths answer 404.
  void add(const std::string& uid, const std::string& gpu_type, int gpus, std::time_t started_at);
  void remove(const std::string& uid);
  std::uint64_t requests() const;  // answered so far

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mx::bench
