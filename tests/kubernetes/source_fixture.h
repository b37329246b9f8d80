// What every test of KubernetesSource against a server needs: an io_context to drive, a
// recording sink, quick timeouts and backoff, and the source, stopped and gone at the end.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>

#include "sources/kubernetes/kubernetes_source.h"
#include "support/io.h"
#include "support/log_capture.h"
#include "support/process.h"
#include "support/recording_sinks.h"

namespace mx::testing {

class KubeSourceTestBase : public ::testing::Test {
 protected:
  KubeSourceTestBase() {
    config.request_timeout = std::chrono::seconds(5);
    config.watch_timeout = std::chrono::seconds(60);
    backoff.initial = std::chrono::milliseconds(50);
    backoff.max = std::chrono::milliseconds(500);
  }

  // Creates and starts the source with `config` (no operator Pod to poll).
  void start_source() {
    source = std::make_unique<KubernetesSource>(io, config, backoff, sink, sink);
    source->set_operator_pod("", "");
    source->start();
  }

  // Call before the server goes away.
  void stop_source() {
    if (source) source->stop();
    run_for(io, std::chrono::milliseconds(20));
    source.reset();
  }

  LogCapture logs;
  boost::asio::io_context io;
  RecordingKubeSink sink;
  KubernetesConfig config;
  BackoffConfig backoff;
  std::unique_ptr<KubernetesSource> source;
};

// kubectl, the reference client, with the same kubeconfig as the exporter: its exit code, with
// its combined output in `output`; nullopt when kubectl is not installed.
inline std::optional<int> kubectl(const std::string& kubeconfig, const std::string& cache_dir,
                                  const std::string& args, std::string& output) {
  if (run_command("command -v kubectl", output) != 0) return std::nullopt;
  return run_command("kubectl --kubeconfig '" + kubeconfig + "' --cache-dir '" + cache_dir +
                         "' --request-timeout=10s " + args,
                     output);
}

}  // namespace mx::testing
