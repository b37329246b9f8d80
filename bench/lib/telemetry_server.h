// The per-job telemetry endpoints of the benchmark's jobs (what a job announces in its
// modal-operator.io/telemetry-url annotation): plain HTTP on 127.0.0.1, on a thread of its own,
// answering GET /telemetry/<uid> with the page a DCGM exporter beside node_exporter's network
// counters would serve for the job's GPUs. Each job listens on a port of its own, as each real
// job's pod has an address of its own: the exporter keeps a connection per endpoint, and one
// shared port would let a handful carry every scrape. The exporter reads two of its metrics
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

  // The job's page exists from add() to remove(); other paths answer 404. Returns
  // "http://127.0.0.1:<the job's port>/telemetry/" + uid: what the job's annotation says.
  std::string add(const std::string& uid, const std::string& gpu_type, int gpus,
                  std::time_t started_at);
  void remove(const std::string& uid);
  std::uint64_t requests() const;  // answered so far

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mx::bench
