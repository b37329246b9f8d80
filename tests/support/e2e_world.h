// The pieces every end-to-end test (tests/e2e) sets up the same way: a scratch directory that is
// kept when a test failed, free loopback ports, the simulator (tools/modal-sim) as a child
// process, the exporter's fast-polling config, the exporter's "listening" log line, and a real
// Prometheus with its HTTP query API.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/process.h"

namespace mx::testing {

// A loopback TCP port nobody listens on right now (bound to port 0, read back, closed). Another
// process may take it before the caller binds it; the tests accept that small race.
std::uint16_t free_port();

// Percent-encoding of a query parameter value (RFC 3986 unreserved characters kept).
std::string url_encode(const std::string& s);

// mkdtemp("/tmp/<prefix>.XXXXXX"); "" when it could not be made.
std::string make_scratch_dir(const std::string& prefix);
// Removes `dir` when no test of this binary failed; else keeps it for its logs and Prometheus's
// TSDB, and says where it is on stderr.
void remove_scratch_dir_unless_failed(const std::string& dir);

// SIGTERM to every process first (they shut down in parallel), then waits up to 20 s for each.
void stop_all(const std::vector<ChildProcess*>& processes);

// tools/modal-sim, started with the world frozen (control("resume") starts it).
class Simulator {
 public:
  // Starts the simulator writing into `dir` and waits for its sim.json. On failure port() is 0
  // and log() says why.
  Simulator(const std::string& binary, const std::string& dir, int jobs, int seed,
            int tick_ms = 200);

  std::uint16_t port() const { return port_; }  // telemetry, /truth and /control
  const std::string& kubeconfig() const { return kubeconfig_; }
  // What the exporter needs in its environment: MODAL_SERVER_URL, the Modal token,
  // POD_NAME/POD_NAMESPACE of the simulated operator Pod ("KEY=value" lines of modal.env).
  const std::vector<std::string>& exporter_env() const { return env_; }
  std::string log() const { return process_->output(); }
  ChildProcess& process() { return *process_; }

  // GET /control/<action>: pause, resume, kubernetes-down, modal-up, expire-watches, ...
  void control(const std::string& action) const;
  // The simulator's ground truth (GET /truth).
  nlohmann::json truth() const;

 private:
  std::unique_ptr<ChildProcess> process_;
  std::uint16_t port_ = 0;
  std::string kubeconfig_;
  std::vector<std::string> env_;
};

// Writes dir/exporter.yaml: every source polls every second or two, so that the tests see the
// simulator's changes quickly. Returns its path.
std::string write_fast_exporter_config(const std::string& dir);

// Waits (30 s) for the exporter's "Metrics server listening" log line; its port, or 0.
std::uint16_t wait_listening(const ChildProcess& exporter);

// A real Prometheus (Debian package "prometheus") on a free loopback port, its TSDB in dir/tsdb.
class Prometheus {
 public:
  // `config` is the text of prometheus.yml, written to dir/prometheus.yml.
  Prometheus(const std::string& binary, const std::string& dir, const std::string& config);

  std::uint16_t port() const { return port_; }
  ChildProcess& process() { return *process_; }
  std::string log() const { return process_->output(); }

  // GET /api/v1/query; {"status": "error", "body": ...} on any failure.
  nlohmann::json query(const std::string& promql) const;
  // Instant vector as {label values joined by `separator`, in `labels` order -> value}; empty
  // on any error.
  std::map<std::string, double> vector_of(const std::string& promql,
                                          const std::vector<std::string>& labels,
                                          const std::string& separator = "|") const;

 private:
  std::unique_ptr<ChildProcess> process_;
  std::uint16_t port_ = 0;
};

}  // namespace mx::testing
