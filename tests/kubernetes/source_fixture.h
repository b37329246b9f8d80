// What every test of KubernetesSource against a server needs: an io_context to drive, a
// recording sink, quick timeouts and backoff, and the source, stopped and gone at the end.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include <boost/asio/io_context.hpp>

#include "sources/kubernetes/kubernetes_source.h"
#include "support/io.h"
#include "support/log_capture.h"
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

}  // namespace mx::testing
